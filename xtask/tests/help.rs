//! Every command answers `--help` with its usage and success, without
//! doing anything else (no build, no cluster started).

use std::process::Command;

#[test]
fn every_command_answers_help_with_success() {
    for command in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["ci", "--help"],
        &["pg", "start", "--help"],
        &["pg", "stop", "-h"],
        &["reliability", "--help"],
        &["reliability", "--short", "--help"],
        &["bench", "--help"],
        &["bench", "--http", "--rounds", "1", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(command)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command:?}: {}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("reliability") && text.contains("bench"),
            "{command:?}: {text}"
        );
    }
    let unknown = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("no-such-command")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}
