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
}
