//! The shared cluster secret: peers prove knowledge of it in the TCP handshake, and it tags every
//! membership gossip datagram.

use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Errors of building a [`Secret`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret has no bytes (after trimming, for a file).
    #[error("the cluster secret{0} is empty")]
    Empty(String),
    /// The secret file cannot be read.
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A shared cluster secret. Its `Debug` output never shows the bytes; equality is compared in
/// constant time.
///
/// ```
/// use dd_core::transport::tcp::Secret;
/// let secret = Secret::new("correct horse battery staple").unwrap();
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret made of `bytes`; refused when empty.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self, SecretError> {
        let bytes = bytes.as_ref();
        if bytes.is_empty() {
            return Err(SecretError::Empty(String::new()));
        }
        Ok(Self(Arc::from(bytes)))
    }

    /// Reads the secret from a file; leading and trailing ASCII whitespace (such as the final
    /// newline an editor adds) is not part of the secret.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err(SecretError::Empty(format!(" in {}", path.display())));
        }
        Ok(Self(Arc::from(trimmed)))
    }

    /// An HMAC-SHA256 keyed with the secret, started with `domain` (a label that keeps the tags
    /// of one use from being valid for another): the TCP handshake's proofs and the membership
    /// gossip's datagram tags.
    pub(crate) fn mac(&self, domain: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).ok()?;
        mac.update(domain);
        Some(mac)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Constant time in the contents (the length is not secret-dependent enough to matter).
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for Secret {}
