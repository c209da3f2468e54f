//! Auth rules independent of HTTP: names, secrets and their hashes, errors.

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; retry in {0:?}")]
    RateLimited(std::time::Duration),
    #[error("passkey ceremony failed: {0}")]
    Ceremony(String),
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error(transparent)]
    Cache(#[from] daarion_cache::CacheError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<daarion_store::sql::Error> for AuthError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

/// A username: 3-32 of lowercase letters, digits, `-`, `_`, `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let name = raw.trim().to_ascii_lowercase();
        let valid = (3..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if valid {
            Ok(Self(name))
        } else {
            Err(AuthError::Invalid(
                "username must be 3-32 characters: lowercase letters, digits, '-', '_', '.', starting with a letter or digit".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text label (display name, passkey or key name): 1-64 characters.
pub fn label(raw: &str, what: &str) -> Result<String, AuthError> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > 64 || text.chars().any(char::is_control) {
        return Err(AuthError::Invalid(format!(
            "{what} must be 1-64 printable characters"
        )));
    }
    Ok(text.to_owned())
}

pub use daarion_kernel::secret::{hash_secret, new_secret};

/// A recovery code: 16 base32 characters (80 bits) in four groups.
pub fn new_recovery_code() -> String {
    // Crockford's base32: no i, l, o, u to misread.
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let bytes = rand::random::<[u8; 16]>();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Codes are typed by people: case, spaces and dashes do not matter.
pub fn normalize_recovery_code(raw: &str) -> String {
    let compact: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    compact
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalized_and_bounded() {
        assert_eq!(
            Username::parse(" Alice ").map(|u| u.0).ok().as_deref(),
            Some("alice")
        );
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("-bob").is_err());
        assert!(Username::parse("bob smith").is_err());
        assert!(Username::parse(&"b".repeat(33)).is_err());
    }

    #[test]
    fn recovery_codes_survive_sloppy_typing() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19);
        let typed = code.to_uppercase().replace('-', " ");
        assert_eq!(normalize_recovery_code(&typed), code);
        assert_ne!(new_recovery_code(), code);
    }

    #[test]
    fn secrets_are_long_and_hashes_stable() {
        let s = new_secret();
        assert_eq!(s.len(), 43);
        assert_eq!(hash_secret(&s), hash_secret(&s));
        assert_ne!(hash_secret(&s), hash_secret(&new_secret()));
    }
}
