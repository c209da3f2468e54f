//! What each auth endpoint needs. Ceremonies are public (they are how one
//! signs in); everything about an account is its owner's (`account.cedar`).

use axum::http::Method;
use daarion_access::{
    Access::{self, Check, Public, SessionCheck, SignedIn},
    Action, Rule, Target,
};

const fn rule(method: Method, path: &'static str, access: Access) -> Rule {
    Rule::new(method, path, access)
}

const OWN_READ: Access = Check(Action::Read, Target::Myself);
/// Changing an account takes a person's session, never an API key.
const OWN_MANAGE: Access = SessionCheck(Action::Manage, Target::Myself);

pub static RULES: &[Rule] = &[
    rule(Method::POST, "/api/auth/register/begin", Public),
    rule(Method::POST, "/api/auth/register/finish", Public),
    rule(Method::POST, "/api/auth/login/begin", Public),
    rule(Method::POST, "/api/auth/login/finish", Public),
    rule(Method::POST, "/api/auth/recover/begin", Public),
    rule(Method::POST, "/api/auth/recover/finish", Public),
    // Public: a stale cookie is cleared too.
    rule(Method::POST, "/api/auth/logout", Public),
    rule(Method::POST, "/api/auth/reauth/begin", OWN_MANAGE),
    rule(Method::POST, "/api/auth/reauth/finish", OWN_MANAGE),
    rule(Method::GET, "/api/auth/me", SignedIn),
    rule(Method::PATCH, "/api/auth/me", OWN_MANAGE),
    rule(
        Method::GET,
        "/api/auth/people",
        Check(Action::Read, Target::City),
    ),
    rule(
        Method::GET,
        "/api/auth/people/{username}",
        Check(Action::Read, Target::City),
    ),
    rule(Method::GET, "/api/auth/passkeys", OWN_READ),
    rule(Method::POST, "/api/auth/passkeys/begin", OWN_MANAGE),
    rule(Method::POST, "/api/auth/passkeys/finish", OWN_MANAGE),
    rule(Method::PATCH, "/api/auth/passkeys/{id}", OWN_MANAGE),
    rule(Method::DELETE, "/api/auth/passkeys/{id}", OWN_MANAGE),
    rule(Method::GET, "/api/auth/sessions", OWN_READ),
    rule(Method::DELETE, "/api/auth/sessions", OWN_MANAGE),
    rule(Method::DELETE, "/api/auth/sessions/{id}", OWN_MANAGE),
    rule(Method::GET, "/api/auth/recovery-codes", OWN_READ),
    rule(Method::POST, "/api/auth/recovery-codes", OWN_MANAGE),
    rule(Method::GET, "/api/auth/api-keys", OWN_READ),
    rule(Method::POST, "/api/auth/api-keys", OWN_MANAGE),
    rule(Method::DELETE, "/api/auth/api-keys/{id}", OWN_MANAGE),
    rule(
        Method::POST,
        "/api/auth/invites",
        SessionCheck(Action::Invite, Target::City),
    ),
];
