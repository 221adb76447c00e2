//! Authentication shared by every service: the access-token contract, where revocations live, and
//! the verifier that checks tokens against the auth service's JWKS, with its axum extractor and
//! gRPC helper.

pub mod claims;
pub mod error;
pub mod extract;
pub mod jwks;
pub mod keys;
pub mod revocation;
pub mod verifier;

pub use claims::{
    ACCESS_TOKEN_HEADER_TYPE, ACCESS_TOKEN_TYPE, ADMIN_ROLE, AccessClaims, Principal, PrincipalKind,
};
pub use error::{AuthError, InvalidTokenReason, RevocationReason};
pub use extract::{AuthRejection, authenticate_grpc, bearer_token, require_admin, require_scope};
pub use jwks::HttpJwksSource;
pub use keys::{KeySource, KeySourceError, StaticKeySource, VerificationKey, VerificationKeys};
pub use revocation::{AUTH_KEY_PREFIX, RevocationKeys};
pub use verifier::{TokenVerifier, VerifierSettings, verifier_from_auth_url};
