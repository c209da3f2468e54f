//! Identity and authorization, shared by every service.
//!
//! - `vocab`: the typed actions and entity kinds services and policies share.
//! - `principal`: who is calling ([`Principal`]) and API key scopes.
//! - `subject`: [`Subject`], `user:` / `agent:` / `dao:` names of quotas
//!   and usage.
//! - `entity`: resources and the entity data a decision reads.
//! - `roles`: role groups held outside the account (microDAO memberships)
//!   added to every authenticated principal.
//! - `engine`: the Cedar policy engine (schema + policy files in
//!   `policies/`, validated, swappable at run time).
//! - `events`: revocations and policy changes every process follows.
//!
//! Policies live in `crates/access/policies/*.cedar`, readable on their own.

pub mod enforce;
pub mod engine;
pub mod entity;
pub mod events;
pub mod principal;
pub mod roles;
pub mod subject;
pub mod token;
pub mod vocab;

pub use enforce::{Access, AccessDeps, Authenticate, Enforcer, Resources, Rule, Target};
pub use engine::{Compiled, Decision, Engine, Facts, PolicyError, PolicyFile};
pub use entity::{Attr, Resource};
pub use principal::{Credential, KeyLimits, Principal, PrincipalKind, Scope, governance_name};
pub use roles::{RoleSource, WithRoles};
pub use subject::{Subject, SubjectError};
pub use vocab::{Action, Kind};

#[cfg(test)]
mod policy_tests;

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "access_credentials_refused_total",
        "Requests refused for a missing, expired or wrong credential, by service.",
    ),
    (
        "access_rate_limited_total",
        "Requests refused because the principal spent its rate limit, by service.",
    ),
    (
        "pdp_decisions_total",
        "Policy decisions by the enforcement point, by service, action and result.",
    ),
];
