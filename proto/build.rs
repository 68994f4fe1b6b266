//! Compiles `proto/zproxy.proto` with protox (a protobuf compiler written in Rust), so that
//! building never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/zproxy.proto");
    let descriptors = protox::compile(["zproxy.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
