//! The shipped policies against the original system's rules
//! (`ORIGINAL_SYSTEM.md` §2), one case per rule.

use std::str::FromStr;

use crate::{
    Action::{self, *},
    Attr, Credential, Engine, Facts, Kind, Principal, PrincipalKind, Resource,
    vocab::roles::{CITY_ADMIN, CITY_CITIZEN, DaoPermission, DaoRole},
};

fn engine() -> Engine {
    Engine::with_defaults().unwrap_or_else(|e| unreachable!("shipped policies: {e}"))
}

fn user(id: &str, roles: &[&str]) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        id: id.into(),
        handle: id.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        owner: None,
        scopes: None,
        credential: Credential::Session { id: "s".into() },
    }
}

fn agent(id: &str, owner: &str, roles: &[&str]) -> Principal {
    Principal {
        kind: PrincipalKind::Agent,
        owner: Some(owner.into()),
        ..user(id, roles)
    }
}

fn service(name: &str) -> Principal {
    Principal {
        kind: PrincipalKind::Service,
        credential: Credential::ServiceToken,
        ..user(name, &[])
    }
}

fn dao_role(role: DaoRole) -> String {
    role.group("d1")
}

fn room(public: bool, dao: Option<&str>, blocked: &[&str]) -> Resource {
    let blocked = Attr::Set(
        blocked
            .iter()
            .map(|u| Attr::Entity(Kind::User, (*u).to_owned()))
            .collect(),
    );
    let r = Resource::new(Kind::Room, "r1")
        .attr("public", Attr::Bool(public))
        .attr("blocked", blocked)
        .parent(Kind::City, "city");
    match dao {
        Some(dao) => r.in_dao(dao),
        None => r,
    }
}

fn tool(enabled: bool, agents: &[&str], roles: &[&str]) -> Resource {
    let owned = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
    Resource::tool("t1", enabled, &owned(agents), &owned(roles))
}

fn allowed(e: &Engine, p: &Principal, a: Action, r: &Resource) -> bool {
    let d = e.decide(p, a, r, Facts::default());
    assert!(
        d.errors.is_empty(),
        "{a} by {} on {:?}: {:?}",
        p.id,
        r.kind,
        d.errors
    );
    d.allowed
}

#[test]
fn every_name_parses_and_the_schema_knows_every_kind_and_action() {
    for kind in Kind::ALL {
        assert!(
            crate::engine::SCHEMA.contains(&format!("entity {}", kind.as_str())),
            "{kind}"
        );
        assert_eq!(Kind::from_str(kind.as_str()), Ok(kind));
        let _ = kind.uid("x");
    }
    for action in Action::ALL {
        assert!(crate::engine::SCHEMA.contains(action.as_str()), "{action}");
        let _ = action.uid();
    }
}

#[test]
fn city_admin_may_do_anything_and_citizens_use_public_rooms() {
    let e = engine();
    let admin = user("a", &[CITY_ADMIN, CITY_CITIZEN]);
    let citizen = user("c", &[CITY_CITIZEN]);
    let nobody = user("n", &[]);
    for action in [Read, Write, Manage, Invite, ViewUsage, Admin] {
        assert!(allowed(&e, &admin, action, &Resource::city()), "{action}");
    }
    let nonsense = e.decide(&admin, SendMessage, &Resource::city(), Facts::default());
    assert!(
        !nonsense.allowed && !nonsense.errors.is_empty(),
        "an action outside the schema is denied"
    );
    assert!(allowed(
        &e,
        &admin,
        Admin,
        &Resource::new(Kind::Policy, "p")
    ));
    assert!(allowed(&e, &citizen, Read, &Resource::city()));
    assert!(allowed(&e, &citizen, Write, &Resource::city()));
    assert!(!allowed(&e, &citizen, Manage, &Resource::city()));
    assert!(!allowed(
        &e,
        &citizen,
        Admin,
        &Resource::new(Kind::Policy, "p")
    ));
    assert!(allowed(&e, &citizen, SendMessage, &room(true, None, &[])));
    assert!(!allowed(&e, &citizen, Manage, &room(true, None, &[])));
    assert!(!allowed(&e, &citizen, SendMessage, &room(false, None, &[])));
    assert!(!allowed(&e, &nobody, Read, &Resource::city()));
}

#[test]
fn services_read_and_write_only() {
    let e = engine();
    let s = service("city");
    assert!(allowed(
        &e,
        &s,
        Read,
        &Resource::new(Kind::Agent, "x").attr("owner", Attr::Entity(Kind::User, "u".into()))
    ));
    assert!(allowed(&e, &s, Write, &Resource::city()));
    assert!(!allowed(&e, &s, Admin, &Resource::city()));
    assert!(!allowed(&e, &s, Manage, &Resource::city()));
}

#[test]
fn microdao_owner_admin_member_guest() {
    let e = engine();
    let dao = Resource::micro_dao("d1");
    let owner = user("o", &[&dao_role(DaoRole::Owner)]);
    let admin = user("a", &[&dao_role(DaoRole::Admin)]);
    let member = user("m", &[&dao_role(DaoRole::Member)]);
    let guest = user("g", &[&dao_role(DaoRole::Guest)]);
    let stranger = user("s", &[CITY_CITIZEN, "dao:d2:owner"]);
    for action in Action::ALL {
        let r = &dao;
        if matches!(action, SendMessage | ExecTool) {
            continue;
        }
        assert!(allowed(&e, &owner, action, r), "owner {action}");
        assert_eq!(
            allowed(&e, &admin, action, r),
            matches!(action, Read | Write | Invite | ViewUsage),
            "admin {action}"
        );
        assert_eq!(
            allowed(&e, &member, action, r),
            action == Read,
            "member {action}"
        );
        assert_eq!(
            allowed(&e, &guest, action, r),
            action == Read,
            "guest {action}"
        );
        assert!(!allowed(&e, &stranger, action, r), "stranger {action}");
    }
}

#[test]
fn a_custom_role_grants_its_permissions_in_its_own_microdao_only() {
    let e = engine();
    let dao = Resource::micro_dao("d1");
    let room = room(false, Some("d1"), &[]);
    let holder = |permission: DaoPermission| {
        user(
            "h",
            &[
                &dao_role(DaoRole::Member),
                &permission.group("d1"),
                &DaoPermission::ALL[0].group("d2"),
            ],
        )
    };
    for permission in DaoPermission::ALL {
        let h = holder(permission);
        for action in [Write, Invite, Manage, Admin] {
            let granted = matches!(
                (permission, action),
                (DaoPermission::Write, Write)
                    | (DaoPermission::Invite, Invite)
                    | (DaoPermission::Treasury, Manage)
            );
            assert_eq!(
                allowed(&e, &h, action, &dao),
                granted,
                "{permission:?} {action}"
            );
        }
        assert_eq!(
            allowed(&e, &h, Manage, &room),
            permission == DaoPermission::Rooms,
            "{permission:?} manages rooms"
        );
    }
    let elsewhere = user("x", &[CITY_CITIZEN, &DaoPermission::Write.group("d2")]);
    assert!(!allowed(&e, &elsewhere, Write, &dao));
}

#[test]
fn dao_rooms_blocked_users_and_rate_limits() {
    let e = engine();
    let r = room(false, Some("d1"), &["m2"]);
    let member = user("m", &[&dao_role(DaoRole::Member)]);
    let blocked = user("m2", &[&dao_role(DaoRole::Member)]);
    let guest = user("g", &[&dao_role(DaoRole::Guest)]);
    let admin = user("a", &[&dao_role(DaoRole::Admin)]);
    let bot = agent("bot", "o", &[&dao_role(DaoRole::Agent)]);
    let outsider = user("x", &[CITY_CITIZEN]);
    assert!(allowed(&e, &member, SendMessage, &r));
    assert!(allowed(&e, &member, Read, &r));
    assert!(!allowed(&e, &member, Manage, &r));
    assert!(allowed(&e, &admin, Manage, &r));
    assert!(allowed(&e, &bot, SendMessage, &r));
    assert!(allowed(&e, &guest, Read, &r));
    assert!(!allowed(&e, &guest, SendMessage, &r));
    assert!(!allowed(&e, &blocked, Read, &r));
    assert!(!allowed(&e, &outsider, Read, &r));
    let limited = e.decide(
        &member,
        SendMessage,
        &r,
        Facts {
            rate_limited: Some(true),
        },
    );
    assert!(!limited.allowed);
    assert_eq!(limited.policies, vec!["room/room-rate-limited".to_owned()]);
}

#[test]
fn tools_follow_enabled_and_allow_lists() {
    let e = engine();
    let bot = agent("bot", "o", &[]);
    let other = agent("other", "o", &[]);
    let member = user("m", &[&dao_role(DaoRole::Member)]);
    assert!(allowed(&e, &bot, ExecTool, &tool(true, &[], &[])));
    assert!(!allowed(&e, &bot, ExecTool, &tool(false, &[], &[])));
    assert!(allowed(&e, &bot, ExecTool, &tool(true, &["bot"], &[])));
    assert!(!allowed(&e, &other, ExecTool, &tool(true, &["bot"], &[])));
    let by_role = tool(true, &["bot"], &["dao:d1:member"]);
    assert!(allowed(&e, &member, ExecTool, &by_role));
    let owner = user("o", &[&dao_role(DaoRole::Owner)]);
    assert!(
        allowed(&e, &owner, ExecTool, &by_role),
        "owners hold the member role too"
    );
    let admin = user("a", &[CITY_ADMIN]);
    assert!(
        !allowed(&e, &admin, ExecTool, &tool(false, &[], &[])),
        "a disabled tool runs for nobody"
    );
}

#[test]
fn agents_belong_to_their_owner_and_dao() {
    let e = engine();
    let a = Resource::new(Kind::Agent, "bot")
        .attr("owner", Attr::Entity(Kind::User, "o".into()))
        .in_dao("d1");
    assert!(allowed(&e, &user("o", &[]), Manage, &a));
    assert!(allowed(
        &e,
        &user("adm", &[&dao_role(DaoRole::Admin)]),
        Manage,
        &a
    ));
    assert!(allowed(
        &e,
        &user("m", &[&dao_role(DaoRole::Member)]),
        Read,
        &a
    ));
    assert!(!allowed(
        &e,
        &user("m", &[&dao_role(DaoRole::Member)]),
        Manage,
        &a
    ));
    assert!(!allowed(&e, &user("x", &[CITY_CITIZEN]), Read, &a));
}

#[test]
fn usage_is_for_its_owner_dao_admins_and_city_admins() {
    let e = engine();
    let mine =
        Resource::new(Kind::Usage, "user:u").attr("user", Attr::Entity(Kind::User, "u".into()));
    assert!(allowed(&e, &user("u", &[]), ViewUsage, &mine));
    assert!(!allowed(&e, &user("v", &[CITY_CITIZEN]), ViewUsage, &mine));
    assert!(allowed(&e, &user("root", &[CITY_ADMIN]), ViewUsage, &mine));
    let dao_usage = Resource::new(Kind::Usage, "dao:d1").in_dao("d1");
    assert!(allowed(
        &e,
        &user("a", &[&dao_role(DaoRole::Admin)]),
        ViewUsage,
        &dao_usage
    ));
    assert!(!allowed(
        &e,
        &user("m", &[&dao_role(DaoRole::Member)]),
        ViewUsage,
        &dao_usage
    ));
    let bot_usage = Resource::new(Kind::Usage, "agent:bot")
        .attr("agent", Attr::Entity(Kind::Agent, "bot".into()));
    assert!(allowed(&e, &agent("bot", "o", &[]), ViewUsage, &bot_usage));
    // Its owner (the agent rides along with its owner); nobody else.
    let owner = user("o", &[CITY_CITIZEN]);
    let with_owner = bot_usage.related(
        Resource::new(Kind::Agent, "bot").attr("owner", Attr::Entity(Kind::User, "o".into())),
    );
    assert!(allowed(&e, &owner, ViewUsage, &with_owner));
    assert!(!allowed(
        &e,
        &user("v", &[CITY_CITIZEN]),
        ViewUsage,
        &with_owner
    ));
}

#[test]
fn knowledge_is_for_members_and_documents_for_their_authors_and_admins() {
    let e = engine();
    let knowledge = Resource::new(Kind::Knowledge, "d1").in_dao("d1");
    let document = |author: &str| {
        Resource::new(Kind::Document, "doc_1")
            .attr("author", Attr::Entity(Kind::User, author.into()))
            .in_dao("d1")
    };
    let owner = user("o", &[CITY_CITIZEN, &dao_role(DaoRole::Owner)]);
    let admin = user("a", &[CITY_CITIZEN, &dao_role(DaoRole::Admin)]);
    let member = user("m", &[CITY_CITIZEN, &dao_role(DaoRole::Member)]);
    let guest = user("g", &[CITY_CITIZEN, &dao_role(DaoRole::Guest)]);
    let stranger = user("s", &[CITY_CITIZEN, "dao:d2:owner"]);
    for p in [&owner, &admin, &member] {
        assert!(allowed(&e, p, Read, &knowledge), "{} reads", p.id);
        assert!(allowed(&e, p, Write, &knowledge), "{} adds", p.id);
        assert!(allowed(&e, p, Read, &document("x")), "{} reads one", p.id);
    }
    for p in [&guest, &stranger] {
        assert!(!allowed(&e, p, Read, &knowledge), "{} reads", p.id);
        assert!(!allowed(&e, p, Write, &knowledge), "{} adds", p.id);
        assert!(!allowed(&e, p, Read, &document("x")), "{} reads one", p.id);
    }
    // An author removes their own document (and still reads it, a member
    // or not); admins remove anyone's; a member no one else's.
    assert!(allowed(&e, &member, Manage, &document("m")));
    assert!(allowed(&e, &guest, Read, &document("g")));
    assert!(allowed(&e, &admin, Manage, &document("x")));
    assert!(allowed(&e, &owner, Manage, &document("x")));
    assert!(!allowed(&e, &member, Manage, &document("x")));
    assert!(
        !allowed(&e, &member, Manage, &knowledge),
        "knowledge itself"
    );
    assert!(!allowed(&e, &stranger, Manage, &document("x")));
    // The microDAO's agents are members; one removes what it wrote.
    let bot = agent("bot", "o", &[&dao_role(DaoRole::Agent)]);
    let by_bot = Resource::new(Kind::Document, "doc_2")
        .attr("agent_author", Attr::Entity(Kind::Agent, "bot".into()))
        .in_dao("d1");
    assert!(allowed(&e, &bot, Read, &knowledge));
    assert!(allowed(&e, &bot, Write, &knowledge));
    assert!(allowed(&e, &bot, Manage, &by_bot));
    assert!(!allowed(&e, &bot, Manage, &document("o")));
    assert!(!allowed(&e, &member, Manage, &by_bot));
}

#[test]
fn people_manage_only_their_own_account() {
    let e = engine();
    let me = user("u", &[CITY_CITIZEN]);
    assert!(allowed(&e, &me, Manage, &Resource::new(Kind::User, "u")));
    assert!(!allowed(&e, &me, Manage, &Resource::new(Kind::User, "v")));
    assert!(!allowed(
        &e,
        &agent("u", "u", &[]),
        Manage,
        &Resource::new(Kind::User, "u")
    ));
}

#[test]
fn messages_and_projects_without_rules_are_denied_not_errors() {
    let e = engine();
    let c = user("c", &[CITY_CITIZEN]);
    let msg = Resource::new(Kind::Message, "m").attr("public", Attr::Bool(false));
    assert!(!allowed(&e, &c, Read, &msg));
    let public = Resource::new(Kind::Message, "m").attr("public", Attr::Bool(true));
    assert!(allowed(&e, &c, Read, &public));
}

#[test]
fn invalid_policies_are_refused_with_the_engines_message() {
    let bad_action = crate::PolicyFile {
        name: "x".into(),
        text: "@id(\"p\") permit(principal, action == Daarion::Action::\"fly\", resource);".into(),
    };
    let err = crate::Compiled::new(vec![bad_action], 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("fly"), "{err}");
    let unparsable = crate::PolicyFile {
        name: "y".into(),
        text: "permit(".into(),
    };
    assert!(crate::Compiled::new(vec![unparsable], 1).is_err());
    let no_id = crate::PolicyFile {
        name: "z".into(),
        text: "permit(principal, action, resource);".into(),
    };
    assert!(crate::Compiled::new(vec![no_id], 1).is_err());
    let bad_attr = crate::PolicyFile {
        name: "w".into(),
        text: "@id(\"p\") permit(principal, action, resource is Daarion::Room) when { resource.colour == \"red\" };".into(),
    };
    assert!(crate::Compiled::new(vec![bad_attr], 1).is_err());
}

#[test]
fn newer_policy_sets_replace_older_ones_only() {
    let e = engine();
    let c = user("c", &[CITY_CITIZEN]);
    assert!(allowed(&e, &c, Read, &Resource::city()));
    let nothing = crate::Compiled::new(Vec::new(), 2).unwrap_or_else(|e| unreachable!("{e}"));
    assert!(e.install(nothing));
    assert!(!allowed(&e, &c, Read, &Resource::city()));
    let stale = crate::Compiled::new(crate::engine::default_policies(), 1)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert!(!e.install(stale));
}

/// Decisions skip schema validation of entity data for speed; this proves
/// the data `entity.rs` builds conforms to the schema.
#[test]
fn built_entity_data_conforms_to_the_schema() {
    let (schema, _) = cedar_policy::Schema::from_cedarschema_str(crate::engine::SCHEMA)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let resources = [
        Resource::city(),
        room(true, None, &["x"]),
        room(false, Some("d1"), &[]),
        tool(true, &["bot"], &["dao:d1:member"]),
        Resource::micro_dao("d1"),
        Resource::new(Kind::Agent, "bot")
            .attr("owner", Attr::Entity(Kind::User, "o".into()))
            .in_dao("d1"),
        Resource::new(Kind::Usage, "u").attr("user", Attr::Entity(Kind::User, "u".into())),
        Resource::new(Kind::Quota, "dao:d1").in_dao("d1"),
        Resource::new(Kind::Message, "m").attr("public", Attr::Bool(true)),
        Resource::new(Kind::Knowledge, "d1").in_dao("d1"),
        Resource::new(Kind::Document, "doc_1")
            .attr("author", Attr::Entity(Kind::User, "u".into()))
            .in_dao("d1"),
    ];
    let principals = [
        user("u", &[CITY_CITIZEN, &dao_role(DaoRole::Owner)]),
        agent("bot", "o", &[&dao_role(DaoRole::Agent)]),
        service("city"),
    ];
    for p in &principals {
        for r in &resources {
            let list = crate::entity::entities_for(p, r).unwrap_or_else(|e| unreachable!("{e}"));
            if let Err(error) = cedar_policy::Entities::from_entities(list, Some(&schema)) {
                unreachable!("{} on {:?}: {error}", p.id, r.kind);
            }
        }
    }
}

#[test]
fn a_microdaos_governance_acts_as_its_owners_inside_it_alone() {
    let e = engine();
    let governance = Principal::governance("d1");
    assert_eq!(governance.name(), crate::governance_name("d1"));
    let home = Resource::micro_dao("d1");
    for action in [Read, Write, Invite, Manage, Admin] {
        assert!(
            allowed(&e, &governance, action, &home),
            "{action:?} at home"
        );
    }
    let home_room = room(false, Some("d1"), &[]);
    assert!(allowed(&e, &governance, Write, &home_room));
    // Services read and write everywhere; governance, a service, does not.
    let elsewhere = Resource::micro_dao("d2");
    assert!(allowed(&e, &service("agents"), Write, &elsewhere));
    for action in [Read, Write, Manage] {
        assert!(
            !allowed(&e, &governance, action, &elsewhere),
            "{action:?} elsewhere"
        );
    }
    assert!(!allowed(&e, &governance, Write, &Resource::city()));
    assert!(!allowed(&e, &governance, Write, &room(true, None, &[])));
}

#[test]
fn proposals_are_read_by_citizens_of_public_microdaos_and_voted_on_by_members() {
    let e = engine();
    let proposal = |public: bool, agents_vote: bool| {
        Resource::new(Kind::Proposal, "prp_1")
            .in_dao("d1")
            .attr("public", Attr::Bool(public))
            .attr("agents_vote", Attr::Bool(agents_vote))
    };
    let citizen = user("c", &[CITY_CITIZEN]);
    let member = user("m", &[CITY_CITIZEN, &dao_role(DaoRole::Member)]);
    let bot = agent("bot", "m", &[&dao_role(DaoRole::Agent)]);
    assert!(allowed(&e, &citizen, Read, &proposal(true, false)));
    assert!(!allowed(&e, &citizen, Read, &proposal(false, false)));
    assert!(!allowed(&e, &citizen, Write, &proposal(true, false)));
    assert!(allowed(&e, &member, Write, &proposal(false, false)));
    assert!(!allowed(&e, &member, Manage, &proposal(false, false)));
    assert!(!allowed(&e, &bot, Write, &proposal(false, false)));
    assert!(allowed(&e, &bot, Write, &proposal(false, true)));
}
