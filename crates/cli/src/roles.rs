//! The service roles built into this binary.
//!
//! A role is a service library (`sutazai-<role>`) with `Application::build(config)` and
//! `run_until_stopped(shutdown)`; `sutazai up` starts all of them in one process and
//! `sutazai serve ROLE` starts one, through the same code. Roles are added here as their crates
//! land (see the issues); until then this binary carries only the platform foundation.

/// A role and the port it listens on (HTTP and gRPC share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Role {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
}

/// Every role this binary can run.
pub(crate) const BUILT_ROLES: [Role; 0] = [];

/// The built roles' names, for messages.
pub(crate) fn names() -> String {
    if BUILT_ROLES.is_empty() {
        return "none yet".to_owned();
    }
    BUILT_ROLES.iter().map(|role| role.name).collect::<Vec<_>>().join(", ")
}

/// `sutazai roles`.
pub(crate) fn print_roles() {
    if BUILT_ROLES.is_empty() {
        println!("no service roles are built into this binary yet");
    }
    for role in BUILT_ROLES {
        println!("{:<14} {}", role.name, role.port);
    }
}
