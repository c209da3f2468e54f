//! Internal service tokens: HS256 JWTs signed with the deployment's shared
//! secret, at most five minutes long, whose audience is the callee service.
//! A service may also act as an agent (the agent runtime calling the LLM
//! proxy and toolcore for a run): the token's subject is then the agent and
//! its `act` claim names the service (RFC 8693 §4.1), so the callee decides
//! and meters as for the agent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::principal::Principal;

pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
const ISSUER: &str = "daarion";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("service token secret must be at least 32 bytes")]
    WeakSecret,
    #[error(
        "service token secret is a placeholder or has too little variety; generate one: head -c 32 /dev/urandom | base64"
    )]
    PlaceholderSecret,
    #[error("service token lifetime must be between 1 s and 5 min")]
    Lifetime,
    #[error("service name must be 1-32 lowercase letters or '-'")]
    Name,
    #[error("service token rejected: {0}")]
    Invalid(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    /// `service:<name>` of the caller, or `agent:<id>` it acts as.
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
    /// The service acting as the subject agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    act: Option<Actor>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Actor {
    /// `service:<name>`.
    sub: String,
}

/// Who a genuine token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// A service, for itself.
    Service(String),
    /// A service acting as this agent.
    Agent { agent: String, service: String },
    /// A service carrying out what this microDAO's governance decided.
    Dao { dao: String, service: String },
}

fn valid_agent(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Signs and verifies service tokens.
#[derive(Clone)]
pub struct ServiceTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceTokens(..)")
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ServiceTokens {
    pub fn new(secret: &[u8]) -> Result<Self, TokenError> {
        if secret.len() < 32 {
            return Err(TokenError::WeakSecret);
        }
        if daarion_kernel::secret::is_placeholder(secret) {
            return Err(TokenError::PlaceholderSecret);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// A token for `caller` to call `audience`, valid for `lifetime`.
    pub fn issue(
        &self,
        caller: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, TokenError> {
        self.sign(caller, audience, lifetime, None)
    }

    /// A token for `caller` to call `audience` as the agent `agent`.
    pub fn issue_as_agent(
        &self,
        caller: &str,
        agent: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, TokenError> {
        if !valid_agent(agent) {
            return Err(TokenError::Name);
        }
        self.sign(caller, audience, lifetime, Some(&format!("agent:{agent}")))
    }

    /// A token for `caller` to call `audience` for the microDAO `dao`, as
    /// its governance (what a passed proposal does).
    pub fn issue_for_dao(
        &self,
        caller: &str,
        dao: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, TokenError> {
        if !daarion_kernel::names::is_slug(dao) {
            return Err(TokenError::Name);
        }
        self.sign(caller, audience, lifetime, Some(&format!("dao:{dao}")))
    }

    /// `acting_as`: `None` for the service itself, else the subject it acts
    /// for (`agent:<id>`, or `dao:<slug>`).
    fn sign(
        &self,
        caller: &str,
        audience: &str,
        lifetime: Duration,
        acting_as: Option<&str>,
    ) -> Result<String, TokenError> {
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(TokenError::Lifetime);
        }
        if !valid_name(caller) || !valid_name(audience) {
            return Err(TokenError::Name);
        }
        let iat = now();
        let service = format!("service:{caller}");
        let (sub, act) = match acting_as {
            Some(subject) => (subject.to_owned(), Some(Actor { sub: service })),
            None => (service, None),
        };
        let claims = Claims {
            iss: ISSUER.into(),
            sub,
            aud: audience.into(),
            iat,
            exp: iat + lifetime.as_secs().max(1),
            jti: uuid::Uuid::now_v7().to_string(),
            act,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The calling service, when `token` is genuine, unexpired, meant for
    /// `audience` and the service's own.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Principal, TokenError> {
        match self.verify_bearer(token, audience)? {
            Bearer::Service(name) => Ok(Principal::service(&name)),
            Bearer::Agent { .. } | Bearer::Dao { .. } => Err(TokenError::Invalid(
                "a token acting for an agent or a microDAO is not accepted here".into(),
            )),
        }
    }

    /// Who a genuine, unexpired token meant for `audience` names.
    pub fn verify_bearer(&self, token: &str, audience: &str) -> Result<Bearer, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME.as_secs() {
            return Err(TokenError::Invalid("lifetime over 5 minutes".into()));
        }
        let service = |sub: &str| {
            sub.strip_prefix("service:")
                .filter(|n| valid_name(n))
                .map(str::to_owned)
                .ok_or_else(|| TokenError::Invalid("not a service".into()))
        };
        match claims.act {
            None => Ok(Bearer::Service(service(&claims.sub)?)),
            Some(actor) => {
                let service = service(&actor.sub)?;
                if let Some(dao) = claims.sub.strip_prefix("dao:") {
                    if !daarion_kernel::names::is_slug(dao) {
                        return Err(TokenError::Invalid("subject is not a microDAO".into()));
                    }
                    return Ok(Bearer::Dao {
                        dao: dao.to_owned(),
                        service,
                    });
                }
                let agent = claims
                    .sub
                    .strip_prefix("agent:")
                    .filter(|id| valid_agent(id))
                    .ok_or_else(|| TokenError::Invalid("subject is not an agent".into()))?;
                Ok(Bearer::Agent {
                    agent: agent.to_owned(),
                    service,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::PrincipalKind;

    #[test]
    fn placeholder_and_typed_secrets_are_refused() {
        for (secret, refused) in [
            ("CHANGE_ME_TO_32_OR_MORE_RANDOM_BYTES", true),
            ("my-very-secret-secret-for-the-city!", true),
            (&"a".repeat(40), true),
            (&"abc".repeat(12), true),
            ("q8J2m0ZxP4vT7nR1kW9yB3cL6hD5gF0aS2eU", false),
        ] {
            let result = ServiceTokens::new(secret.as_bytes());
            assert_eq!(
                matches!(result, Err(TokenError::PlaceholderSecret)),
                refused,
                "{secret}"
            );
        }
    }

    fn tokens(secret: &str) -> ServiceTokens {
        ServiceTokens::new(secret.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn tokens_verify_only_for_their_audience_and_secret() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let token = t
            .issue("agents", "city", Duration::from_secs(60))
            .unwrap_or_else(|e| unreachable!("{e}"));
        let p = t
            .verify(&token, "city")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((p.kind, p.id.as_str()), (PrincipalKind::Service, "agents"));
        assert!(t.verify(&token, "auth").is_err(), "wrong audience");
        let other = tokens("fedcba9876543210fedcba9876543210");
        assert!(
            other.verify(&token, "city").is_err(),
            "forged with another secret"
        );
        let mut tampered = token.clone();
        tampered.insert(token.len() / 2, 'x');
        assert!(t.verify(&tampered, "city").is_err());
    }

    #[test]
    fn a_service_can_act_as_an_agent_only_where_agents_are_accepted() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let token = t
            .issue_as_agent("runtime", "helper", "llm", Duration::from_secs(60))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            t.verify_bearer(&token, "llm"),
            Ok(Bearer::Agent {
                agent: "helper".into(),
                service: "runtime".into()
            })
        );
        assert!(t.verify(&token, "llm").is_err(), "not a service's own");
        assert!(t.verify_bearer(&token, "auth").is_err(), "wrong audience");
        assert_eq!(
            t.issue_as_agent("runtime", "no/slash", "llm", Duration::from_secs(60))
                .err(),
            Some(TokenError::Name)
        );
    }

    #[test]
    fn lifetimes_and_secrets_are_bounded() {
        assert_eq!(
            ServiceTokens::new(b"short").err(),
            Some(TokenError::WeakSecret)
        );
        let t = tokens("0123456789abcdef0123456789abcdef");
        assert_eq!(
            t.issue("a", "b", Duration::from_secs(301)).err(),
            Some(TokenError::Lifetime)
        );
        assert_eq!(
            t.issue("A!", "b", Duration::from_secs(30)).err(),
            Some(TokenError::Name)
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let claims = Claims {
            iss: ISSUER.into(),
            sub: "service:x".into(),
            aud: "city".into(),
            iat: now() - 400,
            exp: now() - 100,
            jti: "j".into(),
            act: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(t.verify(&token, "city").is_err());
    }
}
