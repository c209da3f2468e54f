//! What can be checked of `deploy/` without the machines it is for: the
//! systemd units pass `systemd-analyze verify` (any complaint fails, an
//! unknown key included), and every command they start is one this
//! binary takes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, process::Command};

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/systemd");

fn units() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(UNITS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "service" || e == "timer")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) =
        daarion_testkit::require_program(&["/usr/bin/systemd-analyze", "/bin/systemd-analyze"])
    else {
        return;
    };
    let binary = env!("CARGO_BIN_EXE_daarion");
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for (name, text) in units() {
        // Where it is installed, here the binary just built.
        let text = text.replace("/usr/local/bin/daarion", binary);
        let name = name.replace("@.", "@city.");
        std::fs::write(dir.path().join(&name), text).unwrap();
        names.push(format!("./{name}"));
    }
    assert!(names.len() >= 5, "{names:?}");
    let output = Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(&names)
        .current_dir(dir.path())
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn every_command_a_unit_starts_is_one_daarion_takes() {
    let mut commands = 0;
    for (name, text) in units() {
        for line in text.lines() {
            let Some(command) = line
                .strip_prefix("ExecStart=")
                .or_else(|| line.strip_prefix("ExecStartPost="))
            else {
                continue;
            };
            let args: Vec<String> = command
                .split_whitespace()
                .skip(1)
                .map(|a| a.replace("%i", "city"))
                .collect();
            // `--help` anywhere: clap parses the rest and prints the help.
            let output = Command::new(env!("CARGO_BIN_EXE_daarion"))
                .args(&args)
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{name}: {command}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            commands += 1;
        }
    }
    assert!(commands >= 5);
    assert!(Path::new(UNITS).join("daarion-backup.timer").exists());
}

const COMPOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/compose");

/// `deploy/compose/compose.yaml` against the compose specification
/// (check-jsonschema ships it; `DAARION_CHECK_JSONSCHEMA`, installed by
/// scripts/test.sh, required under CI).
#[test]
fn the_compose_file_follows_the_compose_specification() {
    let Some(check) = tool("DAARION_CHECK_JSONSCHEMA", "check-jsonschema") else {
        return;
    };
    passes(
        Command::new(check)
            .args(["--builtin-schema", "vendor.compose-spec", "compose.yaml"])
            .current_dir(COMPOSE),
    );
}

/// The compose file's route table is a valid one, sends every service's
/// routes to containers the compose file has, and misses none of the
/// binary's services.
#[test]
fn the_compose_route_table_names_every_service_and_only_its_containers() {
    let routes = std::fs::read_to_string(Path::new(COMPOSE).join("routes.toml")).unwrap();
    let table = daarion_gateway::config::RouteTable::parse(&routes).unwrap();
    let compose = std::fs::read_to_string(Path::new(COMPOSE).join("compose.yaml")).unwrap();
    let builtin = daarion::default_routes();
    for route in &builtin.routes {
        if builtin.upstreams[&route.upstream].addresses.is_empty() {
            continue;
        }
        let ours = table
            .routes
            .iter()
            .find(|r| r.prefix == route.prefix)
            .unwrap_or_else(|| panic!("no route for {}", route.prefix));
        assert_eq!(ours.websocket, route.websocket, "{}", route.prefix);
    }
    for (name, group) in &table.upstreams {
        assert!(!group.addresses.is_empty(), "{name}");
        for address in &group.addresses {
            let (host, port) = address.rsplit_once(':').unwrap();
            assert!(
                compose.contains(&format!("\n  {host}:\n")),
                "{host} is not a container of compose.yaml"
            );
            assert!(
                compose.contains(&format!("\"0.0.0.0:{port}\"")),
                "nothing listens on {port}"
            );
        }
    }
}

const KUBERNETES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/kubernetes");

/// `deploy/kubernetes/daarion.yaml` is what this build makes (after an
/// intended change: `UPDATE_DEPLOY=1 cargo test --test deploy`), and its
/// objects pass the Kubernetes API's schemas, strictly (kubernetes-validate
/// ships them; `DAARION_KUBERNETES_VALIDATE`, required under CI).
#[test]
fn the_kubernetes_objects_are_this_builds_and_pass_the_api_schemas() {
    let made = Command::new(env!("CARGO_BIN_EXE_daarion"))
        .args(["deploy", "kubernetes"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let made = String::from_utf8(made.stdout).unwrap();
    let path = Path::new(KUBERNETES).join("daarion.yaml");
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        made,
        "deploy/kubernetes/daarion.yaml is not what this build makes: UPDATE_DEPLOY=1 cargo test --test deploy"
    );
    for service in daarion::SERVICES {
        assert!(
            made.contains(&format!("\"args\":[\"serve\",\"{}\",", service.name)),
            "{}",
            service.name
        );
    }
    let Some(validate) = tool("DAARION_KUBERNETES_VALIDATE", "kubernetes-validate") else {
        return;
    };
    passes(
        Command::new(validate)
            .args(["--strict", "--quiet"])
            .arg(&path),
    );
}

/// A checker from PyPI that scripts/test.sh installs and names in `var`:
/// required under CI, a loud skip elsewhere.
fn tool(var: &str, name: &str) -> Option<String> {
    let found = std::env::var(var).ok();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs {name} ({var})"
        );
        eprintln!("!!! SKIPPED: {name} is not installed (set {var})");
    }
    found
}

fn passes(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const PROMETHEUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus");

/// The alert rules load (`promtool check rules`) and fire when they should
/// and not before (`promtool test rules`, Debian's prometheus package).
#[test]
fn the_alert_rules_load_and_fire_when_they_should() {
    let Some(promtool) = daarion_testkit::require_program(&["/usr/bin/promtool"]) else {
        return;
    };
    passes(
        Command::new(&promtool)
            .args(["check", "rules", "alerts.yaml"])
            .current_dir(PROMETHEUS),
    );
    passes(
        Command::new(&promtool)
            .args(["test", "rules", "alerts.test.yaml"])
            .current_dir(PROMETHEUS),
    );
}
