//! Governance's vocabulary and rules: proposals, how they are voted on,
//! what a ballot may say, what a passed action does. No HTTP, no SQL.

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::BusError;
use daarion_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::tally::Tally;

daarion_kernel::named_enum!(
    /// What a proposal is.
    ProposalKind {
        /// Text only: the community says what it thinks.
        Signal => "signal",
        /// A change the microDAO makes when it passes.
        Action => "action",
    }
);

daarion_kernel::named_enum!(
    /// Where a proposal is in its life.
    ProposalStatus {
        /// Written, not yet open; its author may change it.
        Draft => "draft",
        /// Voting is open until `closes_at`.
        Active => "active",
        /// Withdrawn by its author before anyone voted.
        Cancelled => "cancelled",
        /// Voting closed and it passed (an action waits to be executed).
        Passed => "passed",
        /// Voting closed with the quorum met and the threshold not.
        Rejected => "rejected",
        /// Voting closed without the quorum.
        Expired => "expired",
        /// A passed action, carried out.
        Executed => "executed",
    }
);

daarion_kernel::named_enum!(
    /// How a finished vote came out.
    VoteOutcome {
        Passed => "passed",
        Rejected => "rejected",
        Expired => "expired",
    }
);

daarion_kernel::named_enum!(
    /// How ballots are cast and counted (Snapshot's set).
    VotingMethod {
        /// For, against or abstain; abstentions count toward the quorum only.
        Basic => "basic",
        /// One option.
        Single => "single",
        /// Any number of options, each getting the voter's whole power.
        Approval => "approval",
        /// Options in order of preference, counted by instant run-off.
        Ranked => "ranked",
        /// The voter's power split over options in proportion to points.
        Weighted => "weighted",
        /// As weighted, each share counting by its square root.
        Quadratic => "quadratic",
    }
);

impl VotingMethod {
    /// Whether a ballot of this method says `ballot`'s kind of thing.
    fn takes(self, ballot: &Ballot) -> bool {
        matches!(
            (self, ballot),
            (
                VotingMethod::Basic | VotingMethod::Single,
                Ballot::Choice(_)
            ) | (VotingMethod::Approval, Ballot::Approve(_))
                | (VotingMethod::Ranked, Ballot::Rank(_))
                | (
                    VotingMethod::Weighted | VotingMethod::Quadratic,
                    Ballot::Spread(_)
                )
        )
    }
}

daarion_kernel::named_enum!(
    /// A passed action's execution.
    ExecutionState {
        /// Not yet tried, or being retried.
        Pending => "pending",
        /// Tried and failed; a retry may be asked for.
        Failed => "failed",
        /// Carried out, once.
        Done => "done",
    }
);

/// What a voter says. Options are numbered from 0 in the proposal's order
/// (basic: 0 for, 1 against, 2 abstain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ballot {
    /// Basic and single choice: one option.
    Choice(u32),
    /// Approval: the options approved, each once.
    Approve(Vec<u32>),
    /// Ranked choice: options from most to least preferred, each once
    /// (need not rank them all).
    Rank(Vec<u32>),
    /// Weighted and quadratic: points for every option (at least one
    /// above 0); the voter's power is split in their proportion.
    Spread(Vec<u32>),
}

/// How many must take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Quorum {
    /// Any turnout.
    None,
    /// At least this much voting power.
    Power(u64),
    /// At least this share of the electorate's power, in basis points
    /// (2 000 = 20 %).
    Share(u16),
    /// Optimistic (basic only): passes unless those against hold at least
    /// this share of the electorate's power, in basis points.
    Veto(u16),
}

/// What share of the counted power the winner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Threshold {
    /// The most, alone at the top.
    Plurality,
    /// More than half (basic: of for and against).
    Majority,
    /// At least this share, in basis points (6 667 = two thirds).
    Supermajority(u16),
}

/// Where voting power comes from, read at the snapshot (when voting
/// opens), never at the vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VotingPower {
    /// One each.
    Equal,
    /// By role in the microDAO.
    Roles {
        owner: u32,
        admin: u32,
        member: u32,
        agent: u32,
    },
    /// By points held in the microDAO's treasury.
    Treasury,
}

impl VotingPower {
    pub fn of_role(self, role: DaoRole) -> u64 {
        match self {
            VotingPower::Equal | VotingPower::Treasury => 1,
            VotingPower::Roles {
                owner,
                admin,
                member,
                agent,
            } => u64::from(match role {
                DaoRole::Owner => owner,
                DaoRole::Admin => admin,
                DaoRole::Agent => agent,
                DaoRole::Member | DaoRole::Guest => member,
            }),
        }
    }
}

/// What a passed action proposal changes, done through the owning
/// service's API with the microDAO as the one asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProposalAction {
    /// Admit a person (`user:<id>`) with a role.
    AddMember {
        principal: String,
        /// `owner`, `admin`, `member`, `guest` or `agent`.
        #[schema(value_type = String)]
        role: DaoRole,
    },
    /// Take a member out.
    RemoveMember { principal: String },
    /// Give a member another role.
    ChangeRole {
        principal: String,
        #[schema(value_type = String)]
        role: DaoRole,
    },
    /// Move points from the microDAO's treasury.
    Transfer {
        to: String,
        amount: i64,
        memo: Option<String>,
    },
    /// Change the microDAO's name, description or visibility.
    ChangeSettings {
        name: Option<String>,
        description: Option<String>,
        visibility: Option<String>,
    },
    /// Bring an agent in with the agent role: proposed by its owner, who
    /// lends it to the microDAO if the members agree.
    AttachAgent {
        /// The agent's slug.
        agent: String,
    },
    /// Take an agent out of the microDAO.
    DetachAgent { agent: String },
    /// Change an agent that serves the microDAO: its prompt (the control
    /// plane's next version), the tools it may use, its model, whether it
    /// answers (`active`) or is `paused`.
    ChangeAgent {
        agent: String,
        prompt: Option<String>,
        #[schema(max_items = 64)]
        tools: Option<Vec<String>>,
        model: Option<String>,
        status: Option<String>,
    },
    /// Lower the microDAO's own limits: requests and tokens a minute, a
    /// monthly budget in cents. Never above what the city gives it (that
    /// is the city admins' to raise).
    LimitSpending {
        requests_per_minute: Option<u32>,
        tokens_per_minute: Option<u64>,
        budget_cents_per_month: Option<u64>,
    },
}

/// The longest system prompt an agent may be given.
pub const MAX_PROMPT: usize = 32_000;

/// A governance proposal.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Proposal {
    /// `prp_…`.
    pub id: String,
    /// The microDAO's slug.
    pub dao: String,
    pub title: String,
    /// Markdown.
    pub body: String,
    /// The body as HTML, safe to show (raw HTML in it is text; only web
    /// and mail links).
    pub body_html: String,
    /// `user:<id>` or `agent:<id>`.
    pub author: String,
    pub kind: ProposalKind,
    pub action: Option<ProposalAction>,
    pub method: VotingMethod,
    /// The options, in ballot order (basic: for, against, abstain).
    pub options: Vec<String>,
    pub quorum: Quorum,
    pub threshold: Threshold,
    pub power: VotingPower,
    /// Whether a voter may vote again until the close (the last counts).
    pub vote_change: bool,
    /// Whether the tally stays hidden until the close.
    pub hidden: bool,
    /// How long voting stays open, in seconds.
    pub voting_secs: i64,
    pub status: ProposalStatus,
    /// Votes cast so far (changes included).
    pub votes: i64,
    pub created_at: String,
    pub opened_at: Option<String>,
    /// When the electorate and its power were fixed (the opening).
    pub snapshot_at: Option<String>,
    pub closes_at: Option<String>,
    pub closed_at: Option<String>,
    /// The final count, once voting closed.
    pub result: Option<Tally>,
    /// A passed action's execution.
    pub execution: Option<ExecutionState>,
    /// Tries of the execution so far.
    pub execution_attempts: i64,
    /// Why the last try failed, if it did.
    pub execution_error: Option<String>,
    pub executed_at: Option<String>,
}

/// The options of a basic ballot.
pub const BASIC_OPTIONS: [&str; 3] = ["for", "against", "abstain"];

pub const MAX_TITLE: usize = 200;
pub const MAX_BODY: usize = 20_000;
pub const MAX_OPTIONS: usize = 20;
pub const MAX_OPTION: usize = 100;
pub const MAX_POINTS: u32 = 1_000;

/// A proposal as its author asks for it, before it is checked.
#[derive(Debug, Clone)]
pub struct Draft {
    pub title: String,
    pub body: String,
    pub action: Option<ProposalAction>,
    pub method: VotingMethod,
    pub options: Vec<String>,
    pub quorum: Quorum,
    pub threshold: Threshold,
    pub power: VotingPower,
    pub vote_change: bool,
    pub hidden: bool,
    pub voting_secs: i64,
}

fn bp(value: u16, what: &str) -> Result<(), DaoGovError> {
    if value > 10_000 {
        return Err(DaoGovError::Invalid(format!(
            "{what} is in basis points: 0 to 10000"
        )));
    }
    Ok(())
}

fn principal(raw: &str, what: &str) -> Result<(), DaoGovError> {
    let ok = raw
        .strip_prefix("user:")
        .or_else(|| raw.strip_prefix("agent:"))
        .is_some_and(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(DaoGovError::Invalid(format!(
            "{what} must be user:<id> or agent:<id>"
        )))
    }
}

impl ProposalAction {
    /// Checks what can be checked before it runs (the owning service checks
    /// the rest when it is executed).
    pub fn check(&self) -> Result<(), DaoGovError> {
        match self {
            ProposalAction::AddMember { principal: p, .. } if !p.starts_with("user:") => {
                Err(DaoGovError::Invalid(
                    "add_member admits a person (user:<id>); an agent is brought in by attach_agent"
                        .into(),
                ))
            }
            ProposalAction::AddMember { principal: p, role }
            | ProposalAction::ChangeRole { principal: p, role } => {
                principal(p, "principal")?;
                if matches!(role, DaoRole::Agent) != p.starts_with("agent:") {
                    return Err(DaoGovError::Invalid(
                        "agents hold the agent role, and only agents".into(),
                    ));
                }
                Ok(())
            }
            ProposalAction::RemoveMember { principal: p } => principal(p, "principal"),
            ProposalAction::Transfer { to, amount, memo } => {
                principal(to, "to")?;
                if *amount <= 0 {
                    return Err(DaoGovError::Invalid("amount must be above 0".into()));
                }
                if memo.as_ref().is_some_and(|m| m.chars().count() > 200) {
                    return Err(DaoGovError::Invalid(
                        "memo must be at most 200 characters".into(),
                    ));
                }
                Ok(())
            }
            ProposalAction::ChangeSettings {
                name,
                description,
                visibility,
            } => {
                if name.is_none() && description.is_none() && visibility.is_none() {
                    return Err(DaoGovError::Invalid(
                        "change_settings must change something".into(),
                    ));
                }
                if let Some(name) = name {
                    daarion_kernel::names::display_name(name, 80)
                        .map_err(|e| DaoGovError::Invalid(format!("name: {e}")))?;
                }
                if let Some(description) = description {
                    daarion_kernel::names::description(description, 2000)
                        .map_err(|e| DaoGovError::Invalid(format!("description: {e}")))?;
                }
                if visibility
                    .as_deref()
                    .is_some_and(|v| v != "public" && v != "private")
                {
                    return Err(DaoGovError::Invalid(
                        "visibility must be public or private".into(),
                    ));
                }
                Ok(())
            }
            ProposalAction::AttachAgent { agent } | ProposalAction::DetachAgent { agent } => {
                agent_slug(agent)
            }
            ProposalAction::ChangeAgent {
                agent,
                prompt,
                tools,
                model,
                status,
            } => {
                agent_slug(agent)?;
                if prompt.is_none() && tools.is_none() && model.is_none() && status.is_none() {
                    return Err(DaoGovError::Invalid(
                        "change_agent must change something".into(),
                    ));
                }
                if prompt
                    .as_ref()
                    .is_some_and(|p| p.trim().is_empty() || p.chars().count() > MAX_PROMPT)
                {
                    return Err(DaoGovError::Invalid(format!(
                        "prompt must be 1 to {MAX_PROMPT} characters"
                    )));
                }
                if tools.as_ref().is_some_and(|t| t.len() > 64) {
                    return Err(DaoGovError::Invalid("at most 64 tools".into()));
                }
                if model
                    .as_ref()
                    .is_some_and(|m| m.is_empty() || m.len() > 100 || m.contains(char::is_whitespace))
                {
                    return Err(DaoGovError::Invalid(
                        "model is a model alias, 1 to 100 characters without spaces".into(),
                    ));
                }
                if status
                    .as_deref()
                    .is_some_and(|s| s != "active" && s != "paused")
                {
                    return Err(DaoGovError::Invalid(
                        "status must be active or paused".into(),
                    ));
                }
                Ok(())
            }
            ProposalAction::LimitSpending {
                requests_per_minute,
                tokens_per_minute,
                budget_cents_per_month,
            } => {
                if requests_per_minute.is_none()
                    && tokens_per_minute.is_none()
                    && budget_cents_per_month.is_none()
                {
                    return Err(DaoGovError::Invalid(
                        "limit_spending must set a limit".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The agent an action brings in, if it brings one in: only its owner
    /// may propose that.
    pub fn lends_agent(&self) -> Option<&str> {
        match self {
            ProposalAction::AttachAgent { agent } => Some(agent),
            _ => None,
        }
    }
}

fn agent_slug(raw: &str) -> Result<(), DaoGovError> {
    if daarion_kernel::names::is_slug(raw) {
        Ok(())
    } else {
        Err(DaoGovError::Invalid(
            "agent is an agent's slug (a-z, 0-9 and -)".into(),
        ))
    }
}

impl Draft {
    /// Checks a proposal as a whole; basic ballots get their fixed options.
    pub fn check(mut self, min_secs: i64, max_secs: i64) -> Result<Self, DaoGovError> {
        let title = self.title.trim();
        if title.is_empty()
            || title.chars().count() > MAX_TITLE
            || title.chars().any(char::is_control)
        {
            return Err(DaoGovError::Invalid(format!(
                "title must be 1 to {MAX_TITLE} characters on one line"
            )));
        }
        self.title = title.to_owned();
        if self.body.chars().count() > MAX_BODY {
            return Err(DaoGovError::Invalid(format!(
                "body must be at most {MAX_BODY} characters"
            )));
        }
        if let Some(action) = &self.action {
            action.check()?;
            if self.method != VotingMethod::Basic {
                return Err(DaoGovError::Invalid(
                    "an action is voted on with the basic method (for, against, abstain)".into(),
                ));
            }
        }
        if self.method == VotingMethod::Basic {
            if !self.options.is_empty() && self.options.iter().map(String::as_str).ne(BASIC_OPTIONS)
            {
                return Err(DaoGovError::Invalid(
                    "basic ballots have the options for, against, abstain".into(),
                ));
            }
            self.options = BASIC_OPTIONS.iter().map(|o| (*o).to_owned()).collect();
        } else {
            if !(2..=MAX_OPTIONS).contains(&self.options.len()) {
                return Err(DaoGovError::Invalid(format!(
                    "a {} ballot has 2 to {MAX_OPTIONS} options",
                    self.method.as_str()
                )));
            }
            for option in &mut self.options {
                *option = option.trim().to_owned();
                if option.is_empty()
                    || option.chars().count() > MAX_OPTION
                    || option.chars().any(char::is_control)
                {
                    return Err(DaoGovError::Invalid(format!(
                        "each option must be 1 to {MAX_OPTION} characters on one line"
                    )));
                }
            }
            let mut seen = std::collections::HashSet::new();
            if !self.options.iter().all(|o| seen.insert(o.to_lowercase())) {
                return Err(DaoGovError::Invalid("options must differ".into()));
            }
            if matches!(self.quorum, Quorum::Veto(_)) {
                return Err(DaoGovError::Invalid(
                    "only basic ballots can be optimistic (veto)".into(),
                ));
            }
        }
        match self.quorum {
            Quorum::Share(v) | Quorum::Veto(v) => bp(v, "quorum")?,
            Quorum::None | Quorum::Power(_) => {}
        }
        if let Threshold::Supermajority(v) = self.threshold {
            bp(v, "threshold")?;
            if v <= 5_000 {
                return Err(DaoGovError::Invalid(
                    "a supermajority is more than 5000 basis points".into(),
                ));
            }
        }
        if let VotingPower::Roles {
            owner,
            admin,
            member,
            agent,
        } = self.power
            && [owner, admin, member, agent].iter().any(|w| *w > 1_000_000)
        {
            return Err(DaoGovError::Invalid("role weights are 0 to 1000000".into()));
        }
        if !(min_secs..=max_secs).contains(&self.voting_secs) {
            return Err(DaoGovError::Invalid(format!(
                "voting_secs must be {min_secs} to {max_secs}"
            )));
        }
        Ok(self)
    }
}

impl Proposal {
    /// Checks a ballot against this proposal's method and options.
    pub fn check_ballot(&self, ballot: &Ballot) -> Result<(), DaoGovError> {
        if !self.method.takes(ballot) {
            return Err(DaoGovError::Invalid(format!(
                "a {} ballot says {}",
                self.method.as_str(),
                match self.method {
                    VotingMethod::Basic | VotingMethod::Single => "choice",
                    VotingMethod::Approval => "approve",
                    VotingMethod::Ranked => "rank",
                    VotingMethod::Weighted | VotingMethod::Quadratic => "spread",
                }
            )));
        }
        let n = self.options.len();
        let in_range = |o: &u32| (*o as usize) < n;
        let distinct = |list: &[u32]| {
            let mut seen = std::collections::HashSet::new();
            list.iter().all(|o| seen.insert(*o))
        };
        let ok = match ballot {
            Ballot::Choice(o) => in_range(o),
            Ballot::Approve(list) | Ballot::Rank(list) => {
                !list.is_empty() && list.iter().all(in_range) && distinct(list)
            }
            Ballot::Spread(points) => {
                points.len() == n
                    && points.iter().any(|p| *p > 0)
                    && points.iter().all(|p| *p <= MAX_POINTS)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DaoGovError::Invalid(format!(
                "the ballot names options 0 to {} (each once; points 0 to {MAX_POINTS} for every option, some above 0)",
                n.saturating_sub(1)
            )))
        }
    }

    pub fn rules(&self) -> crate::tally::Rules {
        crate::tally::Rules {
            method: self.method,
            options: self.options.len(),
            quorum: self.quorum,
            threshold: self.threshold,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaoGovError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// A stored row that does not decode: never read as a default.
    #[error("stored proposal data does not decode: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Community(#[from] daarion_microdao::domain::DaoError),
}

impl From<StoreError> for DaoGovError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<daarion_store::sql::Error> for DaoGovError {
    fn from(error: daarion_store::sql::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl From<serde_json::Error> for DaoGovError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn draft(method: VotingMethod, options: &[&str]) -> Draft {
        Draft {
            title: "Buy a kettle".into(),
            body: String::new(),
            action: None,
            method,
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            quorum: Quorum::Share(2000),
            threshold: Threshold::Majority,
            power: VotingPower::Equal,
            vote_change: false,
            hidden: false,
            voting_secs: 3600,
        }
    }

    #[test]
    fn drafts_are_checked_as_a_whole() {
        let basic = draft(VotingMethod::Basic, &[]).check(60, 86_400).unwrap();
        assert_eq!(basic.options, BASIC_OPTIONS);
        assert!(
            draft(VotingMethod::Single, &["a"])
                .check(60, 86_400)
                .is_err()
        );
        assert!(
            draft(VotingMethod::Single, &["a", "A "])
                .check(60, 86_400)
                .is_err()
        );
        assert!(
            draft(VotingMethod::Single, &["a", "b"])
                .check(60, 86_400)
                .is_ok()
        );
        assert!(draft(VotingMethod::Basic, &[]).check(7200, 86_400).is_err());
        let mut veto = draft(VotingMethod::Approval, &["a", "b"]);
        veto.quorum = Quorum::Veto(1000);
        assert!(veto.check(60, 86_400).is_err());
        let mut action = draft(VotingMethod::Ranked, &["a", "b"]);
        action.action = Some(ProposalAction::RemoveMember {
            principal: "user:x".into(),
        });
        assert!(action.check(60, 86_400).is_err());
        let mut weak = draft(VotingMethod::Basic, &[]);
        weak.threshold = Threshold::Supermajority(5000);
        assert!(weak.check(60, 86_400).is_err());
    }

    #[test]
    fn actions_are_checked_before_anyone_votes() {
        let agent_as_member = ProposalAction::ChangeRole {
            principal: "agent:helper".into(),
            role: DaoRole::Member,
        };
        assert!(agent_as_member.check().is_err());
        let agent_admitted = ProposalAction::AddMember {
            principal: "agent:helper".into(),
            role: DaoRole::Agent,
        };
        assert!(agent_admitted.check().is_err());
        assert!(
            ProposalAction::Transfer {
                to: "user:x".into(),
                amount: 0,
                memo: None
            }
            .check()
            .is_err()
        );
        assert!(
            ProposalAction::ChangeSettings {
                name: None,
                description: None,
                visibility: None
            }
            .check()
            .is_err()
        );
        let ok: ProposalAction =
            serde_json::from_str(r#"{"type":"add_member","principal":"user:abc","role":"member"}"#)
                .unwrap();
        ok.check().unwrap();
        let change = |json: &str| {
            serde_json::from_str::<ProposalAction>(json)
                .unwrap()
                .check()
        };
        assert!(change(r#"{"type":"change_agent","agent":"clerk"}"#).is_err());
        assert!(change(r#"{"type":"change_agent","agent":"clerk","status":"archived"}"#).is_err());
        assert!(change(r#"{"type":"change_agent","agent":"clerk","prompt":"  "}"#).is_err());
        assert!(change(r#"{"type":"attach_agent","agent":"Not A Slug"}"#).is_err());
        change(r#"{"type":"change_agent","agent":"clerk","status":"paused"}"#).unwrap();
        change(r#"{"type":"detach_agent","agent":"clerk"}"#).unwrap();
        assert!(change(r#"{"type":"limit_spending"}"#).is_err());
        change(r#"{"type":"limit_spending","budget_cents_per_month":2000}"#).unwrap();
    }
}
