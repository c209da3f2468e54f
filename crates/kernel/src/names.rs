//! URL names shared by services (rooms, microDAOs): one rule, one message.

/// What a slug may be, for error messages.
pub const SLUG_RULE: &str =
    "slug must be 2-63 characters of a-z, 0-9 and -, starting with a letter or digit";

/// A URL name: 2 to 63 characters of `a-z`, `0-9` and `-`, starting with a
/// letter or digit.
pub fn is_slug(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    (2..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_short_lowercase_url_names() {
        for good in ["ab", "general", "dao-7", "9lives"] {
            assert!(super::is_slug(good), "{good}");
        }
        for bad in ["a", "-x", "Caps", "with space", "ü-name", &"x".repeat(64)] {
            assert!(!super::is_slug(bad), "{bad}");
        }
    }
}
