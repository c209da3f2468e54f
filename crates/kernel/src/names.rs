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

/// A display name (a community's, an agent's): trimmed, 1 to `max`
/// printable characters.
pub fn display_name(raw: &str, max: usize) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > max || name.chars().any(char::is_control) {
        return Err(format!("name must be 1-{max} printable characters"));
    }
    Ok(name.to_owned())
}

/// A description: trimmed, at most `max` characters.
pub fn description(raw: &str, max: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().count() > max {
        return Err(format!("description must be at most {max} characters"));
    }
    Ok(text.to_owned())
}

/// An avatar: an `https://` address (never `javascript:` or data) of at
/// most 512 bytes.
pub fn avatar_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    let valid = url.starts_with("https://")
        && url.len() <= 512
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(url.to_owned())
    } else {
        Err("avatar_url must be an https:// address of at most 512 bytes".into())
    }
}

/// An enum of names a wire format and a store both hold (`snake_case` on
/// the wire, the same text in a column): the type, serde and OpenAPI
/// derives, `ALL`, `as_str` and `parse`. Each variant's text must be its
/// `snake_case` name, so the wire and the column agree.
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq,
            ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw)
            }
        }
    };
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

    #[test]
    fn names_descriptions_and_avatars_are_bounded() {
        assert_eq!(
            super::display_name("  Kyiv Makers ", 80).unwrap(),
            "Kyiv Makers"
        );
        assert!(super::display_name("", 80).is_err());
        assert!(super::display_name(&"x".repeat(81), 80).is_err());
        assert!(super::display_name("a\u{7}b", 80).is_err());
        assert!(super::description(&"d".repeat(11), 10).is_err());
        assert!(super::avatar_url("javascript:alert(1)").is_err());
        assert!(super::avatar_url("https://example.org/a b.png").is_err());
        assert!(super::avatar_url("https://example.org/a.png").is_ok());
    }
}
