//! The merged OpenAPI document tells the truth about its own shape: every
//! `$ref` resolves, every operation says how it fails, list bounds are in
//! the schema.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{City, Kind};
use serde_json::Value;

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_ref_resolves_and_every_operation_declares_its_failures() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, spec) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let mut found = Vec::new();
    refs(&spec, &mut found);
    let dangling: Vec<&String> = found
        .iter()
        .filter(|r| {
            let name = r.trim_start_matches("#/components/schemas/");
            spec["components"]["schemas"][name].is_null()
        })
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");

    for (path, item) in spec["paths"].as_object().unwrap() {
        if path.ends_with("/health") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["429", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let rooms = &spec["paths"]["/api/city/rooms"]["get"];
    for status in ["401", "403", "422"] {
        assert!(
            rooms["responses"][status].is_object(),
            "GET /api/city/rooms lacks {status}"
        );
    }
    let limit = rooms["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&Value::from(1), &Value::from(100))
    );
    let sign_in = &spec["paths"]["/api/auth/login/begin"]["post"]["responses"];
    assert!(
        sign_in["401"].is_null(),
        "a public operation does not answer 401"
    );
    app.stop().await;
}
