//! A declaration and its routes disagreeing is caught before anything is
//! served.

use axum::http::Method;
use daarion_access::{Access::SignedIn, Rule};
use daarion_bus::subject::StreamDef;

use super::*;

fn never_built(_: Context) -> BoxFuture<'static, Result<Mount, BuildError>> {
    Box::pin(async { Err(BuildError::new("not built in this test")) })
}

const fn service(name: &'static str, port: u16) -> Service {
    Service {
        name,
        port,
        version: "0",
        migrations: &[],
        rules: &[],
        websocket: false,
        streams: &[],
        events: &[],
        settings: None,
        example: no_example,
        build: never_built,
    }
}

static NOTES: Service = Service {
    rules: &[
        Rule::new(Method::GET, "/api/notes/items", SignedIn),
        Rule::new(Method::GET, "/ws/notes/live", SignedIn),
    ],
    websocket: true,
    streams: &[StreamDef {
        name: "NOTES",
        subjects: &["notes.>"],
    }],
    events: &[Event::durable("notes.created"), Event::live("typing.*")],
    ..service("notes", 7100)
};

fn document(paths: &[(&str, Method)]) -> utoipa::openapi::OpenApi {
    let mut doc = utoipa::openapi::OpenApi::new(
        utoipa::openapi::Info::new("t", "0"),
        utoipa::openapi::Paths::new(),
    );
    for (path, method) in paths {
        let kind = match *method {
            Method::POST => utoipa::openapi::HttpMethod::Post,
            _ => utoipa::openapi::HttpMethod::Get,
        };
        doc.paths
            .add_path_operation(*path, vec![kind], utoipa::openapi::path::Operation::new());
    }
    doc
}

#[test]
fn a_sound_declaration_passes() {
    assert_eq!(check(&[&NOTES]), Vec::<String>::new());
    let served = document(&[("/api/notes/items", Method::GET)]);
    assert_eq!(check_served(&NOTES, &served), Vec::<String>::new());
}

#[test]
fn each_disagreement_is_named() {
    static OUTSIDE: Service = Service {
        rules: &[Rule::new(Method::GET, "/api/other/x", SignedIn)],
        ..service("stray", 7101)
    };
    static LOST_EVENT: Service = Service {
        events: &[Event::durable("lost.created")],
        ..service("lost", 7102)
    };
    static STORED_LIVE: Service = Service {
        events: &[Event::live("notes.typing")],
        ..service("chatty", 7103)
    };
    static SAME_PORT: Service = service("twin", 7100);
    static OVERLAP: Service = Service {
        streams: &[StreamDef {
            name: "MORE_NOTES",
            subjects: &["notes.created"],
        }],
        ..service("greedy", 7104)
    };
    let cases: [(&Service, &str); 5] = [
        (&OUTSIDE, "is outside"),
        (&LOST_EVENT, "held by no stream"),
        (&STORED_LIVE, "would be stored by stream NOTES"),
        (&SAME_PORT, "share a name or a port"),
        (&OVERLAP, "overlaps stream \"NOTES\""),
    ];
    for (bad, expected) in cases {
        let problems = check(&[&NOTES, bad]);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{}: {problems:?}",
            bad.name
        );
    }
}

#[test]
fn served_routes_and_rules_must_match() {
    let unruled = document(&[
        ("/api/notes/items", Method::GET),
        ("/api/notes/items", Method::POST),
    ]);
    let problems = check_served(&NOTES, &unruled);
    assert_eq!(
        problems,
        ["notes: POST /api/notes/items is served without an access rule"]
    );
    let missing = document(&[]);
    let problems = check_served(&NOTES, &missing);
    assert_eq!(
        problems,
        ["notes: rule GET /api/notes/items names no operation"]
    );
}

#[tokio::test]
async fn a_service_publishes_only_what_it_declares() {
    let dir = std::env::temp_dir().join(format!("declared-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = daarion_store::Db::connect(&format!("sqlite://{}", dir.join("d.db").display()))
        .await
        .unwrap();
    daarion_store::migrate::apply(&db, &[daarion_bus::MIGRATIONS])
        .await
        .unwrap();
    let process_bus: std::sync::Arc<dyn daarion_bus::Bus> = std::sync::Arc::new(
        daarion_bus::EmbeddedBus::new(db, streams(&[&NOTES]).unwrap()),
    );
    let bus = declared(&NOTES, process_bus);
    let event = |subject: &str| daarion_bus::Envelope::new("notes", subject, serde_json::json!({}));
    bus.publish(&event("notes.created")).await.unwrap();
    bus.publish(&event("typing.alice")).await.unwrap();
    let refused = bus.publish(&event("notes.deleted")).await;
    assert!(
        matches!(
            refused,
            Err(daarion_bus::BusError::Undeclared {
                service: "notes",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        bus.publish_batch(&[event("notes.created"), event("city.x")])
            .await
            .is_err()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
