//! Makes a service's OpenAPI document say every answer an operation can
//! give, not only those its handler returns: what its access rule adds
//! (401, 403), what its inputs add (400, 404, 413, 415, 422), the limits in
//! front of every route (429) and a dependency being down (503), each with
//! the one error body.

use daarion_access::{Access, Rule, Target};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema,
    path::{Operation, ParameterIn},
    schema::Type,
};

/// The error body's schema name in `components.schemas`.
pub const ERROR_SCHEMA: &str = "Error";

fn error_schema() -> Schema {
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let inner = ObjectBuilder::new()
        .property(
            "code",
            text("Stable, machine-readable: `not_found`, `rate_limited`…"),
        )
        .property("message", text("For people; says what to change"))
        .property(
            "request_id",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .description(Some("The request's X-Request-Id")),
        )
        .required("code")
        .required("message")
        .required("request_id");
    Schema::Object(
        ObjectBuilder::new()
            .property("error", inner)
            .required("error")
            .build(),
    )
}

/// Adds the answers `rules` and the platform imply to every operation of
/// `doc` (paths as mounted), and the error schema to its components.
pub fn declare_errors(doc: &mut OpenApi, rules: &[Rule]) {
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(ERROR_SCHEMA.into(), RefOr::T(error_schema()));
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (http::Method::GET, &mut item.get),
            (http::Method::POST, &mut item.post),
            (http::Method::PUT, &mut item.put),
            (http::Method::PATCH, &mut item.patch),
            (http::Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let access = rules
                .iter()
                .find(|r| r.method == method && r.path == path)
                .map(|r| r.access);
            let declared: Vec<u16> = operation
                .responses
                .responses
                .keys()
                .filter_map(|s| s.parse().ok())
                .filter(|s| *s >= 400)
                .collect();
            let implied = implied(operation, access);
            for (status, description) in declared.into_iter().map(|s| (s, "")).chain(implied) {
                add(operation, status, description);
            }
        }
    }
}

fn implied(operation: &Operation, access: Option<Access>) -> Vec<(u16, &'static str)> {
    let mut statuses = vec![
        (429, "Too many requests (see `Retry-After`)"),
        (503, "A dependency is unavailable; retry later"),
    ];
    let has = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    if operation.request_body.is_some() {
        statuses.extend([
            (400, "Malformed request"),
            (413, "Body too large"),
            (415, "Body is not JSON"),
            (422, "Invalid fields"),
        ]);
    }
    if has(ParameterIn::Query) || has(ParameterIn::Header) {
        statuses.extend([(400, "Malformed request"), (422, "Invalid parameters")]);
    }
    match access {
        Some(Access::SignedIn) => statuses.push((401, "No valid credentials")),
        Some(
            Access::Check(_, target) | Access::SessionCheck(_, target) | Access::PublicRead(target),
        ) => {
            statuses.extend([
                (401, "No valid credentials"),
                (403, "Not allowed by the policies"),
            ]);
            if matches!(target, Target::Path(..)) {
                statuses.push((404, "No such resource"));
            }
        }
        Some(Access::Public) | None => {}
    }
    if has(ParameterIn::Path) {
        statuses.extend([
            (404, "No such resource"),
            (422, "A path parameter is malformed"),
        ]);
    }
    statuses
}

/// Adds `status` with the error body, or gives an existing error answer
/// that lacks one the error body.
fn add(operation: &mut Operation, status: u16, description: &str) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
        .build();
    let responses = &mut operation.responses.responses;
    match responses.get_mut(&status.to_string()) {
        Some(RefOr::T(existing)) => {
            if existing.content.is_empty() {
                existing
                    .content
                    .insert("application/json".into(), RefOr::T(content));
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(
                status.to_string(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/json", content)
                        .build(),
                ),
            );
        }
    }
}
