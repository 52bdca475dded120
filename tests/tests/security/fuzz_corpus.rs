//! Replays the fuzz targets' saved corpus and every input that once crashed them (see `fuzz/`)
//! through the same harness, on every `cargo test`: a regression fails here without libFuzzer.

use std::path::{Path, PathBuf};

use groupcache_pb::v2::GetRequest;
use groupcache_tests::fuzz_harness::{self, FUZZ_GROUP};
use prost::Message;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay<T>(target: &str, run: fn(&[u8]) -> T) {
    let files = inputs(target);
    assert!(
        files.len() >= 5,
        "the saved corpus of {target} is missing: found {} inputs",
        files.len()
    );
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        // A panic names the input that caused it.
        let result = std::panic::catch_unwind(|| {
            run(&data);
        });
        assert!(result.is_ok(), "{target} panicked on {}", file.display());
    }
}

#[test]
fn the_peer_request_corpus_replays_cleanly() {
    replay("peer_request", fuzz_harness::peer_request);
}

/// A hand-written seed of the `peer_request` target.
fn seed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/peer_request")
        .join(name);
    std::fs::read(path).expect("a seed")
}

/// The request a seed carries: after the selector byte, one frame (flag, 4-byte length).
fn request_in(seed: &[u8]) -> GetRequest {
    GetRequest::decode(&seed[6..]).expect("a seed with a well-formed request")
}

#[test]
fn the_request_harness_reaches_the_service() {
    // The harness is only worth replaying if inputs get that far: a valid request is served,
    // an unauthenticated one refused, a too-long key rejected, a missing key not found by the
    // loader. Each of those seeds names the fuzzed group (a group the service does not host
    // would be `NotFound` too, before any key is looked at).
    let run = |name: &str| fuzz_harness::peer_request(&seed(name));
    for name in [
        "get_open",
        "get_token",
        "get_wrong_token",
        "get_long_key",
        "get_missing",
    ] {
        assert_eq!(request_in(&seed(name)).group, FUZZ_GROUP, "{name}");
    }
    assert!(
        request_in(&seed("get_long_key")).key.len() > 64,
        "over the key limit"
    );
    assert_eq!(run("get_open"), Some(0));
    assert_eq!(run("get_token"), Some(0));
    assert_eq!(
        run("get_wrong_token"),
        Some(tonic::Code::Unauthenticated as i32)
    );
    assert_eq!(
        run("get_long_key"),
        Some(tonic::Code::InvalidArgument as i32)
    );
    assert_eq!(run("get_missing"), Some(tonic::Code::NotFound as i32));

    // A group the service does not host, and a v1 peer's body (key in field 1, which v2
    // reads as the group): refused at the group lookup.
    assert_ne!(request_in(&seed("get_unknown_group")).group, FUZZ_GROUP);
    assert_eq!(run("get_unknown_group"), Some(tonic::Code::NotFound as i32));
    let v1 = request_in(&seed("v1_get_open"));
    assert_eq!((v1.group.as_str(), v1.key.as_str()), ("hello", ""));
    assert_eq!(run("v1_get_open"), Some(tonic::Code::NotFound as i32));
}

#[test]
fn the_peer_reply_corpus_replays_cleanly() {
    replay("peer_reply", fuzz_harness::peer_reply);
}
