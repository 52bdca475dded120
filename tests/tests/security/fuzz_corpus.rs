//! Replays the fuzz targets' saved corpus and every input that once crashed them (see `fuzz/`)
//! through the same harness, on every `cargo test`: a regression fails here without libFuzzer.

use std::path::{Path, PathBuf};

use groupcache_tests::fuzz_harness;

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

#[test]
fn the_request_harness_reaches_the_service() {
    // The harness is only worth replaying if inputs get that far: a valid request is served,
    // an unauthenticated one refused, a too-long key rejected.
    let seed = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds/peer_request")
            .join(name);
        fuzz_harness::peer_request(&std::fs::read(path).expect("a seed"))
    };
    assert_eq!(seed("get_open"), Some(0));
    assert_eq!(seed("get_token"), Some(0));
    assert_eq!(
        seed("get_wrong_token"),
        Some(tonic::Code::Unauthenticated as i32)
    );
    assert_eq!(
        seed("get_long_key"),
        Some(tonic::Code::InvalidArgument as i32)
    );
    assert_eq!(seed("get_missing"), Some(tonic::Code::NotFound as i32));
}

#[test]
fn the_peer_reply_corpus_replays_cleanly() {
    replay("peer_reply", fuzz_harness::peer_reply);
}
