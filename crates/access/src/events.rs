//! Events about identity and policy that every process follows: caches of
//! credentials and open sockets react to them, whichever service made the
//! change.

use serde::{Deserialize, Serialize};

/// Live-only: credentials were revoked (sign-out, a revoked session or key).
pub const REVOKED: &str = "authn.revoked";

/// Live-only: a new policy version was stored; every process reloads.
pub const POLICY_CHANGED: &str = "pdp.policy.changed";

/// The payload of [`REVOKED`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// Hashes of the revoked secrets: credential caches drop them.
    pub token_hashes: Vec<String>,
    /// Ids of the revoked sessions and keys: sockets opened with them close.
    #[serde(default)]
    pub credentials: Vec<String>,
}

impl Revoked {
    /// Revoked credentials as `(id, token hash)` pairs.
    pub fn of(revoked: &[(String, String)]) -> Self {
        Self {
            token_hashes: revoked.iter().map(|(_, hash)| hash.clone()).collect(),
            credentials: revoked.iter().map(|(id, _)| id.clone()).collect(),
        }
    }
}
