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
    let processes = compose_processes();
    for (name, group) in &table.upstreams {
        assert!(!group.addresses.is_empty(), "{name}");
        for address in &group.addresses {
            assert!(
                processes.contains(address),
                "no container of compose.yaml listens at {address}"
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
    // The providers' keys: their Secret, and the LLM proxy alone reads it.
    assert_eq!(
        made.lines()
            .filter(|object| object.contains("\"daarion-llm-keys\""))
            .count(),
        2
    );
    let llm = made
        .lines()
        .find(|l| l.contains("\"args\":[\"serve\",\"llm\","))
        .unwrap();
    assert!(llm.contains("daarion-llm-keys"), "{llm}");
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

/// The containers of compose.yaml that run daarion (`serve` or `gateway`),
/// as `name:port`.
fn compose_processes() -> std::collections::BTreeSet<String> {
    let compose = std::fs::read_to_string(Path::new(COMPOSE).join("compose.yaml")).unwrap();
    let mut container = "";
    let mut found = std::collections::BTreeSet::new();
    for line in compose.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            container = name;
        }
        let command = line.trim_start();
        if (command.starts_with("command: [\"serve\"")
            || command.starts_with("command: [\"gateway\""))
            && let Some((_, port)) = command.rsplit_once("0.0.0.0:")
        {
            found.insert(format!("{container}:{}", port.trim_end_matches("\"]")));
        }
    }
    found
}

/// Prometheus' configuration for compose loads (`promtool check config`,
/// the alert rules included) and scrapes exactly the compose file's
/// daarion containers.
#[test]
fn the_prometheus_configuration_loads_and_scrapes_every_compose_container() {
    let config = std::fs::read_to_string(Path::new(PROMETHEUS).join("prometheus.yml")).unwrap();
    let targets: std::collections::BTreeSet<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|t| {
            t.rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        })
        .map(str::to_owned)
        .collect();
    let processes = compose_processes();
    assert!(processes.len() > 20, "{processes:?}");
    assert_eq!(targets, processes);
    let Some(promtool) = daarion_testkit::require_program(&["/usr/bin/promtool"]) else {
        return;
    };
    // The token file is compose's secret; here, one of our own.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("metrics_token");
    std::fs::write(&token, "t").unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        config.replace("/run/secrets/metrics_token", token.to_str().unwrap()),
    )
    .unwrap();
    std::fs::copy(
        Path::new(PROMETHEUS).join("alerts.yaml"),
        dir.path().join("alerts.yaml"),
    )
    .unwrap();
    passes(
        Command::new(&promtool)
            .args(["check", "config", "prometheus.yml"])
            .current_dir(dir.path()),
    );
}

const GRAFANA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana");

/// Metrics of the exporters beside ours: Prometheus' own and
/// node_exporter's.
const EXPORTERS: [&str; 3] = [
    "up",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
];

/// The names of the metrics this code records (`counter!("…")` and its
/// kin anywhere under crates/), and those of the exporters beside it.
fn recorded_metrics() -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates"),
        &mut files,
    );
    let recorded = regex::Regex::new(r#"(?:counter|gauge|histogram)!\(\s*"([a-z_]+)""#).unwrap();
    let mut names: std::collections::BTreeSet<String> =
        EXPORTERS.iter().map(|name| (*name).to_owned()).collect();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        names.extend(recorded.captures_iter(&text).map(|c| c[1].to_owned()));
    }
    names
}

/// Every metric the code records has its `# HELP` text, and every text
/// is for a metric the code records.
#[test]
fn every_recorded_metric_is_described() {
    let recorded = recorded_metrics();
    let described: std::collections::BTreeSet<String> = daarion::metric_help()
        .iter()
        .map(|(name, help)| {
            assert!(help.ends_with('.') && help.len() > 10, "{name}: {help}");
            (*name).to_owned()
        })
        .collect();
    let undescribed: Vec<&String> = recorded
        .iter()
        .filter(|name| !described.contains(*name) && !EXPORTERS.contains(&name.as_str()))
        .collect();
    assert!(undescribed.is_empty(), "no # HELP for {undescribed:?}");
    let unknown: Vec<&String> = described.difference(&recorded).collect();
    assert!(unknown.is_empty(), "described, never recorded: {unknown:?}");
}

/// The metric names a PromQL expression reads.
fn metrics_read(expr: &str) -> Vec<String> {
    let strings = regex::Regex::new(r#""[^"]*""#).unwrap();
    let groupings =
        regex::Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
            .unwrap();
    let selectors = regex::Regex::new(r"\{[^}]*\}|\[[^\]]*\]").unwrap();
    let identifier = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    let expr = strings.replace_all(expr, "");
    let expr = groupings.replace_all(&expr, "");
    let expr = selectors.replace_all(&expr, " ");
    identifier
        .find_iter(&expr)
        .filter(|m| !expr[m.end()..].trim_start().starts_with('('))
        .map(|m| m.as_str())
        .filter(|word| !["and", "or", "unless", "bool", "offset"].contains(word))
        .map(str::to_owned)
        .collect()
}

#[test]
fn metrics_read_finds_metric_names_only() {
    assert_eq!(
        metrics_read(
            r#"sum by (service, le) (rate(http_request_duration_seconds_bucket{service=~"$service"}[5m])) > 1 unless on (x) up == 0"#
        ),
        ["http_request_duration_seconds_bucket", "up"]
    );
}

/// The alert rules' expressions (`expr:` one line, or a `|` block).
fn alert_exprs() -> Vec<String> {
    let rules = std::fs::read_to_string(Path::new(PROMETHEUS).join("alerts.yaml")).unwrap();
    let mut exprs = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(expr) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        if expr.trim() != "|" {
            exprs.push(expr.trim().to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut block = String::new();
        while let Some(next) = lines.next_if(|l| l.len() - l.trim_start().len() > indent) {
            block.push_str(next.trim());
            block.push(' ');
        }
        exprs.push(block);
    }
    exprs
}

/// Every dashboard is provisioned from the data source compose provides,
/// each of its queries is valid PromQL (`promtool check rules` on them as
/// recording rules, Grafana's variables given values), and every metric a
/// dashboard or an alert reads is one the code records: a renamed metric
/// cannot leave a blank panel or an alert that never fires.
#[test]
fn the_dashboards_and_alerts_read_valid_promql_over_recorded_metrics() {
    let datasource = std::fs::read_to_string(
        Path::new(GRAFANA).join("provisioning/datasources/prometheus.yaml"),
    )
    .unwrap();
    assert!(datasource.contains("uid: prometheus"));
    let mut exprs = Vec::new();
    let mut uids = std::collections::BTreeSet::new();
    let mut boards = 0;
    for entry in std::fs::read_dir(Path::new(GRAFANA).join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        boards += 1;
        assert!(
            uids.insert(board["uid"].as_str().unwrap().to_owned()),
            "{path:?}: a uid used twice"
        );
        assert!(board["title"].as_str().is_some_and(|t| !t.is_empty()));
        let panels = board["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{path:?}");
        for panel in panels {
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{path:?}: {}", panel["title"]);
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "prometheus", "{path:?}");
                exprs.push(target["expr"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(
        boards >= 6,
        "overview, gateway, events, LLM spend, agents, city"
    );
    let alerts = alert_exprs();
    assert!(alerts.len() >= 12, "{alerts:?}");
    let recorded = recorded_metrics();
    for expr in exprs.iter().chain(&alerts) {
        for name in metrics_read(expr) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                recorded.contains(&name) || recorded.contains(base),
                "{expr} reads {name}, which nothing records"
            );
        }
    }
    let Some(promtool) = daarion_testkit::require_program(&["/usr/bin/promtool"]) else {
        return;
    };
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (n, expr) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$service", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{n}\n        expr: {}\n",
            serde_json::Value::String(expr)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboards.yaml"), rules).unwrap();
    passes(
        Command::new(&promtool)
            .args(["check", "rules", "dashboards.yaml"])
            .current_dir(dir.path()),
    );
}
