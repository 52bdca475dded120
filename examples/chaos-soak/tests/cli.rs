//! The command line, as a user meets it. (The soak itself is the test of the cluster: CI runs
//! it for 60 s, see `.ci/run`.) Building these tests also builds the `chaos-soak` executable
//! next to `groupcache-node`, which is where the CI step finds both.

use std::path::Path;
use std::process::Command;

fn soak() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chaos-soak"))
}

#[test]
fn help_names_every_flag() {
    let output = soak()
        .arg("--help")
        .output()
        .expect("run chaos-soak --help");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--duration",
        "--out",
        "--keys",
        "--concurrency",
        "--seed",
        "--node-bin",
        "--loads-check",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn a_missing_node_executable_is_a_clear_error_before_anything_starts() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-soak-no-node");
    let output = soak()
        .args([
            "--duration",
            "20s",
            "--node-bin",
            "/nonexistent/groupcache-node",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run chaos-soak");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("no node executable at /nonexistent/groupcache-node"),
        "{stderr}"
    );
    assert!(!out.join("data").exists(), "it wrote a backend anyway");
}

#[test]
fn a_run_too_short_for_its_faults_is_refused() {
    let output = soak()
        .args(["--duration", "5s"])
        .output()
        .expect("run chaos-soak");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("at least 20 s"), "{stderr}");
}
