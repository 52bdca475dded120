//! Tests that must run alone in their process: those that install process-wide state (a global
//! tracing subscriber, a metrics recorder) or measure the whole process (RSS, log volume, every
//! span). `cargo test` runs the tests of one binary on threads of one process, so each such test
//! starts by calling [`alone_in_this_process`]: the first call runs the same test again in a
//! child process of this test binary, with nothing else in it, and checks that it passed.

use std::process::Stdio;
use std::time::Duration;

use crate::TEST_LIMIT;

/// Set in a child process to the name of the one test it runs.
pub const ALONE: &str = "GROUPCACHE_TEST_ALONE";

/// Held while a child process runs: one at a time, as when each of these tests was a test binary
/// of its own (`cargo test` runs binaries one after the other). They measure memory and time
/// under load they make themselves; two at once on two cores would measure each other.
static ONE_CHILD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The name libtest gives the test `name` written in module `module` (`module_path!()`): the
/// module path without the test binary's own name, then `name`. Run it alone with
/// `<binary> <that name> --exact`.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_binary, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}

/// Whether this process runs test `name` of `module` (`module_path!()`) and nothing else.
///
/// If it does (it is the child this function starts), returns `true`: run the test's body.
/// Otherwise runs this test binary again with only that test selected (once no other such child
/// runs), waits for it (within [`TEST_LIMIT`] and a little more, for the child's own start),
/// passes its output on, fails if it failed, and returns `false`: the caller returns at once.
pub async fn alone_in_this_process(module: &str, name: &str) -> bool {
    let test = test_name(module, name);
    if std::env::var(ALONE).is_ok_and(|alone| alone == test) {
        return true;
    }
    let _turn = ONE_CHILD_AT_A_TIME.lock().await;
    let child = tokio::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, &test)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TEST_LIMIT + Duration::from_secs(30), child)
        .await
        .unwrap_or_else(|_| panic!("{test}, alone in a child process, exceeded its time limit"))
        .expect("the child process running the test");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    // Through the test harness's capture: shown if this test fails, or with --nocapture.
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        output.status.success(),
        "{test}, alone in a child process, failed: {}",
        output.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child process ran {test} and nothing else"
    );
    false
}
