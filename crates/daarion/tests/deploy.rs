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
