//! What each router endpoint needs: city admins ask why an agent would or
//! would not answer.

use axum::http::Method;
use daarion_access::{Access::Check, Action::Admin, Rule, Target::City};

pub static RULES: &[Rule] = &[Rule::new(
    Method::POST,
    "/api/router/route",
    Check(Admin, City),
)];
