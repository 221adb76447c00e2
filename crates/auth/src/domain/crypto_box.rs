//! Encryption of secrets at rest (signing private keys, TOTP secrets) with keys derived from the
//! configured master key: ChaCha20-Poly1305 with a random nonce stored in front of the ciphertext.
//! Each purpose derives its own key, so a TOTP secret can never be decrypted as a signing key.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

const NONCE_BYTES: usize = 12;

/// Encrypts and decrypts one purpose's secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretBox(***)")
    }
}

/// Decryption failed: wrong master key or corrupted data.
#[derive(Debug, thiserror::Error)]
#[error("cannot decrypt a stored secret (wrong master key or corrupted data)")]
pub struct DecryptError;

/// Derives a 32-byte key for `purpose` from the master key.
pub fn derive_key(master_key: &str, purpose: &str) -> [u8; 32] {
    super::secrets::hmac_sha256(master_key.as_bytes(), &[b"sutazai:", purpose.as_bytes()])
}

impl SecretBox {
    /// A box for `purpose` under the master key.
    pub fn new(master_key: &str, purpose: &str) -> Self {
        let key = derive_key(master_key, purpose);
        Self { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    /// `nonce || ciphertext`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0_u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption only fails for inputs beyond 256 GiB.
        let ciphertext = self.cipher.encrypt(Nonce::from_slice(&nonce), plaintext).unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        sealed
    }

    /// Reverses [`SecretBox::seal`].
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if sealed.len() < NONCE_BYTES {
            return Err(DecryptError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| DecryptError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_purpose_separation() {
        let keys = SecretBox::new(MASTER, "signing-keys");
        let sealed = keys.seal(b"private key bytes");
        assert_ne!(&sealed[NONCE_BYTES..], b"private key bytes");
        assert_eq!(keys.open(&sealed).unwrap(), b"private key bytes");
        assert!(SecretBox::new(MASTER, "totp").open(&sealed).is_err());
        assert!(SecretBox::new("another master key of 32 bytes!!", "signing-keys").open(&sealed).is_err());
        assert!(keys.open(b"short").is_err());
    }
}
