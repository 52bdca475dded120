//! A request to a peer's gRPC service: path, content type, token and body from the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    groupcache_tests::fuzz_harness::peer_request(data);
});
