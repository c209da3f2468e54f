//! Secret settings: service-token secrets, provider API keys, passwords.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A fresh 256-bit secret, URL-safe (tokens, keys, invitation codes).
pub fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Secrets we generate carry at least 80 random bits, so a fast hash is
/// enough to make a leaked table useless (argon2 is for human-chosen secrets).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A secret setting. `Debug`, `Display` and serialization show `***`, so
/// `daarion config check`, log lines and error messages never print it;
/// only [`Secret::expose`] gives the value, at the place that uses it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// A secret copied from an example (`CHANGE_ME…`) or typed rather than
/// generated (fewer than 10 distinct bytes, e.g. `aaaa…` or `abcabc…`).
pub fn is_placeholder(secret: &[u8]) -> bool {
    let text = String::from_utf8_lossy(secret).to_ascii_lowercase();
    let copied = [
        "change_me",
        "change-me",
        "changeme",
        "replace_me",
        "replace-with",
        "example",
        "secret",
    ]
    .iter()
    .any(|marker| text.contains(marker));
    let distinct = secret
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    copied || distinct < 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_never_shown() {
        let secret: Secret =
            serde_json::from_str("\"sk-live-123\"").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(secret.expose(), "sk-live-123");
        let shown = [
            format!("{secret:?}"),
            format!("{secret}"),
            serde_json::to_string(&secret).unwrap_or_default(),
        ];
        for text in shown {
            assert!(!text.contains("sk-live"), "{text}");
        }
    }
}
