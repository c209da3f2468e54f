//! Roles held outside the account (a microDAO's memberships), added to
//! every principal the process authenticates: a request's principal carries
//! `dao:<id>:<role>` wherever the person or agent is a member.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Credential, Principal, PrincipalKind,
    enforce::{Authenticate, AuthnUnavailable},
};

/// Where extra role groups come from (the microDAO service implements it).
#[async_trait]
pub trait RoleSource: Send + Sync + 'static {
    /// The role groups held by the principal named `name` (`user:<id>`,
    /// `agent:<id>`).
    async fn roles(&self, name: &str) -> Result<Vec<String>, AuthnUnavailable>;
}

/// An [`Authenticate`] whose principals also hold the roles of a
/// [`RoleSource`]. Services are never members: their principals are left
/// as they are.
pub struct WithRoles {
    inner: Arc<dyn Authenticate>,
    source: Arc<dyn RoleSource>,
}

impl WithRoles {
    pub fn new(inner: Arc<dyn Authenticate>, source: Arc<dyn RoleSource>) -> Self {
        Self { inner, source }
    }

    async fn complete(
        &self,
        principal: Option<Principal>,
    ) -> Result<Option<Principal>, AuthnUnavailable> {
        let Some(mut principal) = principal else {
            return Ok(None);
        };
        if principal.kind != PrincipalKind::Service {
            principal
                .roles
                .extend(self.source.roles(&principal.name()).await?);
        }
        Ok(Some(principal))
    }
}

#[async_trait]
impl Authenticate for WithRoles {
    async fn session(&self, token: &str) -> Result<Option<Principal>, AuthnUnavailable> {
        let principal = self.inner.session(token).await?;
        self.complete(principal).await
    }

    async fn api_key(&self, token: &str) -> Result<Option<Principal>, AuthnUnavailable> {
        let principal = self.inner.api_key(token).await?;
        self.complete(principal).await
    }

    async fn principal(
        &self,
        kind: PrincipalKind,
        id: &str,
    ) -> Result<Option<Principal>, AuthnUnavailable> {
        let principal = self.inner.principal(kind, id).await?;
        self.complete(principal).await
    }

    async fn is_current(&self, credential: &Credential) -> Result<bool, AuthnUnavailable> {
        self.inner.is_current(credential).await
    }
}
