//! The verifiable record of a proposal's votes: an append-only chain.
//!
//! The chain starts from the proposal's *genesis*: SHA-256 of
//! `daarion-dao/1\n` followed by the canonical JSON of its definition as it
//! opened (rules, options, deadline, and the electorate with each
//! member's power and delegate). Each vote's hash is SHA-256 of the
//! previous hash (hex), `\n`, and the canonical JSON of the vote
//! (`ballot`, `cast_at`, `proposal`, `seq`, `voter`). Canonical JSON here
//! is the RFC 8785 subset our values need: object keys sorted, no
//! whitespace, integers and strings only. Changing, removing or
//! reordering any vote, or the electorate, breaks every hash after it;
//! the head is kept with the proposal and the result.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::Ballot;

const GENESIS_PREFIX: &str = "daarion-dao/1\n";

/// `value` with object keys sorted at every level, without whitespace.
pub fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The hash a chain starts from: the proposal as it opened.
pub fn genesis(definition: &Value) -> String {
    sha256_hex(&[GENESIS_PREFIX, &canonical(definition)])
}

/// One vote in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainLink {
    /// Its place in the proposal's chain, from 1.
    pub seq: i64,
    /// `user:<id>` or `agent:<id>`.
    pub voter: String,
    pub ballot: Ballot,
    pub cast_at: String,
    /// The hash before it (the genesis for the first).
    pub prev: String,
    pub hash: String,
}

/// What a vote's hash covers.
pub fn entry(proposal: &str, seq: i64, voter: &str, ballot: &Ballot, cast_at: &str) -> Value {
    serde_json::json!({
        "proposal": proposal,
        "seq": seq,
        "voter": voter,
        "ballot": ballot,
        "cast_at": cast_at,
    })
}

/// The hash of a vote following `prev`.
pub fn link(prev: &str, entry: &Value) -> String {
    sha256_hex(&[prev, "\n", &canonical(entry)])
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("vote {0} is out of order")]
    Order(i64),
    #[error("vote {0} does not follow the one before it")]
    Prev(i64),
    #[error("vote {0} does not match its hash")]
    Hash(i64),
    #[error("the chain does not end at the recorded head")]
    Head,
}

/// Checks `links` from `genesis` to `head`: in order from 1, each
/// following the one before and matching its own hash.
pub fn verify(
    proposal: &str,
    genesis: &str,
    links: &[ChainLink],
    head: &str,
) -> Result<(), Broken> {
    let mut prev = genesis.to_owned();
    for (i, l) in links.iter().enumerate() {
        if usize::try_from(l.seq).ok() != Some(i + 1) {
            return Err(Broken::Order(l.seq));
        }
        if l.prev != prev {
            return Err(Broken::Prev(l.seq));
        }
        let hash = link(
            &prev,
            &entry(proposal, l.seq, &l.voter, &l.ballot, &l.cast_at),
        );
        if hash != l.hash {
            return Err(Broken::Hash(l.seq));
        }
        prev = hash;
    }
    if prev != head {
        return Err(Broken::Head);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn chain(n: i64) -> (String, Vec<ChainLink>, String) {
        let genesis = genesis(&serde_json::json!({"id": "prp_1", "options": ["a", "b"]}));
        let mut prev = genesis.clone();
        let mut links = Vec::new();
        for seq in 1..=n {
            let ballot = Ballot::Choice(u32::try_from(seq % 2).unwrap());
            let at = format!("2026-12-06T10:00:0{seq}.000000Z");
            let voter = format!("user:{seq}");
            let hash = link(&prev, &entry("prp_1", seq, &voter, &ballot, &at));
            links.push(ChainLink {
                seq,
                voter,
                ballot,
                cast_at: at,
                prev: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        (genesis, links, prev)
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": "x"}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn an_intact_chain_verifies_and_any_change_breaks_it() {
        let (genesis, links, head) = chain(4);
        verify("prp_1", &genesis, &links, &head).unwrap();

        let mut changed = links.clone();
        changed[1].ballot = Ballot::Choice(1);
        assert_eq!(
            verify("prp_1", &genesis, &changed, &head),
            Err(Broken::Hash(2))
        );

        let mut dropped = links.clone();
        dropped.remove(2);
        assert!(verify("prp_1", &genesis, &dropped, &head).is_err());

        let truncated = &links[..3];
        assert_eq!(
            verify("prp_1", &genesis, truncated, &head),
            Err(Broken::Head)
        );

        let other_genesis = super::genesis(&serde_json::json!({"id": "prp_1"}));
        assert_eq!(
            verify("prp_1", &other_genesis, &links, &head),
            Err(Broken::Prev(1))
        );
    }
}
