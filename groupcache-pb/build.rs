//! Compiles `proto/groupcache.proto` with `protox` (pure Rust), so no `protoc` has to be
//! installed anywhere: not on developer machines, not in CI.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["groupcache.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // `bytes` fields become `bytes::Bytes`, so a value is shared, not copied, from the
        // cache into the reply.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
