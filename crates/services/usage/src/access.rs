//! What each usage endpoint needs, and how a subject's usage looks to the
//! policies.

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action::ViewUsage,
    Kind, Resource, Resources, Rule,
    Target::{City, Path as P},
};
use daarion_kernel::ApiError;

use crate::api;

const SUBJECT: daarion_access::Target = P(Kind::Usage, "subject");

/// City-wide usage is for city admins; one person's, agent's or microDAO's
/// for that person, the agent's owner, the microDAO's admins (and city
/// admins); plans are public to anyone signed in.
pub static RULES: &[Rule] = &[
    Rule::new(Method::GET, "/api/usage/summary", Check(ViewUsage, City)),
    Rule::new(
        Method::GET,
        "/api/usage/subjects/{subject}/summary",
        Check(ViewUsage, SUBJECT),
    ),
    Rule::new(
        Method::GET,
        "/api/usage/subjects/{subject}/quota",
        Check(ViewUsage, SUBJECT),
    ),
    Rule::new(Method::GET, "/api/usage/plans", SignedIn),
];

/// Usage of one person, agent or microDAO, as the policies see it.
pub(crate) struct UsageResources;

#[async_trait]
impl Resources for UsageResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Usage => Ok(Some(Resource::about(Kind::Usage, &api::parse_subject(id)?))),
            _ => Ok(None),
        }
    }
}
