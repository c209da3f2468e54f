//! What each space endpoint needs. The directory of planets is public
//! (while `space.public_directory` is on); the node registry is the city
//! admins' (`manage` on the city); a node's heartbeat is public to the
//! enforcement layer and authenticated by the node's own token in the
//! handler (nodes are not people, agents or services).

use axum::http::Method;
use daarion_access::{
    Access::{Check, Public, PublicRead},
    Action::Manage,
    Rule,
    Target::City,
};

pub static RULES: &[Rule] = &[
    Rule::new(Method::GET, "/api/space/planets", PublicRead(City)),
    Rule::new(Method::GET, "/api/space/planets/{slug}", PublicRead(City)),
    Rule::new(Method::GET, "/api/space/nodes", Check(Manage, City)),
    Rule::new(Method::POST, "/api/space/nodes", Check(Manage, City)),
    Rule::new(Method::GET, "/api/space/nodes/{node}", Check(Manage, City)),
    Rule::new(
        Method::DELETE,
        "/api/space/nodes/{node}",
        Check(Manage, City),
    ),
    Rule::new(
        Method::POST,
        "/api/space/nodes/{node}/token",
        Check(Manage, City),
    ),
    Rule::new(Method::POST, "/api/space/nodes/{node}/heartbeat", Public),
];
