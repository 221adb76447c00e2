//! Auth rules without I/O: password policy and hashing, TOTP, token material, encryption of
//! secrets at rest.

pub mod crypto_box;
pub mod password;
pub mod secrets;
pub mod totp;
