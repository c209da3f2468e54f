//! Subjects are `<domain>.<event>[.<id>]`: dot-separated tokens. Patterns
//! use NATS wildcards: `*` matches one token, `>` (last) matches the rest.

use std::sync::Arc;

use crate::BusError;

/// A durable stream and the subjects it stores (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDef {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
}

/// The platform's own stream: authorization decisions (`audit.*`, written
/// by every process's enforcement layer) and operational alerts (`ops.*`).
/// Every other stream is declared by the service that owns its subjects.
pub const AUDIT: StreamDef = StreamDef {
    name: "AUDIT",
    subjects: &["audit.>", "ops.>"],
};

/// The durable streams of a process. A subject no stream holds is
/// live-only: subscribers see it, durable consumers never do.
#[derive(Debug, Clone)]
pub struct Streams(Arc<[StreamDef]>);

impl Streams {
    /// Checks that names are unique, patterns valid, and that no subject
    /// could belong to two streams (JetStream refuses overlapping streams).
    pub fn new(defs: impl IntoIterator<Item = StreamDef>) -> Result<Self, BusError> {
        let defs: Vec<StreamDef> = defs.into_iter().collect();
        for (i, def) in defs.iter().enumerate() {
            let named = !def.name.is_empty()
                && def
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !named || def.subjects.is_empty() {
                return Err(BusError::InvalidStreams(format!(
                    "stream {:?} needs an upper-case name and at least one subject",
                    def.name
                )));
            }
            for pattern in def.subjects {
                validate_pattern(pattern)?;
            }
            for other in &defs[..i] {
                if other.name == def.name {
                    return Err(BusError::InvalidStreams(format!(
                        "stream {:?} is declared twice",
                        def.name
                    )));
                }
                let overlap = def.subjects.iter().find(|p| {
                    other
                        .subjects
                        .iter()
                        .any(|q| matches(p, q) || matches(q, p))
                });
                if let Some(pattern) = overlap {
                    return Err(BusError::InvalidStreams(format!(
                        "{pattern:?} of stream {:?} overlaps stream {:?}",
                        def.name, other.name
                    )));
                }
            }
        }
        Ok(Self(defs.into()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &StreamDef> {
        self.0.iter()
    }

    /// The stream that stores `subject`, if any.
    pub fn for_subject(&self, subject: &str) -> Option<&StreamDef> {
        self.0
            .iter()
            .find(|s| s.subjects.iter().any(|p| matches(p, subject)))
    }

    /// The stream whose subjects cover every subject `filter` can match.
    pub fn for_filter(&self, filter: &str) -> Result<&StreamDef, BusError> {
        validate_pattern(filter)?;
        // A filter's wildcards are literal tokens here: `city.>` covers
        // `city.message.*` because `>` in the stream pattern swallows them.
        self.for_subject(filter)
            .ok_or_else(|| BusError::NoStream(filter.to_owned()))
    }
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a concrete subject (no wildcards).
pub fn validate(subject: &str) -> Result<(), BusError> {
    if subject.len() <= 512 && subject.split('.').all(valid_token) {
        Ok(())
    } else {
        Err(BusError::InvalidSubject(subject.to_owned()))
    }
}

/// Checks a subscription pattern.
pub fn validate_pattern(pattern: &str) -> Result<(), BusError> {
    let tokens: Vec<&str> = pattern.split('.').collect();
    let ok = pattern.len() <= 512
        && tokens
            .iter()
            .enumerate()
            .all(|(i, t)| valid_token(t) || *t == "*" || (*t == ">" && i == tokens.len() - 1));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidSubject(pattern.to_owned()))
    }
}

/// Whether `subject` matches `pattern`.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(pattern: &str, subject: &str, expected: bool) {
        assert_eq!(
            matches(pattern, subject),
            expected,
            "{pattern} vs {subject}"
        );
    }

    #[test]
    fn wildcards_match_like_nats() {
        check("city.message.>", "city.message.created.general", true);
        check("city.message.>", "city.message", false);
        check("city.*.created", "city.message.created", true);
        check("city.*.created", "city.message.created.x", false);
        check(
            "city.message.created.general",
            "city.message.created.general",
            true,
        );
        check(
            "city.message.created.general",
            "city.message.created.other",
            false,
        );
        check(">", "anything.at.all", true);
        check("a.b", "a", false);
    }

    #[test]
    fn subjects_and_patterns_are_validated() {
        assert!(validate("city.message.created.general").is_ok());
        assert!(validate("city..x").is_err());
        assert!(validate("city.*").is_err());
        assert!(validate("city message").is_err());
        assert!(validate_pattern("city.*.x.>").is_ok());
        assert!(validate_pattern("city.>.x").is_err());
    }

    const CITY: StreamDef = StreamDef {
        name: "CITY",
        subjects: &["city.>"],
    };

    #[test]
    fn subjects_map_to_streams() {
        let streams = Streams::new([AUDIT, CITY]).unwrap();
        assert_eq!(
            streams
                .for_subject("city.message.created.r1")
                .map(|s| s.name),
            Some("CITY")
        );
        assert_eq!(
            streams.for_subject("ops.alert").map(|s| s.name),
            Some("AUDIT")
        );
        assert_eq!(streams.for_subject("presence.city.alice"), None);
        assert_eq!(
            streams.for_filter("city.message.*").map(|s| s.name).ok(),
            Some("CITY")
        );
        assert!(streams.for_filter("presence.>").is_err());
    }

    #[test]
    fn overlapping_or_repeated_streams_are_refused() {
        let wide = StreamDef {
            name: "WIDE",
            subjects: &["city.*.created.>"],
        };
        let twice = StreamDef {
            name: "CITY",
            subjects: &["town.>"],
        };
        let lower = StreamDef {
            name: "city",
            subjects: &["town.>"],
        };
        for bad in [vec![CITY, wide], vec![CITY, twice], vec![lower]] {
            assert!(matches!(
                Streams::new(bad),
                Err(BusError::InvalidStreams(_))
            ));
        }
    }
}
