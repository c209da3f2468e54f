//! The policy decision point: Cedar policies, validated against the schema,
//! evaluated in-process. The policy set can be swapped at run time (the
//! control plane publishes changes); decisions in flight finish on the set
//! they started with.

use std::{collections::HashMap, sync::Arc};

use arc_swap::ArcSwap;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Entities, PolicyId, PolicySet, Request,
    ResourceConstraint, Schema, ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};

use crate::{
    entity::Resource,
    principal::Principal,
    vocab::{Action, Kind},
};

pub const SCHEMA: &str = include_str!("../policies/schema.cedarschema");

/// A named policy document (one `.cedar` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyFile {
    pub name: String,
    pub text: String,
}

/// The policy files shipped in the repository (`crates/access/policies`).
pub fn default_policies() -> Vec<PolicyFile> {
    [
        ("city", include_str!("../policies/city.cedar")),
        ("account", include_str!("../policies/account.cedar")),
        ("microdao", include_str!("../policies/microdao.cedar")),
        ("room", include_str!("../policies/room.cedar")),
        ("agent", include_str!("../policies/agent.cedar")),
        ("tool", include_str!("../policies/tool.cedar")),
        ("usage", include_str!("../policies/usage.cedar")),
        ("memory", include_str!("../policies/memory.cedar")),
        ("governance", include_str!("../policies/governance.cedar")),
    ]
    .into_iter()
    .map(|(name, text)| PolicyFile {
        name: name.to_owned(),
        text: text.to_owned(),
    })
    .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file {file:?} does not parse: {message}")]
    Parse { file: String, message: String },
    #[error("policy file {file:?}: {message}")]
    Invalid { file: String, message: String },
    #[error("policies do not match the schema: {0}")]
    Validation(String),
}

/// A validated policy set.
pub struct Compiled {
    /// The set sliced by (resource kind, action): each slice holds only the
    /// policies whose scope can match such a request, so a decision
    /// evaluates a handful of policies instead of all of them.
    slices: HashMap<(Kind, Action), PolicySet>,
    files: Vec<PolicyFile>,
    pub version: u64,
}

/// Whether a policy's scope admits requests for `action` on a `kind`.
fn in_scope(policy: &cedar_policy::Policy, kind: Kind, action: Action) -> bool {
    let action_ok = match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => &uid == action.uid(),
        // DAARION has no action groups: `in [..]` is membership of the list.
        ActionConstraint::In(uids) => uids.iter().any(|uid| uid == action.uid()),
    };
    let resource_ok = match policy.resource_constraint() {
        ResourceConstraint::Is(name) | ResourceConstraint::IsIn(name, _) => {
            &name == kind.type_name()
        }
        ResourceConstraint::Eq(uid) => uid.type_name() == kind.type_name(),
        ResourceConstraint::Any | ResourceConstraint::In(_) => true,
    };
    action_ok && resource_ok
}

/// Slices for every (kind, action) the schema allows; the rest get none, and
/// a request for them is refused without evaluating anything.
fn slice(
    schema: &Schema,
    policies: &PolicySet,
) -> Result<HashMap<(Kind, Action), PolicySet>, PolicyError> {
    let mut slices = HashMap::new();
    for kind in Kind::ALL {
        for action in Action::ALL {
            let allowed = Request::new(
                Kind::User.uid("probe"),
                action.uid().clone(),
                kind.uid("probe"),
                Context::empty(),
                Some(schema),
            )
            .is_ok();
            if !allowed {
                continue;
            }
            let mut set = PolicySet::new();
            for policy in policies.policies().filter(|p| in_scope(p, kind, action)) {
                set.add(policy.clone())
                    .map_err(|e| PolicyError::Validation(e.to_string()))?;
            }
            slices.insert((kind, action), set);
        }
    }
    Ok(slices)
}

impl Compiled {
    /// Parses and validates `files` (strict mode): a policy naming an
    /// unknown action, type or attribute is refused with Cedar's message.
    pub fn new(files: Vec<PolicyFile>, version: u64) -> Result<Self, PolicyError> {
        let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA)
            .map_err(|e| PolicyError::Validation(format!("schema: {e}")))?;
        let mut policies = PolicySet::new();
        for file in &files {
            let parsed: PolicySet =
                file.text
                    .parse()
                    .map_err(|e: cedar_policy::ParseErrors| PolicyError::Parse {
                        file: file.name.clone(),
                        message: e.to_string(),
                    })?;
            for policy in parsed.policies() {
                let Some(id) = policy.annotation("id") else {
                    return Err(PolicyError::Invalid {
                        file: file.name.clone(),
                        message: "every policy needs an @id(\"...\") annotation".into(),
                    });
                };
                policies
                    .add(policy.new_id(PolicyId::new(format!("{}/{id}", file.name))))
                    .map_err(|e| PolicyError::Invalid {
                        file: file.name.clone(),
                        message: e.to_string(),
                    })?;
            }
            if parsed.templates().next().is_some() {
                return Err(PolicyError::Invalid {
                    file: file.name.clone(),
                    message: "templates are not supported".into(),
                });
            }
        }
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            let messages: Vec<String> = result
                .validation_errors()
                .map(|e| {
                    let policy = e.policy_id().to_string();
                    format!("{policy}: {e}")
                })
                .collect();
            return Err(PolicyError::Validation(messages.join("; ")));
        }
        Ok(Self {
            slices: slice(&schema, &policies)?,
            files,
            version,
        })
    }

    pub fn files(&self) -> &[PolicyFile] {
        &self.files
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed it, or the
    /// forbids that denied it (empty when nothing permitted: default deny).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (they count as not applying).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Decision {
    fn deny(error: String) -> Self {
        Self {
            allowed: false,
            policies: Vec::new(),
            errors: vec![error],
        }
    }
}

/// Optional facts about the request the policies may read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, utoipa::ToSchema)]
pub struct Facts {
    /// The caller is over its send rate.
    #[serde(default)]
    pub rate_limited: Option<bool>,
}

/// The policy engine, shared by everything in a process.
pub struct Engine {
    current: ArcSwap<Compiled>,
    authorizer: Authorizer,
    /// Decisions already made under the current set. A decision reads
    /// only what its key holds (the principal's kind, id, roles and owner,
    /// the action, the resource with its attributes and related entities,
    /// the facts) and the policy set's version, so a hit is the decision
    /// Cedar would make again — at a fraction of the cost.
    decisions: moka::sync::Cache<DecisionKey, Decision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    version: u64,
    kind: crate::PrincipalKind,
    id: String,
    roles: Vec<String>,
    owner: Option<String>,
    action: Action,
    resource: Resource,
    facts: Facts,
}

/// Decisions kept; the least used go first.
const DECISIONS_KEPT: u64 = 50_000;

impl Engine {
    pub fn new(compiled: Compiled) -> Self {
        Self {
            current: ArcSwap::from_pointee(compiled),
            authorizer: Authorizer::new(),
            decisions: moka::sync::Cache::new(DECISIONS_KEPT),
        }
    }

    /// The shipped policy set.
    pub fn with_defaults() -> Result<Self, PolicyError> {
        Ok(Self::new(Compiled::new(default_policies(), 0)?))
    }

    pub fn current(&self) -> Arc<Compiled> {
        self.current.load_full()
    }

    /// Swaps in a newer policy set; an older or equal version is ignored
    /// (events may arrive out of order across replicas).
    pub fn install(&self, compiled: Compiled) -> bool {
        let newer = compiled.version > self.current.load().version;
        if newer {
            self.current.store(Arc::new(compiled));
        }
        newer
    }

    /// Decides whether `principal` may do `action` on `resource`.
    pub fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: Facts,
    ) -> Decision {
        let compiled = self.current.load();
        let key = DecisionKey {
            version: compiled.version,
            kind: principal.kind,
            id: principal.id.clone(),
            roles: principal.roles.clone(),
            owner: principal.owner.clone(),
            action,
            resource: resource.clone(),
            facts,
        };
        if let Some(decision) = self.decisions.get(&key) {
            return decision;
        }
        let decision = self.decide_under(&compiled, principal, action, resource, facts);
        self.decisions.insert(key, decision.clone());
        decision
    }

    /// What `compiled` would decide, before it is installed (to check a
    /// candidate policy set).
    pub fn decide_under(
        &self,
        compiled: &Compiled,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: Facts,
    ) -> Decision {
        let entities = match crate::entity::entities_for(principal, resource).and_then(|list| {
            // Entity data is built by typed code (`entity.rs`), not parsed,
            // so it is not re-validated against the schema per decision
            // (that check dominated the decision's cost); the request still is.
            Entities::from_entities(list, None).map_err(|e| e.to_string())
        }) {
            Ok(entities) => entities,
            Err(error) => return Decision::deny(format!("entity data: {error}")),
        };
        let context = match facts.rate_limited {
            Some(flag) => Context::from_pairs([(
                "rate_limited".to_owned(),
                cedar_policy::RestrictedExpression::new_bool(flag),
            )]),
            None => Ok(Context::empty()),
        };
        // The schema's rules for requests were applied when the slices were
        // cut: a (kind, action) without a slice is not a valid request.
        let Some(policies) = compiled.slices.get(&(resource.kind, action)) else {
            return Decision::deny(format!(
                "request: {} is not a resource of the `{action}` action",
                resource.kind
            ));
        };
        let request = context.map_err(|e| e.to_string()).and_then(|context| {
            Request::new(
                principal.kind.kind().uid(&principal.id),
                action.uid().clone(),
                resource.uid(),
                context,
                None,
            )
            .map_err(|e| e.to_string())
        });
        let request = match request {
            Ok(request) => request,
            Err(error) => return Decision::deny(format!("request: {error}")),
        };
        let response = self.authorizer.is_authorized(&request, policies, &entities);
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        policies.sort();
        Decision {
            allowed: response.decision() == cedar_policy::Decision::Allow,
            policies,
            errors: response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect(),
        }
    }
}
