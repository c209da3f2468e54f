//! The PDP's rules and its one error type.

use daarion_access::{Compiled, Engine};

#[derive(Debug, thiserror::Error)]
pub enum PdpError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] daarion_access::PolicyError),
    #[error("another policy change landed first; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error("stored policy set is unreadable: {0}")]
    Corrupt(String),
}

impl From<daarion_store::sql::Error> for PdpError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Refuses a policy set under which a city admin could no longer change
/// the policies: nobody could undo it without the database.
pub(crate) fn keeps_admins_in(engine: &Engine, candidate: &Compiled) -> Result<(), PdpError> {
    let admin = daarion_access::Principal {
        kind: daarion_access::PrincipalKind::User,
        id: "policy-check".into(),
        handle: "policy-check".into(),
        roles: daarion_access::vocab::roles::CityRole::Admin.groups(),
        owner: None,
        scopes: None,
        credential: daarion_access::Credential::Session { id: String::new() },
    };
    let policies = daarion_access::Resource::new(daarion_access::Kind::Policy, "city");
    let decision = engine.decide_under(
        candidate,
        &admin,
        daarion_access::Action::Admin,
        &policies,
        daarion_access::Facts::default(),
    );
    if decision.allowed {
        Ok(())
    } else {
        Err(PdpError::Invalid(
            "this policy set would lock city admins out of changing policies; keep a policy that permits them `admin` on the policy set".into(),
        ))
    }
}
