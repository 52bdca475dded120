//! Compiles `proto/groupcache.proto` with `protox` (pure Rust), so no `protoc` has to be
//! installed anywhere: not on developer machines, not in CI.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["groupcache.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // `bytes` fields become `bytes::Bytes`: a reply's value is a reference to the cached
        // bytes until tonic encodes it (one copy, into its send buffer), and a received value is
        // a slice of the frame it arrived in, not a copy.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
