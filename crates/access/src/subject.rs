//! Who a quota, a budget or a usage view is about: `user:<id>`,
//! `agent:<id>` or `dao:<id>`. One parser for every place that reads them.

use std::fmt;

/// A person, an agent or a microDAO, named as `<kind>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(String),
    Agent(String),
    Dao(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a subject: `user:<id>`, `agent:<id>` or `dao:<id>`, ids of 1-128 letters, digits, '-', '_', '.'"
)]
pub struct SubjectError(pub String);

impl Subject {
    pub fn parse(raw: &str) -> Result<Self, SubjectError> {
        let valid = |id: &str| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match raw.split_once(':') {
            Some(("user", id)) if valid(id) => Ok(Self::User(id.to_owned())),
            Some(("agent", id)) if valid(id) => Ok(Self::Agent(id.to_owned())),
            Some(("dao", id)) if valid(id) => Ok(Self::Dao(id.to_owned())),
            _ => Err(SubjectError(raw.to_owned())),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::User(id) | Self::Agent(id) | Self::Dao(id) => id,
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Agent(_) => "agent",
            Self::Dao(_) => "dao",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.prefix(), self.id())
    }
}

impl std::str::FromStr for Subject {
    type Err = SubjectError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_one_way_everywhere() {
        let ok = [
            ("user:u1", Subject::User("u1".into())),
            ("agent:helper-2", Subject::Agent("helper-2".into())),
            ("dao:d.1_x", Subject::Dao("d.1_x".into())),
        ];
        for (raw, expected) in ok {
            assert_eq!(Subject::parse(raw).as_ref(), Ok(&expected), "{raw}");
            assert_eq!(expected.to_string(), raw);
        }
        let long = format!("user:{}", "a".repeat(129));
        for bad in [
            "user:", "user", "group:x", "user:a b", "user:a:b", "", &long,
        ] {
            assert!(Subject::parse(bad).is_err(), "{bad:?}");
        }
    }
}
