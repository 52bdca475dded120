//! A peer's reply as the asking peer decodes it: gRPC framing, protobuf, then the value codec.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    groupcache_tests::fuzz_harness::peer_reply(data);
});
