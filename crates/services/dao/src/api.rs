//! HTTP routes and wire types. [`DaoGovError`] maps to [`ApiError`] here,
//! once.

use std::sync::Arc;

use axum::extract::{Path, State};
use daarion_access::{Principal, PrincipalKind};
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    DaoGovState,
    chain::ChainLink,
    domain::{
        Ballot, DaoGovError, Draft, Proposal, ProposalAction, ProposalStatus, Quorum, Threshold,
        VotingMethod, VotingPower,
    },
    lifecycle,
    store::{self, VoteReceipt},
    tally::{Elector, Tally},
};

impl From<DaoGovError> for ApiError {
    fn from(error: DaoGovError) -> Self {
        match error {
            DaoGovError::Invalid(message) => ApiError::validation(message),
            DaoGovError::NotFound(message) => ApiError::not_found(message),
            DaoGovError::Forbidden(message) => ApiError::forbidden(message),
            DaoGovError::Conflict(message) => ApiError::conflict(message),
            DaoGovError::Store(e) if e.is_retryable() => ApiError::unavailable(&e),
            DaoGovError::Store(e) => ApiError::internal(&e),
            e @ DaoGovError::Corrupt(_) => ApiError::internal(&e),
            DaoGovError::Bus(e) => ApiError::unavailable(&e),
            DaoGovError::Community(e) => e.into(),
        }
    }
}

pub fn router() -> OpenApiRouter<DaoGovState> {
    OpenApiRouter::new()
        .routes(routes!(list_proposals, create_proposal))
        .routes(routes!(get_proposal, revise_proposal))
        .routes(routes!(open_proposal))
        .routes(routes!(cancel_proposal))
        .routes(routes!(cast_vote))
        .routes(routes!(get_receipt))
        .routes(routes!(get_tally))
        .routes(routes!(get_record))
        .routes(routes!(retry_execution))
        .routes(routes!(get_delegation, set_delegation, revoke_delegation))
        .routes(routes!(get_governance_settings, set_governance_settings))
}

/// People and agents take part in governance; services do not.
fn participant(principal: &Principal) -> Result<String, ApiError> {
    match principal.kind {
        PrincipalKind::User | PrincipalKind::Agent => Ok(principal.name()),
        PrincipalKind::Service => Err(ApiError::forbidden(
            "only people and agents take part in governance",
        )),
    }
}

async fn proposal(state: &DaoGovState, id: &str) -> Result<Proposal, ApiError> {
    let p = store::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such proposal"))?;
    Ok(lifecycle::settle(state, p).await?)
}

/// A draft is its author's until it opens.
fn visible(p: Proposal, viewer: &str) -> Result<Proposal, ApiError> {
    if p.status == ProposalStatus::Draft && p.author != viewer {
        return Err(ApiError::not_found("no such proposal"));
    }
    Ok(p)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalInput {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Markdown.
    #[serde(default)]
    #[schema(max_length = 20000)]
    pub body: String,
    /// What the microDAO does when it passes; none for a signal.
    pub action: Option<ProposalAction>,
    #[serde(default = "basic")]
    pub method: VotingMethod,
    /// The options, 2 to 20 (basic ballots have for, against, abstain).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub options: Vec<String>,
    /// Default: a fifth of the electorate's power (the original's 20 %).
    #[serde(default = "fifth")]
    pub quorum: Quorum,
    /// Default: a majority.
    #[serde(default = "majority")]
    pub threshold: Threshold,
    /// Default: one vote each.
    #[serde(default = "equal")]
    pub power: VotingPower,
    #[serde(default)]
    pub vote_change: bool,
    #[serde(default)]
    pub hidden: bool,
    /// How long voting stays open once opened, in seconds (default 7 days;
    /// the bounds are `dao.min_voting_secs` and `dao.max_voting_secs`).
    #[serde(default = "week")]
    #[schema(minimum = 1, maximum = 7776000)]
    pub voting_secs: i64,
}

fn basic() -> VotingMethod {
    VotingMethod::Basic
}
fn fifth() -> Quorum {
    Quorum::Share(2000)
}
fn majority() -> Threshold {
    Threshold::Majority
}
fn equal() -> VotingPower {
    VotingPower::Equal
}
fn week() -> i64 {
    7 * 86_400
}

impl ProposalInput {
    /// The draft, checked; an agent is brought in only by its owner's
    /// proposal (the microDAO's governance admits it on that word).
    async fn checked(self, state: &DaoGovState, author: &str) -> Result<Draft, ApiError> {
        if let Some(agent) = self.action.as_ref().and_then(ProposalAction::lends_agent) {
            let found = state
                .directory
                .principal(daarion_access::PrincipalKind::Agent, agent)
                .await
                .map_err(|e| ApiError::unavailable(&e))?
                .ok_or_else(|| ApiError::validation(format!("no agent {agent:?}")))?;
            if found.owner.map(|o| format!("user:{o}")).as_deref() != Some(author) {
                return Err(ApiError::forbidden(
                    "only an agent's owner proposes bringing it in",
                ));
            }
        }
        let draft = Draft {
            title: self.title,
            body: self.body,
            action: self.action,
            method: self.method,
            options: self.options,
            quorum: self.quorum,
            threshold: self.threshold,
            power: self.power,
            vote_change: self.vote_change,
            hidden: self.hidden,
            voting_secs: self.voting_secs,
        };
        Ok(draft.check(
            state.settings.min_voting_secs,
            state.settings.max_voting_secs,
        )?)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProposalFilter {
    /// Only proposals in this state.
    pub status: Option<ProposalStatus>,
}

/// A microDAO's proposals, newest first (drafts: only your own).
#[utoipa::path(get, path = "/daos/{dao}/proposals", tag = "dao",
    params(("dao" = String, Path, description = "The microDAO's slug"), ProposalFilter, PageParams),
    responses((status = 200, body = Page<Proposal>), (status = 400, description = "Bad cursor or limit"),
        (status = 401, description = "Not signed in"), (status = 403, description = "Not allowed to read its proposals"),
        (status = 404, description = "No such microDAO")))]
async fn list_proposals(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(dao): Path<String>,
    Query(filter): Query<ProposalFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Proposal>>, ApiError> {
    let limit = page.limit()?;
    let after = page.after()?;
    let after = match after.as_deref().map(|c| c.split_once('\n')) {
        None => None,
        Some(Some(position)) => Some(position),
        Some(None) => return Err(ApiError::validation("cursor is not one this endpoint gave")),
    };
    let rows = store::list(
        &state.db,
        &dao,
        filter.status,
        &principal.name(),
        after,
        limit,
    )
    .await?;
    let mut settled = Vec::with_capacity(rows.len());
    for p in rows {
        settled.push(lifecycle::settle(&state, p).await?);
    }
    Ok(Json(Page::from_rows(settled, limit, |p| {
        format!("{}\n{}", p.created_at, p.id)
    })))
}

/// Write a proposal (a draft, which you open when it is ready). An action
/// is voted on with the basic method.
#[utoipa::path(post, path = "/daos/{dao}/proposals", tag = "dao", request_body = ProposalInput,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, body = Proposal), (status = 200, body = Proposal, description = "A retry with the same Idempotency-Key"),
        (status = 401, description = "Not signed in"), (status = 403, description = "Not a member who may propose, or bringing in an agent that is not yours"),
        (status = 404, description = "No such microDAO"),
        (status = 409, description = "The microDAO is archived, or this Idempotency-Key was used with a different request"),
        (status = 422, description = "A field out of bounds, options that do not fit the method, or no such agent")))]
async fn create_proposal(
    State(state): State<DaoGovState>,
    principal: Principal,
    key: IdempotencyKey,
    Path(dao): Path<String>,
    Json(input): Json<ProposalInput>,
) -> Result<axum::response::Response, ApiError> {
    let author = participant(&principal)?;
    let draft = input.checked(&state, &author).await?;
    let community = daarion_microdao::store::dao(&state.db, &dao)
        .await?
        .ok_or_else(|| ApiError::not_found("no such microDAO"))?;
    if community.archived_at.is_some() {
        return Err(ApiError::conflict("the microDAO is archived and read-only"));
    }
    let (p, staged) = store::create(
        &state.db,
        &state.outbox,
        &dao,
        &author,
        &draft,
        key.as_deref(),
    )
    .await?;
    let fresh = !staged.events().is_empty();
    state.outbox.relay(staged).await;
    Ok(daarion_kernel::http::created(fresh, p))
}

/// A proposal, with its result once voting closed.
#[utoipa::path(get, path = "/proposals/{proposal}", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 200, body = Proposal), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to read it"), (status = 404, description = "No such proposal")))]
async fn get_proposal(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Proposal>, ApiError> {
    let p = proposal(&state, &id).await?;
    Ok(Json(visible(p, &principal.name())?))
}

/// Rewrite your draft (the whole of it).
#[utoipa::path(patch, path = "/proposals/{proposal}", tag = "dao", request_body = ProposalInput,
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 200, body = Proposal), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not its author, or bringing in an agent that is not yours"), (status = 404, description = "No such proposal"),
        (status = 409, description = "No longer a draft"), (status = 422, description = "A field out of bounds, or no such agent")))]
async fn revise_proposal(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(input): Json<ProposalInput>,
) -> Result<Json<Proposal>, ApiError> {
    let author = participant(&principal)?;
    visible(proposal(&state, &id).await?, &author)?;
    let draft = input.checked(&state, &author).await?;
    let (p, staged) = store::revise(&state.db, &state.outbox, &id, &author, &draft).await?;
    state.outbox.relay(staged).await;
    Ok(Json(p))
}

/// Open your draft for voting: the electorate and each member's power are
/// fixed now (the snapshot), and voting closes `voting_secs` from now.
#[utoipa::path(post, path = "/proposals/{proposal}/open", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 200, body = Proposal), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not its author"), (status = 404, description = "No such proposal"),
        (status = 409, description = "Not a draft, or the microDAO is archived")))]
async fn open_proposal(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Proposal>, ApiError> {
    let author = participant(&principal)?;
    let p = visible(proposal(&state, &id).await?, &author)?;
    if p.author != author {
        return Err(ApiError::forbidden("only its author opens a proposal"));
    }
    let community = daarion_microdao::store::dao(&state.db, &p.dao)
        .await?
        .ok_or_else(|| ApiError::not_found("no such microDAO"))?;
    if community.archived_at.is_some() {
        return Err(ApiError::conflict("the microDAO is archived and read-only"));
    }
    let settings = store::settings(&state.db, &p.dao).await?;
    let snapshot_at = daarion_store::now();
    let members = store::eligible(&state.db, &p.dao, settings.agents_vote).await?;
    let powers = store::powers(&state.db, &p.dao, p.power, &members, &snapshot_at).await?;
    let (p, staged) = store::open(
        &state.db,
        &state.outbox,
        &id,
        &author,
        &powers,
        &snapshot_at,
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(Json(p))
}

/// Withdraw your proposal: a draft, or an open one no one has voted on.
#[utoipa::path(post, path = "/proposals/{proposal}/cancel", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 200, body = Proposal), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not its author"), (status = 404, description = "No such proposal"),
        (status = 409, description = "Someone has voted, or voting has closed")))]
async fn cancel_proposal(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Proposal>, ApiError> {
    let author = participant(&principal)?;
    visible(proposal(&state, &id).await?, &author)?;
    let (p, staged) = store::cancel(&state.db, &state.outbox, &id, &author).await?;
    state.outbox.relay(staged).await;
    Ok(Json(p))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteInput {
    /// `{"choice": n}` (basic: 0 for, 1 against, 2 abstain; single
    /// choice), `{"approve": [..]}`, `{"rank": [..]}` or `{"spread": [..]}`
    /// (weighted and quadratic: points for every option).
    pub ballot: Ballot,
}

/// Vote. The vote is the next link of the proposal's record; keep the
/// receipt to find it there. Where the proposal allows changing a vote,
/// voting again replaces your earlier ballot at the count.
#[utoipa::path(post, path = "/proposals/{proposal}/votes", tag = "dao", request_body = VoteInput,
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 201, body = VoteReceipt), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to vote, or not in the electorate when it opened"),
        (status = 404, description = "No such proposal"),
        (status = 409, description = "Voting is not open, or you voted and may not change it"),
        (status = 422, description = "A ballot that does not fit the method or options")))]
async fn cast_vote(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(input): Json<VoteInput>,
) -> Result<(axum::http::StatusCode, Json<VoteReceipt>), ApiError> {
    let voter = participant(&principal)?;
    // An open proposal's method and options never change: ballots are
    // checked against it without reading it again (the vote's transaction
    // refuses one that has closed since).
    let p = match state.open.get(&id) {
        Some(p) => p,
        None => {
            let p = Arc::new(visible(proposal(&state, &id).await?, &voter)?);
            if p.status == ProposalStatus::Active {
                state.open.insert(id.clone(), p.clone());
            }
            p
        }
    };
    p.check_ballot(&input.ballot)?;
    let (receipt, staged) =
        store::cast(&state.db, &state.outbox, &id, &voter, &input.ballot).await?;
    state.outbox.relay(staged).await;
    Ok((axum::http::StatusCode::CREATED, Json(receipt)))
}

/// Your last vote's receipt.
#[utoipa::path(get, path = "/proposals/{proposal}/receipt", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 200, body = ChainLink), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to read it"),
        (status = 404, description = "No such proposal, or you have not voted")))]
async fn get_receipt(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ChainLink>, ApiError> {
    let voter = principal.name();
    visible(proposal(&state, &id).await?, &voter)?;
    store::last_vote(&state.db, &id, &voter)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("you have not voted on this proposal"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TallyView {
    pub proposal: String,
    pub status: ProposalStatus,
    /// Whether this is the stored result (voting closed) or the count so far.
    #[serde(rename = "final")]
    pub settled: bool,
    /// Votes cast so far (changes included).
    pub votes: i64,
    /// The count; absent while a hidden tally is open.
    pub tally: Option<Tally>,
}

/// The count: live while voting is open (unless the proposal hides it
/// until the close), the stored result after.
#[utoipa::path(get, path = "/proposals/{proposal}/tally", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 200, body = TallyView), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to read it"), (status = 404, description = "No such proposal"),
        (status = 409, description = "Not open yet")))]
async fn get_tally(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TallyView>, ApiError> {
    let p = visible(proposal(&state, &id).await?, &principal.name())?;
    let tally = match (p.status, &p.result) {
        (ProposalStatus::Draft, _) => return Err(ApiError::conflict("voting has not opened")),
        (_, Some(result)) => Some(result.clone()),
        (ProposalStatus::Active, None) if p.hidden => None,
        (ProposalStatus::Active | ProposalStatus::Cancelled, None) => {
            Some(store::count(&state.db, &p).await?)
        }
        (_, None) => {
            return Err(DaoGovError::Corrupt(format!(
                "closed proposal {} without its result",
                p.id
            ))
            .into());
        }
    };
    Ok(Json(TallyView {
        proposal: p.id,
        status: p.status,
        settled: p.result.is_some(),
        votes: p.votes,
        tally,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordPage {
    /// Votes after this sequence number (default 0: from the first).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Votes per page, 1 to 1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoteRecord {
    pub proposal: String,
    /// The proposal as it opened, with its electorate: its canonical JSON,
    /// hashed after `daarion-dao/1\n`, is the genesis.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    pub electorate: Vec<Elector>,
    pub genesis: String,
    /// The last vote's hash (the genesis before any vote).
    pub head: String,
    /// This page of the chain.
    pub votes: Vec<ChainLink>,
    /// Ask again with `after` = this for the next page.
    pub next_after: Option<i64>,
    /// The stored result, once voting closed: recount `votes` (each
    /// voter's last) over `electorate` to check it.
    pub result: Option<Tally>,
    /// Whether the server found the chain intact (verify it yourself too).
    pub intact: bool,
}

/// The verifiable record: the proposal as it opened, its electorate, and
/// the hash-chained votes. Anyone who may read the result can recompute
/// each hash and the tally. While a hidden tally is open, the record
/// waits for the close.
#[utoipa::path(get, path = "/proposals/{proposal}/record", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`"), RecordPage),
    responses((status = 200, body = VoteRecord), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to read it"), (status = 404, description = "No such proposal"),
        (status = 409, description = "Not open yet, or hidden until the close"),
        (status = 422, description = "after or limit out of bounds")))]
async fn get_record(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(page): Query<RecordPage>,
) -> Result<Json<VoteRecord>, ApiError> {
    let after = page.after.unwrap_or(0);
    let limit = page.limit.unwrap_or(1000);
    if after < 0 || !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(
            "after must be 0 or more, limit 1 to 1000",
        ));
    }
    let p = visible(proposal(&state, &id).await?, &principal.name())?;
    if p.hidden && p.status == ProposalStatus::Active {
        return Err(ApiError::conflict(
            "this proposal's votes are hidden until voting closes",
        ));
    }
    let (definition, genesis, head) = store::record_head(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::conflict("voting has not opened"))?;
    let electorate = store::electorate(&state.db, &id).await?;
    let mut votes = store::links(&state.db, &id, after, limit).await?;
    let more = votes.len() > limit as usize;
    votes.truncate(limit as usize);
    let intact = store::intact(&state.db, &id, &definition, &genesis, &head).await?;
    Ok(Json(VoteRecord {
        proposal: id,
        next_after: more.then(|| votes.last().map_or(after, |l| l.seq)),
        definition,
        electorate,
        genesis,
        head,
        votes,
        result: p.result,
        intact,
    }))
}

/// Try a failed execution again (the microDAO's admins): the next sweep
/// (`dao.sweep_ms`) carries the passed action out, still at most once.
#[utoipa::path(post, path = "/proposals/{proposal}/execute", tag = "dao",
    params(("proposal" = String, Path, description = "`prp_…`")),
    responses((status = 202, body = Proposal), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not an admin of its microDAO"), (status = 404, description = "No such proposal"),
        (status = 409, description = "Its execution has not failed")))]
async fn retry_execution(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<(axum::http::StatusCode, Json<Proposal>), ApiError> {
    visible(proposal(&state, &id).await?, &principal.name())?;
    let (p, staged) =
        store::retry_execution(&state.db, &state.outbox, &id, &principal.name()).await?;
    state.outbox.relay(staged).await;
    Ok((axum::http::StatusCode::ACCEPTED, Json(p)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DelegationView {
    pub dao: String,
    /// Whom you lend your voting power to, if anyone.
    pub delegate: Option<String>,
    /// Who lends theirs to you.
    pub delegators: Vec<String>,
}

async fn delegation_view(
    state: &DaoGovState,
    dao: &str,
    me: &str,
) -> Result<DelegationView, ApiError> {
    Ok(DelegationView {
        dao: dao.to_owned(),
        delegate: store::delegation(&state.db, dao, me).await?,
        delegators: store::delegators(&state.db, dao, me).await?,
    })
}

/// Your delegation in a microDAO, and who delegates to you.
#[utoipa::path(get, path = "/daos/{dao}/delegation", tag = "dao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DelegationView), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to read its proposals"), (status = 404, description = "No such microDAO")))]
async fn get_delegation(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(dao): Path<String>,
) -> Result<Json<DelegationView>, ApiError> {
    Ok(Json(
        delegation_view(&state, &dao, &principal.name()).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationInput {
    /// The member (`user:<id>` or `agent:<id>`) who votes with your power
    /// where you do not vote yourself.
    #[schema(max_length = 80)]
    pub delegate: String,
}

/// Lend your voting power in a microDAO to another member (in place of
/// anyone before). It counts on proposals opened from now on, wherever
/// you do not vote yourself; chains pass it on, cycles are refused.
#[utoipa::path(put, path = "/daos/{dao}/delegation", tag = "dao", request_body = DelegationInput,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DelegationView), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a member"), (status = 404, description = "No such microDAO"),
        (status = 409, description = "It would close a cycle"),
        (status = 422, description = "Yourself, or someone who is not a member")))]
async fn set_delegation(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(dao): Path<String>,
    Json(input): Json<DelegationInput>,
) -> Result<Json<DelegationView>, ApiError> {
    let me = participant(&principal)?;
    let groups = daarion_microdao::store::role_groups(&state.db, &input.delegate).await?;
    let prefix = format!("dao:{dao}:");
    let votes_here = groups.iter().any(|g| {
        g.strip_prefix(&prefix)
            .is_some_and(|role| matches!(role, "owner" | "admin" | "member" | "agent"))
    });
    if !votes_here {
        return Err(ApiError::validation(
            "the delegate must be a member of this microDAO",
        ));
    }
    let staged = store::delegate(&state.db, &state.outbox, &dao, &me, &input.delegate).await?;
    state.outbox.relay(staged).await;
    Ok(Json(delegation_view(&state, &dao, &me).await?))
}

/// Take your voting power back.
#[utoipa::path(delete, path = "/daos/{dao}/delegation", tag = "dao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DelegationView), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not a member"),
        (status = 404, description = "No such microDAO, or you do not delegate there")))]
async fn revoke_delegation(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(dao): Path<String>,
) -> Result<Json<DelegationView>, ApiError> {
    let me = participant(&principal)?;
    let staged = store::revoke_delegation(&state.db, &state.outbox, &dao, &me).await?;
    state.outbox.relay(staged).await;
    Ok(Json(delegation_view(&state, &dao, &me).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSettings {
    /// Whether the microDAO's agents propose and vote (on proposals opened
    /// from now on).
    pub agents_vote: bool,
}

/// A microDAO's governance settings.
#[utoipa::path(get, path = "/daos/{dao}/settings", tag = "dao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = GovernanceSettings), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not allowed to read the microDAO"), (status = 404, description = "No such microDAO")))]
async fn get_governance_settings(
    State(state): State<DaoGovState>,
    Path(dao): Path<String>,
) -> Result<Json<GovernanceSettings>, ApiError> {
    let settings = store::settings(&state.db, &dao).await?;
    Ok(Json(GovernanceSettings {
        agents_vote: settings.agents_vote,
    }))
}

/// Change a microDAO's governance settings (its owners).
#[utoipa::path(put, path = "/daos/{dao}/settings", tag = "dao", request_body = GovernanceSettings,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = GovernanceSettings), (status = 401, description = "Not signed in"),
        (status = 403, description = "Not an owner"), (status = 404, description = "No such microDAO")))]
async fn set_governance_settings(
    State(state): State<DaoGovState>,
    principal: Principal,
    Path(dao): Path<String>,
    Json(input): Json<GovernanceSettings>,
) -> Result<Json<GovernanceSettings>, ApiError> {
    let settings = store::Settings {
        agents_vote: input.agents_vote,
    };
    let staged =
        store::set_settings(&state.db, &state.outbox, &dao, settings, &principal.name()).await?;
    state.standing.invalidate(&dao);
    state.outbox.relay(staged).await;
    Ok(Json(input))
}
