//! The `daarion` binary's commands, run as a user would run them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn daarion(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_daarion"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn");
    command
}

/// Fails unless the command succeeded and said each of `lines`.
fn succeeds_saying(output: &std::process::Output, lines: &[&str]) {
    let said = text(output);
    assert!(output.status.success(), "{said}");
    for line in lines {
        assert!(said.contains(line), "{line:?} in {said}");
    }
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let output = daarion(dir.path()).arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        text(&output).trim(),
        format!("daarion {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_check_names_the_wrong_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ok = daarion(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("configuration is valid"));

    let bad_env = daarion(dir.path())
        .args(["config", "check"])
        .env("REDIS_URL", "http://not-redis")
        .output()
        .unwrap();
    assert!(!bad_env.status.success());
    assert!(text(&bad_env).contains("REDIS_URL"), "{}", text(&bad_env));

    let bad_type = daarion(dir.path())
        .args(["config", "check"])
        .env("DAARION__CITY__MAX_MESSAGE_CHARS", "lots")
        .output()
        .unwrap();
    assert!(!bad_type.status.success());
    assert!(
        text(&bad_type)
            .to_lowercase()
            .contains("city.max_message_chars"),
        "{}",
        text(&bad_type)
    );

    std::fs::write(dir.path().join("daarion.toml"), "[city]\nno_such_key = 1\n").unwrap();
    let unknown = daarion(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("no_such_key"), "{}", text(&unknown));

    let missing = daarion(dir.path())
        .args(["--config", "nope.toml", "config", "check"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(text(&missing).contains("nope.toml"));
}

#[test]
fn backup_list_and_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        daarion(dir.path())
            .arg("migrate")
            .status()
            .unwrap()
            .success()
    );
    let made = daarion(dir.path()).arg("backup").output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let line = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert!(
        line.contains("sqlite") && line.contains("backups/daarion-"),
        "{line}"
    );
    let listed = daarion(dir.path())
        .args(["backup", "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), line);
    let file = line.split_whitespace().last().unwrap().to_owned();
    let restored = daarion(dir.path())
        .args(["restore", &file, "--data-dir", "elsewhere"])
        .output()
        .unwrap();
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(dir.path().join("elsewhere/daarion.db").is_file());
    // Never over a city.
    let again = daarion(dir.path())
        .args(["restore", &file])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
}

#[test]
fn doctor_reports_what_is_wrong_and_fails_on_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let doctor = || daarion(dir.path()).arg("doctor").output().unwrap();
    let fresh = doctor();
    assert!(!fresh.status.success());
    assert!(
        text(&fresh).contains("PROBLEM  database   no database in"),
        "{}",
        text(&fresh)
    );
    assert!(
        daarion(dir.path())
            .arg("migrate")
            .status()
            .unwrap()
            .success()
    );
    succeeds_saying(
        &doctor(),
        &[
            "ok       database   SQLite, ",
            "ok       bus        in-process",
            "ok       disk       ",
            "warning  backups    none recorded yet",
            "0 problem(s)",
        ],
    );
    assert!(
        daarion(dir.path())
            .arg("backup")
            .status()
            .unwrap()
            .success()
    );
    assert!(text(&doctor()).contains("ok       backups    newest "));
}

/// On the real backends: a database whose migrations have not run is a
/// problem; then the database, the server's clock, NATS and Redis answer.
#[tokio::test]
async fn doctor_checks_postgres_nats_and_redis() {
    let (Some(pg), Some(nats), Some(redis)) = (
        daarion_testkit::require_env("DATABASE_URL"),
        daarion_testkit::require_env("NATS_URL"),
        daarion_testkit::require_env("REDIS_URL"),
    ) else {
        return;
    };
    let database = daarion_testkit::fresh_postgres_database(&pg).await;
    let dir = tempfile::tempdir().unwrap();
    let doctor = || {
        daarion(dir.path())
            .arg("doctor")
            .env("DATABASE_URL", &database)
            .env("NATS_URL", &nats)
            .env("DAARION__NATS_NAMESPACE", daarion_testkit::unique("t"))
            .env("REDIS_URL", &redis)
            .output()
            .unwrap()
    };
    let before = doctor();
    assert!(!before.status.success());
    assert!(
        text(&before).contains("migrations pending"),
        "{}",
        text(&before)
    );
    let migrated = daarion(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", &database)
        .status()
        .unwrap();
    assert!(migrated.success());
    succeeds_saying(
        &doctor(),
        &[
            "ok       database   PostgreSQL, ",
            "ok       clock      ",
            "ok       bus        NATS JetStream answers",
            "ok       cache      Redis answers",
        ],
    );
}

#[test]
fn migrate_applies_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let up = daarion(dir.path()).arg("migrate").output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("applied city/001 001_create_city_tables"),
        "{}",
        text(&up)
    );
    let again = daarion(dir.path()).arg("migrate").output().unwrap();
    assert!(
        text(&again).contains("0 migration(s) applied"),
        "{}",
        text(&again)
    );
    let down = daarion(dir.path())
        .args(["migrate", "--down", "1"])
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        text(&down).contains("1 migration(s) rolled back"),
        "{}",
        text(&down)
    );
    let reapply = daarion(dir.path()).arg("migrate").output().unwrap();
    assert!(
        text(&reapply).contains("1 migration(s) applied"),
        "{}",
        text(&reapply)
    );
}

#[test]
fn up_is_healthy_quickly_and_health_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = daarion_testkit::free_port("127.0.0.1");
    let started = Instant::now();
    let mut child = daarion(dir.path())
        .args([
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "city-data",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    let healthy = loop {
        let status = daarion(dir.path())
            .args(["health", &url])
            .output()
            .unwrap()
            .status;
        if status.success() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(healthy, "daarion up did not become healthy");
    assert!(dir.path().join("city-data/daarion.db").exists());
    // SIGTERM stops it cleanly.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains(&format!("is up at http://127.0.0.1:{port}")),
        "{out}"
    );

    let down = daarion(dir.path()).args(["health", &url]).output().unwrap();
    assert_eq!(down.status.code(), Some(1));
}

#[test]
fn serving_an_unknown_service_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let output = daarion(dir.path())
        .args(["serve", "nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("unknown service \"nope\""),
        "{}",
        text(&output)
    );
}

#[test]
fn the_nginx_export_passes_nginx_t() {
    let dir = tempfile::tempdir().unwrap();
    let output = daarion(dir.path())
        .args(["gateway", "export", "nginx"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, &output.stdout).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("location /api/city/ {"), "{stdout}");
    assert!(stdout.contains("location /ws/city/ {"));

    let Some(nginx) = daarion_testkit::require_program(daarion_testkit::NGINX) else {
        return;
    };
    let pid = dir.path().join("nginx.pid");
    let check = Command::new(nginx)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .arg("-g")
        .arg(format!("pid {};", pid.display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t rejected the export:\n{}",
        text(&check)
    );
    assert!(text(&check).contains("syntax is ok"), "{}", text(&check));
}

#[test]
fn the_ingress_export_has_one_object_per_configured_route() {
    let dir = tempfile::tempdir().unwrap();
    let output = daarion(dir.path())
        .args(["gateway", "export", "ingress", "--host", "city.example"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let yaml = String::from_utf8_lossy(&output.stdout);
    assert!(yaml.contains("kind: Ingress"));
    assert!(yaml.contains("name: daarion-api-city"));
    assert!(yaml.contains("- host: city.example"));
    assert!(
        !yaml.contains("grafana"),
        "unconfigured upstreams are left out"
    );
}

#[test]
fn token_issue_prints_a_token_the_services_accept() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cLi7-Qw2e-Rt5y-Ui8o-Pa3s-Df6g-Hj9k";
    let output = daarion(dir.path())
        .args(["token", "issue", "--audience", "city", "--ttl", "60"])
        .env("DAARION__SERVICE_TOKEN_SECRET", secret)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let token = String::from_utf8(output.stdout).unwrap();
    let tokens = daarion_access::token::ServiceTokens::new(secret.as_bytes()).unwrap();
    let principal = tokens.verify(token.trim(), "city").unwrap();
    assert_eq!(principal.id, "ops");

    let too_long = daarion(dir.path())
        .args(["token", "issue", "--audience", "city", "--ttl", "3600"])
        .env("DAARION__SERVICE_TOKEN_SECRET", secret)
        .output()
        .unwrap();
    assert!(!too_long.status.success());
    let unset = daarion(dir.path())
        .args(["token", "issue", "--audience", "city"])
        .output()
        .unwrap();
    assert!(
        text(&unset).contains("service_token_secret"),
        "{}",
        text(&unset)
    );
}

#[test]
fn admin_invite_prints_a_one_time_invitation() {
    let dir = tempfile::tempdir().unwrap();
    let output = daarion(dir.path())
        .args(["admin", "invite", "--role", "admin", "--hours", "1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let invite = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(invite.trim().starts_with("inv_"), "{invite}");
    assert!(text(&output).contains("admin invitation"));
    let bad = daarion(dir.path())
        .args(["admin", "invite", "--hours", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// A city started on a network address is not the first visitor's (#13):
/// `up` prints a one-time admin invitation, registration without one is
/// refused until an admin exists, and a restart with an admin prints none.
#[tokio::test]
async fn on_a_network_address_the_first_admin_needs_the_printed_invitation() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let port = daarion_testkit::free_port("0.0.0.0");
    let start = || {
        tokio::process::Command::from(daarion(dir.path()))
            .args(["up", "--listen", &format!("0.0.0.0:{port}")])
            .args(["--data-dir", "city-data"])
            .env(
                "DAARION__AUTH__ORIGINS",
                format!("[\"{}\"]", daarion_testkit::passkey::ORIGIN),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // Reads the start-up lines until the "is up" line and the one after it.
    async fn banner(child: &mut tokio::process::Child) -> String {
        let stdout = child.stdout.as_mut().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                out.push_str(&line);
                out.push('\n');
                if line.contains("is up at") {
                    // The invitation, when there is one, follows at once.
                    if let Ok(Ok(Some(next))) =
                        tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await
                    {
                        out.push_str(&next);
                    }
                    break;
                }
            }
        })
        .await
        .expect("daarion up starts");
        out
    }

    let mut first = start();
    let out = banner(&mut first).await;
    let invite = out
        .split_whitespace()
        .find(|word| word.starts_with("inv_"))
        .unwrap_or_else(|| panic!("no invitation printed: {out}"))
        .to_owned();
    let base = format!("http://127.0.0.1:{port}");
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    let refused = daarion_testkit::passkey::Person::register(&client, &base, "mallory").await;
    let error = refused.err().expect("no admin yet: registration refused");
    assert!(error.to_string().contains("403"), "{error}");
    let ada = daarion_testkit::passkey::Person::register_with(&client, &base, "ada", Some(&invite))
        .await
        .unwrap();
    let me: serde_json::Value = client
        .get(format!("{base}/api/auth/me"))
        .header("cookie", ada.cookie())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["city_role"], "admin");
    drop(first);

    let mut second = start();
    let out = banner(&mut second).await;
    assert!(!out.contains("inv_"), "an admin exists: {out}");
}

/// The example file's placeholder secret is refused by name (#13).
#[test]
fn config_check_refuses_the_example_placeholder_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = daarion(dir.path())
        .args(["config", "check"])
        .env(
            "DAARION__SERVICE_TOKEN_SECRET",
            "CHANGE_ME_TO_32_OR_MORE_RANDOM_BYTES",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = text(&output);
    assert!(
        said.contains("service_token_secret") && said.contains("placeholder"),
        "{said}"
    );
}

/// `up` on another port works with passkeys out of the box (#13): the
/// default origin follows the listener.
#[tokio::test]
async fn passkeys_work_on_the_port_up_listens_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = daarion_testkit::free_port("127.0.0.1");
    let mut child = tokio::process::Command::from(daarion(dir.path()))
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", "city-data"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    daarion_testkit::eventually("up is healthy", Duration::from_secs(30), || async {
        let response = client.get(format!("{base}/health")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let mut authenticator = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let page = format!("http://localhost:{port}").parse().unwrap();
    let (finished, _) = daarion_testkit::passkey::register_from(
        &client,
        &base,
        "ada",
        None,
        &mut authenticator,
        page,
    )
    .await
    .unwrap();
    assert_eq!(finished.status(), 201, "{}", finished.text().await.unwrap());
    child.kill().await.unwrap();
}
