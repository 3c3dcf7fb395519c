//! Generates the gRPC types from `proto/` with a vendored `protoc`, so a build
//! needs no system protobuf compiler, plus proto3-JSON (pbjson) impls for the CLI.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single threaded.
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor = out.join("callmood_descriptor.bin");
    let proto = "proto/callmood/v1/callmood.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_protos(&[proto], &["proto"])?;
    let bytes = std::fs::read(&descriptor)?;
    pbjson_build::Builder::new()
        .register_descriptors(&bytes)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".callmood"])?;
    Ok(())
}
