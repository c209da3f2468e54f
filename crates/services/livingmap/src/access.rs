//! What each living-map endpoint needs: a signed-in viewer; what they see
//! is filtered to them (public things, their microDAOs', everything for
//! city admins) by the store.

use axum::http::Method;
use daarion_access::{Access::SignedIn, Rule};

pub static RULES: &[Rule] = &[
    Rule::new(Method::GET, "/api/living-map/snapshot", SignedIn),
    Rule::new(Method::GET, "/api/living-map/deltas", SignedIn),
    Rule::new(Method::GET, "/api/living-map/counters", SignedIn),
    Rule::new(Method::GET, "/ws/living-map/stream", SignedIn),
];
