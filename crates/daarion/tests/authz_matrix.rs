//! The authorization matrix: every endpoint × every role → allow / deny,
//! derived from the services' declared rules and the shipped policies, and
//! compared with `tests/authz_matrix.txt`. An endpoint in the OpenAPI
//! document without a declared rule, or a changed decision, fails here.
//! After an intended change: `UPDATE_MATRIX=1 cargo test --test authz_matrix`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use daarion_access::{
    Access, Action, Credential, Engine, Facts, Kind, Principal, PrincipalKind, Resource, Rule,
    Target,
    vocab::roles::{CITY_ADMIN, CITY_CITIZEN, DaoRole},
};

fn rules() -> Vec<&'static Rule> {
    daarion::SERVICES
        .iter()
        .flat_map(|s| s.rules)
        .chain(daarion::ops::RULES)
        .collect()
}

/// People use sessions, agents API keys, services tokens.
fn principal(kind: PrincipalKind, id: &str, roles: &[String]) -> Principal {
    let credential = match kind {
        PrincipalKind::User => Credential::Session { id: "s".into() },
        PrincipalKind::Agent => Credential::ApiKey {
            id: "k".into(),
            limits: Default::default(),
        },
        PrincipalKind::Service => Credential::ServiceToken,
    };
    Principal {
        kind,
        id: id.into(),
        handle: id.into(),
        roles: roles.to_vec(),
        owner: (kind == PrincipalKind::Agent).then(|| "someone".to_owned()),
        scopes: None,
        credential,
    }
}

/// The roles of the matrix's columns; `None` is an anonymous caller.
fn roles() -> Vec<(&'static str, Option<Principal>)> {
    let citizen = vec![CITY_CITIZEN.to_owned()];
    vec![
        ("anonymous", None),
        (
            "citizen",
            Some(principal(PrincipalKind::User, "c", &citizen)),
        ),
        (
            "city-admin",
            Some(principal(
                PrincipalKind::User,
                "a",
                &[CITY_CITIZEN.into(), CITY_ADMIN.into()],
            )),
        ),
        (
            "admin-key",
            Some(Principal {
                credential: Credential::ApiKey {
                    id: "k".into(),
                    limits: Default::default(),
                },
                ..principal(
                    PrincipalKind::User,
                    "a",
                    &[CITY_CITIZEN.into(), CITY_ADMIN.into()],
                )
            }),
        ),
        (
            "dao-owner",
            Some(principal(
                PrincipalKind::User,
                "o",
                &[CITY_CITIZEN.into(), DaoRole::Owner.group("d1")],
            )),
        ),
        (
            "agent",
            Some(principal(
                PrincipalKind::Agent,
                "bot",
                &[DaoRole::Agent.group("d1")],
            )),
        ),
        (
            "service",
            Some(principal(PrincipalKind::Service, "agents", &[])),
        ),
    ]
}

fn fixture(target: Target, who: Option<&Principal>) -> Resource {
    match target {
        Target::City => Resource::city(),
        Target::Myself => who.map_or_else(
            || Resource::new(Kind::User, "nobody"),
            |who| Resource::new(who.kind.kind(), who.id.clone()),
        ),
        Target::Named(kind, id) => Resource::new(kind, id),
        // Each service's example belongs to another person: what an owner
        // may do is in the policy tests.
        Target::Path(kind, _) => daarion::SERVICES
            .iter()
            .find_map(|s| (s.example)(kind))
            .unwrap_or_else(|| Resource::new(kind, "x")),
    }
}

fn decide(engine: &Engine, rule: &Rule, who: Option<&Principal>) -> &'static str {
    match (rule.access, who) {
        (Access::Public, _) => "allow",
        // The city lets anyone read its public rooms by default.
        (Access::PublicRead(target), None) if fixture(target, None).is_public() => "allow",
        (_, None) => "401",
        (Access::SignedIn, Some(_)) => "allow",
        (Access::SessionCheck(..), Some(who))
            if !matches!(who.credential, Credential::Session { .. }) =>
        {
            "403"
        }
        (Access::PublicRead(target), Some(who)) => verdict(engine, who, Action::Read, target),
        (Access::Check(action, target) | Access::SessionCheck(action, target), Some(who)) => {
            verdict(engine, who, action, target)
        }
    }
}

fn verdict(engine: &Engine, who: &Principal, action: Action, target: Target) -> &'static str {
    let resource = fixture(target, Some(who));
    if engine
        .decide(who, action, &resource, Facts::default())
        .allowed
    {
        "allow"
    } else {
        "403"
    }
}

fn render() -> String {
    let engine = Engine::with_defaults().unwrap();
    let columns = roles();
    let mut out = format!("{:<8} {:<52}", "method", "path");
    for (name, _) in &columns {
        out.push_str(&format!(" {name:>10}"));
    }
    out.push('\n');
    let mut rows: Vec<&Rule> = rules();
    rows.sort_by_key(|r| (r.path, r.method.as_str().to_owned()));
    for rule in rows {
        out.push_str(&format!("{:<8} {:<52}", rule.method.as_str(), rule.path));
        for (_, who) in &columns {
            out.push_str(&format!(" {:>10}", decide(&engine, rule, who.as_ref())));
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_matrix_matches_the_expected_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/authz_matrix.txt");
    let actual = render();
    if std::env::var_os("UPDATE_MATRIX").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(e, a)| e != a)
            .map(|(e, a)| format!("- {e}\n+ {a}"))
            .collect();
        panic!(
            "authorization matrix changed ({} vs {} lines):\n{}\nIf intended, run UPDATE_MATRIX=1 cargo test --test authz_matrix",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Every operation the API documents has a declared rule, and every rule
/// names a real operation (WebSocket upgrades are not in OpenAPI).
#[tokio::test]
async fn every_endpoint_declares_its_decision() {
    let Some(city) = common::City::new(common::Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let (_, spec) = app.get("/openapi.json").await;
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    // Health is public by the standard (mounted by the composition).
    documented.retain(|(_, path)| !path.ends_with("/health"));
    let declared: BTreeSet<(String, String)> = rules()
        .iter()
        .filter(|r| !r.path.starts_with("/ws/"))
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    let undeclared: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "endpoints without a declared decision: {undeclared:?}"
    );
    let phantom: Vec<_> = declared.difference(&documented).collect();
    assert!(
        phantom.is_empty(),
        "rules for endpoints that do not exist: {phantom:?}"
    );
    app.stop().await;
}

/// The table is what the live stack does: a sample of cells, over HTTP.
#[tokio::test]
async fn the_live_stack_agrees_with_the_matrix() {
    let Some(city) = common::City::new(common::Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let cases = [
        ("GET", "/api/pdp/policies", None, 401),
        ("GET", "/api/pdp/policies", Some("citizen1"), 403),
        ("GET", "/api/pdp/policies", Some("root"), 200),
        ("GET", "/api/pdp/audit", Some("citizen1"), 403),
        ("GET", "/api/pdp/audit", Some("root"), 200),
        ("GET", "/api/city/rooms", None, 200),
        ("POST", "/api/city/rooms", None, 401),
        ("GET", "/api/city/presence", None, 401),
        ("GET", "/api/city/rooms", Some("citizen1"), 200),
        ("GET", "/api/auth/sessions", None, 401),
        ("GET", "/api/auth/sessions", Some("citizen1"), 200),
    ];
    for (method, path, user, expected) in cases {
        let mut request = app.client.request(method.parse().unwrap(), app.url(path));
        if let Some(user) = user {
            request = request.header("cookie", app.cookie(user).await);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert_eq!(status, expected, "{method} {path} as {user:?}");
    }
    app.stop().await;
}
