//! Subjects are `<domain>.<event>[.<id>]`: dot-separated tokens. Patterns
//! use NATS wildcards: `*` matches one token, `>` (last) matches the rest.

use crate::BusError;

/// A durable stream and the subjects it stores (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDef {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
}

pub const STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "MESSAGES",
        subjects: &["message.>"],
    },
    StreamDef {
        name: "ATTACHMENTS",
        subjects: &["attachment.>"],
    },
    StreamDef {
        name: "AGENT_RUNS",
        subjects: &["agent.run.>"],
    },
    StreamDef {
        name: "MEMORY",
        subjects: &["memory.>"],
    },
    StreamDef {
        name: "AUDIT",
        subjects: &["audit.>", "ops.>"],
    },
    StreamDef {
        name: "CITY",
        subjects: &["city.>"],
    },
    StreamDef {
        name: "USAGE",
        subjects: &["usage.>"],
    },
];

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

/// The stream that stores `subject`, if any.
pub fn stream_for(subject: &str) -> Option<&'static StreamDef> {
    STREAMS
        .iter()
        .find(|s| s.subjects.iter().any(|p| matches(p, subject)))
}

/// The stream whose subjects cover every subject `filter` can match.
pub fn stream_for_filter(filter: &str) -> Result<&'static StreamDef, BusError> {
    validate_pattern(filter)?;
    // A filter's wildcards are literal tokens here: `city.>` covers
    // `city.message.*` because `>` in the stream pattern swallows them.
    STREAMS
        .iter()
        .find(|s| s.subjects.iter().any(|p| matches(p, filter)))
        .ok_or_else(|| BusError::NoStream(filter.to_owned()))
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

    #[test]
    fn subjects_map_to_streams() {
        assert_eq!(
            stream_for("message.sent.r1").map(|s| s.name),
            Some("MESSAGES")
        );
        assert_eq!(stream_for("ops.alert").map(|s| s.name), Some("AUDIT"));
        assert_eq!(stream_for("presence.city.alice"), None);
        assert_eq!(
            stream_for_filter("city.message.*").map(|s| s.name).ok(),
            Some("CITY")
        );
        assert!(stream_for_filter("presence.>").is_err());
    }
}
