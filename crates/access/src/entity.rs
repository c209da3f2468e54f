//! Resources and the entity data a decision needs, built without JSON.

use std::collections::{HashMap, HashSet};

use cedar_policy::{Entity, EntityUid, RestrictedExpression};

use crate::{
    principal::Principal,
    vocab::{
        Kind,
        roles::{DaoPermission, DaoRole},
    },
};

/// An attribute value of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attr {
    Bool(bool),
    Str(String),
    Entity(Kind, String),
    Set(Vec<Attr>),
}

impl Attr {
    fn to_cedar(&self) -> RestrictedExpression {
        match self {
            Attr::Bool(b) => RestrictedExpression::new_bool(*b),
            Attr::Str(s) => RestrictedExpression::new_string(s.clone()),
            Attr::Entity(kind, id) => RestrictedExpression::new_entity_uid(kind.uid(id)),
            Attr::Set(items) => RestrictedExpression::new_set(items.iter().map(Attr::to_cedar)),
        }
    }
}

/// The thing a request acts on, with the attributes and parents the
/// policies read, plus any entities those attributes point to (a room's
/// microDAO, say).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    pub kind: Kind,
    pub id: String,
    attrs: Vec<(String, Attr)>,
    parents: Vec<(Kind, String)>,
    related: Vec<Resource>,
}

impl Resource {
    pub fn new(kind: Kind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            attrs: Vec::new(),
            parents: Vec::new(),
            related: Vec::new(),
        }
    }

    /// The city itself (one per deployment).
    pub fn city() -> Self {
        Self::new(Kind::City, "city")
    }

    pub fn attr(mut self, name: &str, value: Attr) -> Self {
        self.attrs.push((name.to_owned(), value));
        self
    }

    /// Another resource the decision reads through an attribute (an
    /// agent's owner through a usage record's `agent`).
    pub fn related(mut self, other: Resource) -> Self {
        self.related.push(other);
        self
    }

    pub fn parent(mut self, kind: Kind, id: impl Into<String>) -> Self {
        self.parents.push((kind, id.into()));
        self
    }

    /// Links the resource to its microDAO: attribute `dao`, parent, and the
    /// microDAO's role groups.
    pub fn in_dao(mut self, dao: &str) -> Self {
        self.attrs.push((
            "dao".to_owned(),
            Attr::Entity(Kind::MicroDao, dao.to_owned()),
        ));
        self.parents.push((Kind::MicroDao, dao.to_owned()));
        self.related.push(Self::micro_dao(dao));
        self
    }

    /// A microDAO with its role and permission groups as attributes.
    pub fn micro_dao(dao: &str) -> Self {
        let group = |role: DaoRole| Attr::Entity(Kind::Role, role.group(dao));
        let resource = Self::new(Kind::MicroDao, dao)
            .attr("owners", group(DaoRole::Owner))
            .attr("admins", group(DaoRole::Admin))
            .attr("members", group(DaoRole::Member))
            .attr("guests", group(DaoRole::Guest))
            .parent(Kind::City, "city");
        DaoPermission::ALL.into_iter().fold(resource, |r, p| {
            r.attr(p.attribute(), Attr::Entity(Kind::Role, p.group(dao)))
        })
    }

    /// A tool as `tool.cedar` sees it: whether it runs at all, and the
    /// agents (ids) and role groups it is limited to (none: open to all).
    pub fn tool(name: &str, enabled: bool, agents: &[String], roles: &[String]) -> Self {
        let set = |kind: Kind, ids: &[String]| {
            Attr::Set(
                ids.iter()
                    .map(|id| Attr::Entity(kind, id.clone()))
                    .collect(),
            )
        };
        Self::new(Kind::Tool, name)
            .attr("enabled", Attr::Bool(enabled))
            .attr("allowed_agents", set(Kind::Agent, agents))
            .attr("allowed_roles", set(Kind::Role, roles))
    }

    /// A resource about one principal or microDAO, named `user:<id>`,
    /// `agent:<id>` or `dao:<id>` (quotas, usage), with that principal as
    /// its attribute or that microDAO as its parent.
    pub fn about(kind: Kind, subject: &crate::Subject) -> Self {
        let resource = Self::new(kind, subject.to_string());
        match subject {
            crate::Subject::User(user) => {
                resource.attr("user", Attr::Entity(Kind::User, user.clone()))
            }
            crate::Subject::Agent(agent) => {
                resource.attr("agent", Attr::Entity(Kind::Agent, agent.clone()))
            }
            crate::Subject::Dao(dao) => resource.in_dao(dao),
        }
    }

    /// Whether anyone may see it when the city allows public reads: the
    /// city itself, or a resource whose `public` attribute is true.
    pub fn is_public(&self) -> bool {
        self.kind == Kind::City
            || self
                .attrs
                .iter()
                .any(|(name, value)| name == "public" && *value == Attr::Bool(true))
    }

    pub fn uid(&self) -> EntityUid {
        self.kind.uid(&self.id)
    }

    fn push_entities(&self, out: &mut Vec<Entity>) -> Result<(), String> {
        let attrs: HashMap<String, RestrictedExpression> = self
            .attrs
            .iter()
            .map(|(name, value)| (name.clone(), value.to_cedar()))
            .collect();
        let parents: HashSet<EntityUid> = self.parents.iter().map(|(k, id)| k.uid(id)).collect();
        out.push(Entity::new(self.uid(), attrs, parents).map_err(|e| e.to_string())?);
        for related in &self.related {
            related.push_entities(out)?;
        }
        Ok(())
    }
}

/// A role and every role it nests in (a microDAO owner is also its admin,
/// member and guest). The principal gets them all as direct parents, so no
/// role entities (and no transitive closure over them) are needed per decision.
fn with_nesting(role: &str, out: &mut HashSet<EntityUid>) {
    out.insert(Kind::Role.uid(role));
    let Some((dao, held)) = DaoRole::of_group(role) else {
        return;
    };
    let mut next = held.parent();
    while let Some(parent) = next {
        out.insert(Kind::Role.uid(&parent.group(dao)));
        next = parent.parent();
    }
}

/// Every entity a decision about `principal` acting on `resource` reads.
pub(crate) fn entities_for(
    principal: &Principal,
    resource: &Resource,
) -> Result<Vec<Entity>, String> {
    let mut out = Vec::with_capacity(4);
    let mut parents = HashSet::with_capacity(principal.roles.len() * 4);
    for role in &principal.roles {
        with_nesting(role, &mut parents);
    }
    let uid = principal.kind.kind().uid(&principal.id);
    let entity = match (&principal.owner, principal.kind.kind()) {
        (Some(owner), Kind::Agent) => Entity::new(
            uid,
            HashMap::from([(
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(Kind::User.uid(owner)),
            )]),
            parents,
        )
        .map_err(|e| e.to_string())?,
        // A microDAO's governance names the microDAO it acts in, which
        // `governance.cedar` keeps it to.
        (_, Kind::Service) if principal.governs().is_some() => Entity::new(
            uid,
            HashMap::from([(
                "governs".to_owned(),
                RestrictedExpression::new_entity_uid(
                    Kind::MicroDao.uid(principal.governs().unwrap_or_default()),
                ),
            )]),
            parents,
        )
        .map_err(|e| e.to_string())?,
        _ => Entity::new_no_attrs(uid, parents),
    };
    out.push(entity);
    resource.push_entities(&mut out)?;
    // The same entity can arrive twice (a person reading their own account):
    // the first, the principal's, wins.
    let mut seen = HashSet::with_capacity(out.len());
    out.retain(|e| seen.insert(e.uid()));
    Ok(out)
}
