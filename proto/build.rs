//! Compiles `csi.proto` into Rust at build time.
//!
//! The protobuf is parsed by `protox` (a pure-Rust compiler), so neither a
//! system `protoc` nor network access is needed. The resulting descriptor set
//! is handed to `tonic-prost-build`, which emits the prost messages plus the
//! tonic client and server stubs into `OUT_DIR`.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=csi.proto");
    println!("cargo:rerun-if-changed=build.rs");

    // Include source info so the proto comments become rustdoc, and the
    // well-known imports so prost-build sees every referenced type.
    let fds = protox::Compiler::new(["."])?
        .include_source_info(true)
        .include_imports(true)
        .open_file("csi.proto")?
        .file_descriptor_set();

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
