//! What each PDP endpoint needs: anyone signed in asks about themselves
//! (about others, see `decide`); the policy set and the audit log are the
//! city's (`city.cedar`).

use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action, Kind, Rule, Target,
};

const POLICY: Target = Target::Named(Kind::Policy, "city");

pub static RULES: &[Rule] = &[
    // Anyone signed in may ask about themselves; about others, see `decide`.
    Rule::new(Method::POST, "/api/pdp/decide", SignedIn),
    Rule::new(Method::POST, "/api/pdp/decide/batch", SignedIn),
    Rule::new(
        Method::GET,
        "/api/pdp/policies",
        Check(Action::Read, POLICY),
    ),
    Rule::new(
        Method::PUT,
        "/api/pdp/policies",
        Check(Action::Admin, POLICY),
    ),
    Rule::new(
        Method::GET,
        "/api/pdp/policies/versions",
        Check(Action::Read, POLICY),
    ),
    Rule::new(
        Method::GET,
        "/api/pdp/policies/versions/{version}",
        Check(Action::Read, POLICY),
    ),
    Rule::new(
        Method::GET,
        "/api/pdp/audit",
        Check(Action::Read, Target::Named(Kind::Audit, "city")),
    ),
];
