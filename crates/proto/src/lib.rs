//! gRPC contracts of the SutazAI services, generated at build time from `proto/sutazai/v1`.
//!
//! [`v1`] holds the prost messages and, per service, a tonic client (`*_service_client`) and
//! server (`*_service_server`). The `.proto` files are the source of truth: change them, not
//! the generated code. Errors travel as gRPC statuses whose codes follow `ServiceErrorCode`.

/// Package `sutazai.v1`: every message, enum, client and server of the contracts.
// Generated code is not ours to restyle or document; the allowances stop at this module so the
// hand-written rest of the crate keeps the workspace lints.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("sutazai.v1");
}

pub mod json;

/// Encoded `FileDescriptorSet` of every contract and its imports, for gRPC server reflection
/// (`tonic-reflection`'s `register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("sutazai_v1_descriptor");

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::FILE_DESCRIPTOR_SET;

    #[test]
    fn descriptor_set_describes_every_service() -> Result<(), prost::DecodeError> {
        let descriptor_set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)?;
        let mut service_names = Vec::new();
        for file in &descriptor_set.file {
            if file.package() != "sutazai.v1" {
                continue;
            }
            for service in &file.service {
                service_names.push(service.name().to_owned());
            }
        }
        service_names.sort();
        assert_eq!(
            service_names,
            [
                "ArbitratorService",
                "AuthService",
                "CoordinatorService",
                "HardwareService",
                "OrchestratorService",
                "VectorService",
            ]
        );
        Ok(())
    }
}
