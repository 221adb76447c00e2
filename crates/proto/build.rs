//! Generates the prost messages and tonic clients and servers from `proto/sutazai/v1`.
//!
//! protoc comes from `protoc-bin-vendored` and is handed to prost through its `Config`, not
//! through the `PROTOC` variable: setting a process variable is `unsafe` in Rust 2024 and the
//! workspace forbids unsafe code. The build therefore needs no system `protobuf-compiler`.

use std::env;
use std::error::Error;
use std::path::PathBuf;

/// One file per service plus the shared messages, relative to `proto/sutazai/v1`.
const PROTO_FILES: &[&str] = &[
    "common.proto",
    "auth.proto",
    "orchestrator.proto",
    "coordinator.proto",
    "arbitrator.proto",
    "hardware.proto",
    "vector.proto",
];

/// Written to `OUT_DIR` and exposed as `FILE_DESCRIPTOR_SET` for gRPC server reflection.
const DESCRIPTOR_SET_FILE_NAME: &str = "sutazai_v1_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // The workspace root's proto/ is the import root, so files import "sutazai/v1/common.proto".
    let proto_root = manifest_dir.join("../../proto");
    let package_dir = proto_root.join("sutazai/v1");

    // A directory is scanned as a whole, so adding or editing any .proto reruns the build.
    println!("cargo:rerun-if-changed={}", package_dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let proto_files: Vec<PathBuf> = PROTO_FILES.iter().map(|file_name| package_dir.join(file_name)).collect();
    // The vendored include directory provides google/protobuf/*.proto (Struct, Value, Timestamp).
    let include_dirs = vec![proto_root, protoc_bin_vendored::include_path()?];

    let mut prost_config = tonic_prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out_dir.join(DESCRIPTOR_SET_FILE_NAME))
        .compile_with_config(prost_config, &proto_files, &include_dirs)?;
    Ok(())
}
