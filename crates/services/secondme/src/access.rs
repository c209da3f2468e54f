//! What each Second Me endpoint needs: a signed-in principal; the
//! handlers answer people only, and only about their own conversations
//! (every query names the person).

use axum::http::Method;
use daarion_access::{Access::SignedIn, Rule};

pub static RULES: &[Rule] = &[
    Rule::new(Method::POST, "/api/secondme/invoke", SignedIn),
    Rule::new(Method::GET, "/api/secondme/me", SignedIn),
    Rule::new(Method::GET, "/api/secondme/conversations", SignedIn),
    Rule::new(Method::DELETE, "/api/secondme/conversations", SignedIn),
    Rule::new(
        Method::GET,
        "/api/secondme/conversations/{conversation}",
        SignedIn,
    ),
    Rule::new(
        Method::DELETE,
        "/api/secondme/conversations/{conversation}",
        SignedIn,
    ),
    Rule::new(
        Method::GET,
        "/api/secondme/conversations/{conversation}/turns",
        SignedIn,
    ),
];
