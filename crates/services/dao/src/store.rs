//! Proposals, their electorates, the chain of votes, delegations and
//! settings. Every change is one transaction with its events staged.
//!
//! Concurrency: a vote, an opening, a close and a cancel each begin by a
//! conditional update of the proposal's row, which serialises them per
//! proposal on PostgreSQL (as SQLite does every write), so the chain's
//! sequence has no gaps, a vote after the close or a second close cannot
//! slip in, and a voter who may not change their vote cannot vote twice.
//! Delegations of one microDAO are serialised on its settings row, so two
//! delegations cannot close a cycle together.

use std::collections::HashMap;

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row},
};

use crate::{
    chain::{self, ChainLink},
    domain::{
        Ballot, DaoGovError, Draft, ExecutionState, Proposal, ProposalKind, ProposalStatus,
        VotingPower,
    },
    events,
    tally::{self, Elector, Tally},
};

type Tx = sql::Transaction<'static, sql::Any>;

const PROPOSAL: &str = "SELECT id, dao, title, body, author, kind, action, method, options, quorum,
    threshold, power, vote_change, hidden, voting_secs, status, votes, result, execution,
    execution_attempts, execution_error, executed_at,
    created_at, opened_at, snapshot_at, closes_at, closed_at FROM dao_proposals";

fn corrupt(what: &str, raw: &str) -> DaoGovError {
    DaoGovError::Corrupt(format!("{what} {raw:?}"))
}

fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, DaoGovError> {
    let raw: String = row.try_get(column)?;
    serde_json::from_str(&raw).map_err(|_| corrupt(column, &raw))
}

fn proposal_from(row: &AnyRow) -> Result<Proposal, DaoGovError> {
    let text = |column: &str| -> Result<String, DaoGovError> { Ok(row.try_get(column)?) };
    let kind = text("kind")?;
    let method = text("method")?;
    let status = text("status")?;
    let action: Option<String> = row.try_get("action")?;
    let body = text("body")?;
    let result: Option<String> = row.try_get("result")?;
    let execution: Option<String> = row.try_get("execution")?;
    Ok(Proposal {
        id: text("id")?,
        dao: text("dao")?,
        title: text("title")?,
        body_html: daarion_messaging::markdown::render(&body),
        body,
        author: text("author")?,
        kind: ProposalKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        action: action
            .map(|raw| serde_json::from_str(&raw).map_err(|_| corrupt("action", &raw)))
            .transpose()?,
        method: crate::domain::VotingMethod::parse(&method)
            .ok_or_else(|| corrupt("method", &method))?,
        options: json(row, "options")?,
        quorum: json(row, "quorum")?,
        threshold: json(row, "threshold")?,
        power: json(row, "power")?,
        vote_change: row.try_get::<i64, _>("vote_change")? != 0,
        hidden: row.try_get::<i64, _>("hidden")? != 0,
        voting_secs: row.try_get("voting_secs")?,
        status: ProposalStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        votes: row.try_get("votes")?,
        created_at: text("created_at")?,
        opened_at: row.try_get("opened_at")?,
        snapshot_at: row.try_get("snapshot_at")?,
        closes_at: row.try_get("closes_at")?,
        closed_at: row.try_get("closed_at")?,
        result: result
            .map(|raw| serde_json::from_str(&raw).map_err(|_| corrupt("result", &raw)))
            .transpose()?,
        execution: execution
            .map(|raw| ExecutionState::parse(&raw).ok_or_else(|| corrupt("execution", &raw)))
            .transpose()?,
        execution_attempts: row.try_get("execution_attempts")?,
        execution_error: row.try_get("execution_error")?,
        executed_at: row.try_get("executed_at")?,
    })
}

async fn proposal_in(tx: &mut Tx, id: &str) -> Result<Proposal, DaoGovError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{PROPOSAL} WHERE id = $1")))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    proposal_from(&row)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Proposal>, DaoGovError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{PROPOSAL} WHERE id = $1")))
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(proposal_from).transpose()
}

/// The microDAO a proposal belongs to, for the policies.
pub async fn dao_of(db: &Db, id: &str) -> Result<Option<String>, DaoGovError> {
    let row = sql::query("SELECT dao FROM dao_proposals WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    Ok(row.map(|r| r.try_get("dao")).transpose()?)
}

/// A microDAO's proposals, newest first, after `(created_at, id)` of a
/// previous page's last; drafts only their authors see.
pub async fn list(
    db: &Db,
    dao: &str,
    status: Option<ProposalStatus>,
    viewer: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<Proposal>, DaoGovError> {
    let (at, id) = after.unwrap_or(("~", "~"));
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{PROPOSAL} WHERE dao = $1 AND ($2 = '' OR status = $2)
           AND (status <> 'draft' OR author = $3)
           AND (created_at < $4 OR (created_at = $4 AND id < $5))
         ORDER BY created_at DESC, id DESC LIMIT $6"
    )))
    .bind(dao)
    .bind(status.map_or("", ProposalStatus::as_str))
    .bind(viewer)
    .bind(at)
    .bind(id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(proposal_from).collect()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, DaoGovError> {
    Ok(serde_json::to_string(value)?)
}

/// A new draft by `author`; a retry with the same `Idempotency-Key` and
/// body returns the first.
pub async fn create(
    db: &Db,
    outbox: &Outbox,
    dao: &str,
    author: &str,
    draft: &Draft,
    key: Option<&str>,
) -> Result<(Proposal, Staged), DaoGovError> {
    let action = draft.action.as_ref().map(to_json).transpose()?;
    let (options, quorum, threshold, power) = (
        to_json(&draft.options)?,
        to_json(&draft.quorum)?,
        to_json(&draft.threshold)?,
        to_json(&draft.power)?,
    );
    let mut tx = db.begin().await?;
    let scope = format!("dao.proposals:{author}");
    if let Some(key) = key {
        let secs = draft.voting_secs.to_string();
        let flags = format!("{}{}", u8::from(draft.vote_change), u8::from(draft.hidden));
        let hash = idempotency::fingerprint(&[
            dao,
            &draft.title,
            &draft.body,
            action.as_deref().unwrap_or(""),
            draft.method.as_str(),
            &options,
            &quorum,
            &threshold,
            &power,
            &secs,
            &flags,
        ]);
        if let Claim::Replay(id) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            let proposal = proposal_in(&mut tx, &id).await?;
            return Ok((proposal, Staged::none()));
        }
    }
    let id = format!("prp_{}", uuid::Uuid::now_v7().simple());
    let now = daarion_store::now();
    let kind = if draft.action.is_some() {
        ProposalKind::Action
    } else {
        ProposalKind::Signal
    };
    sql::query(
        "INSERT INTO dao_proposals (id, dao, title, body, author, kind, action, method, options,
            quorum, threshold, power, vote_change, hidden, voting_secs, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'draft', $16, $16)",
    )
    .bind(&id)
    .bind(dao)
    .bind(&draft.title)
    .bind(&draft.body)
    .bind(author)
    .bind(kind.as_str())
    .bind(action)
    .bind(draft.method.as_str())
    .bind(options)
    .bind(quorum)
    .bind(threshold)
    .bind(power)
    .bind(i64::from(draft.vote_change))
    .bind(i64::from(draft.hidden))
    .bind(draft.voting_secs)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    if let Some(key) = key {
        idempotency::complete(&mut tx, &scope, key, &id).await?;
    }
    let proposal = proposal_in(&mut tx, &id).await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::proposal("created", &proposal, author)],
        )
        .await?;
    tx.commit().await?;
    Ok((proposal, staged))
}

/// Why a conditional update of a proposal found nothing to change.
async fn refusal(tx: &mut Tx, id: &str, wanted: &str) -> DaoGovError {
    match proposal_in(tx, id).await {
        Ok(p) => DaoGovError::Conflict(format!("the proposal is {}; {wanted}", p.status.as_str())),
        Err(e) => e,
    }
}

/// Rewrites a draft, which only its author may.
pub async fn revise(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    author: &str,
    draft: &Draft,
) -> Result<(Proposal, Staged), DaoGovError> {
    let mut tx = db.begin().await?;
    let changed = sql::query(
        "UPDATE dao_proposals SET title = $3, body = $4, action = $5, kind = $6, method = $7,
            options = $8, quorum = $9, threshold = $10, power = $11, vote_change = $12,
            hidden = $13, voting_secs = $14, updated_at = $15
         WHERE id = $1 AND author = $2 AND status = 'draft'",
    )
    .bind(id)
    .bind(author)
    .bind(&draft.title)
    .bind(&draft.body)
    .bind(draft.action.as_ref().map(to_json).transpose()?)
    .bind(if draft.action.is_some() {
        "action"
    } else {
        "signal"
    })
    .bind(draft.method.as_str())
    .bind(to_json(&draft.options)?)
    .bind(to_json(&draft.quorum)?)
    .bind(to_json(&draft.threshold)?)
    .bind(to_json(&draft.power)?)
    .bind(i64::from(draft.vote_change))
    .bind(i64::from(draft.hidden))
    .bind(draft.voting_secs)
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let p = proposal_in(&mut tx, id).await?;
        return Err(if p.author == author {
            refusal(&mut tx, id, "only a draft can be changed").await
        } else {
            DaoGovError::Forbidden("only its author changes a draft".into())
        });
    }
    let proposal = proposal_in(&mut tx, id).await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::proposal("updated", &proposal, author)],
        )
        .await?;
    tx.commit().await?;
    Ok((proposal, staged))
}

/// A microDAO's governance settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    pub agents_vote: bool,
}

pub async fn settings(db: &Db, dao: &str) -> Result<Settings, DaoGovError> {
    let row = sql::query("SELECT agents_vote FROM dao_settings WHERE dao = $1")
        .bind(dao)
        .fetch_optional(db.reader())
        .await?;
    Ok(Settings {
        agents_vote: row
            .map(|r| r.try_get::<i64, _>("agents_vote"))
            .transpose()?
            .is_some_and(|v| v != 0),
    })
}

pub async fn set_settings(
    db: &Db,
    outbox: &Outbox,
    dao: &str,
    settings: Settings,
    actor: &str,
) -> Result<Staged, DaoGovError> {
    let mut tx = db.begin().await?;
    sql::query(
        "INSERT INTO dao_settings (dao, agents_vote, updated_by, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dao) DO UPDATE SET agents_vote = $2, updated_by = $3, updated_at = $4",
    )
    .bind(dao)
    .bind(i64::from(settings.agents_vote))
    .bind(actor)
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::settings_changed(dao, settings.agents_vote, actor)],
        )
        .await?;
    tx.commit().await?;
    Ok(staged)
}

/// Takes the microDAO's settings row (made if missing) for the rest of
/// the transaction: delegations of one microDAO wait for each other.
async fn lock_dao(tx: &mut Tx, dao: &str) -> Result<(), DaoGovError> {
    sql::query(
        "INSERT INTO dao_settings (dao, agents_vote, updated_by, updated_at) VALUES ($1, 0, '', $2)
         ON CONFLICT (dao) DO UPDATE SET agents_vote = dao_settings.agents_vote",
    )
    .bind(dao)
    .bind(daarion_store::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who `member` lends their power to in `dao`.
pub async fn delegation(db: &Db, dao: &str, member: &str) -> Result<Option<String>, DaoGovError> {
    let row = sql::query("SELECT delegate FROM dao_delegations WHERE dao = $1 AND delegator = $2")
        .bind(dao)
        .bind(member)
        .fetch_optional(db.reader())
        .await?;
    Ok(row.map(|r| r.try_get("delegate")).transpose()?)
}

/// Who lends their power to `member` in `dao`.
pub async fn delegators(db: &Db, dao: &str, member: &str) -> Result<Vec<String>, DaoGovError> {
    let rows = sql::query(
        "SELECT delegator FROM dao_delegations WHERE dao = $1 AND delegate = $2 ORDER BY delegator",
    )
    .bind(dao)
    .bind(member)
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("delegator"))
        .collect::<Result<_, _>>()?)
}

async fn delegations_in(tx: &mut Tx, dao: &str) -> Result<HashMap<String, String>, DaoGovError> {
    let rows = sql::query("SELECT delegator, delegate FROM dao_delegations WHERE dao = $1")
        .bind(dao)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("delegator")?, r.try_get("delegate")?)))
        .collect()
}

/// `delegator` lends their power in `dao` to `delegate` (in place of
/// anyone before), unless that would close a cycle.
pub async fn delegate(
    db: &Db,
    outbox: &Outbox,
    dao: &str,
    delegator: &str,
    delegate: &str,
) -> Result<Staged, DaoGovError> {
    if delegator == delegate {
        return Err(DaoGovError::Invalid(
            "one cannot delegate to oneself".into(),
        ));
    }
    let mut tx = db.begin().await?;
    lock_dao(&mut tx, dao).await?;
    let all = delegations_in(&mut tx, dao).await?;
    let mut at = Some(delegate);
    let mut steps = 0;
    while let Some(name) = at {
        if name == delegator {
            return Err(DaoGovError::Conflict(format!(
                "{delegate} already lends their power, through a chain, to {delegator}: a delegation cannot close a cycle"
            )));
        }
        steps += 1;
        if steps > all.len() {
            break;
        }
        at = all.get(name).map(String::as_str);
    }
    sql::query(
        "INSERT INTO dao_delegations (dao, delegator, delegate, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dao, delegator) DO UPDATE SET delegate = $3, created_at = $4",
    )
    .bind(dao)
    .bind(delegator)
    .bind(delegate)
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::delegation("set", dao, delegator, Some(delegate))],
        )
        .await?;
    tx.commit().await?;
    Ok(staged)
}

pub async fn revoke_delegation(
    db: &Db,
    outbox: &Outbox,
    dao: &str,
    delegator: &str,
) -> Result<Staged, DaoGovError> {
    let mut tx = db.begin().await?;
    let gone = sql::query("DELETE FROM dao_delegations WHERE dao = $1 AND delegator = $2")
        .bind(dao)
        .bind(delegator)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(DaoGovError::NotFound(
            "you do not delegate in this microDAO".into(),
        ));
    }
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::delegation("revoked", dao, delegator, None)],
        )
        .await?;
    tx.commit().await?;
    Ok(staged)
}

/// A member as the snapshot reads them.
#[derive(Debug, Clone)]
pub struct Eligible {
    pub principal: String,
    pub role: DaoRole,
}

/// Who may vote in `dao` now: its members from `member` up (guests do not
/// vote), its agents where its settings let them.
pub async fn eligible(db: &Db, dao: &str, agents_vote: bool) -> Result<Vec<Eligible>, DaoGovError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = daarion_microdao::store::members(db, dao, after.as_deref(), 500).await?;
        let more = page.len() > 500;
        for m in page.into_iter().take(500) {
            after = Some(m.principal.clone());
            let votes = match m.role {
                DaoRole::Guest => false,
                DaoRole::Agent => agents_vote,
                DaoRole::Owner | DaoRole::Admin | DaoRole::Member => true,
            };
            if votes {
                out.push(Eligible {
                    principal: m.principal,
                    role: m.role,
                });
            }
        }
        if !more {
            return Ok(out);
        }
    }
}

/// Each member's power under `power` at `at` (treasury balances are read
/// as of then).
pub async fn powers(
    db: &Db,
    dao: &str,
    power: VotingPower,
    members: &[Eligible],
    at: &str,
) -> Result<Vec<(String, u64)>, DaoGovError> {
    let balances: HashMap<String, i64> = if power == VotingPower::Treasury {
        daarion_microdao::treasury::balances(db, dao, Some(at))
            .await?
            .0
            .into_iter()
            .map(|b| (b.account, b.balance))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(members
        .iter()
        .map(|m| {
            let p = match power {
                VotingPower::Treasury => balances
                    .get(&m.principal)
                    .map_or(0, |b| u64::try_from(*b).unwrap_or(0)),
                other => other.of_role(m.role),
            };
            (m.principal.clone(), p)
        })
        .collect())
}

/// What a proposal's chain starts from: it as it opened, with its
/// electorate.
pub fn definition(p: &Proposal, electorate: &[Elector]) -> serde_json::Value {
    serde_json::json!({
        "proposal": p.id,
        "dao": p.dao,
        "title": p.title,
        "body": p.body,
        "action": p.action,
        "method": p.method.as_str(),
        "options": p.options,
        "quorum": p.quorum,
        "threshold": p.threshold,
        "power": p.power,
        "vote_change": p.vote_change,
        "hidden": p.hidden,
        "snapshot_at": p.snapshot_at,
        "closes_at": p.closes_at,
        "electorate": electorate,
    })
}

/// Opens a draft for voting: fixes its electorate (`powers`, read at
/// `snapshot_at`, with the delegations standing now) and its deadline.
pub async fn open(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    actor: &str,
    powers: &[(String, u64)],
    snapshot_at: &str,
) -> Result<(Proposal, Staged), DaoGovError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let opened = sql::query(
        "UPDATE dao_proposals SET status = 'active', opened_at = $2, snapshot_at = $3,
            updated_at = $2 WHERE id = $1 AND status = 'draft' RETURNING voting_secs",
    )
    .bind(id)
    .bind(&now)
    .bind(snapshot_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = opened else {
        return Err(refusal(&mut tx, id, "only a draft can be opened").await);
    };
    let secs: i64 = row.try_get("voting_secs")?;
    let closes_at = daarion_store::parse_time(&now)
        .map(|t| daarion_store::format_time(t + chrono::Duration::seconds(secs)))
        .ok_or_else(|| corrupt("opened_at", &now))?;
    let mut p = proposal_in(&mut tx, id).await?;
    let delegations = delegations_in(&mut tx, &p.dao).await?;
    let electorate: Vec<Elector> = powers
        .iter()
        .map(|(principal, power)| Elector {
            principal: principal.clone(),
            power: *power,
            delegate: delegations.get(principal).cloned(),
        })
        .collect();
    p.closes_at = Some(closes_at.clone());
    let definition = definition(&p, &electorate);
    let genesis = chain::genesis(&definition);
    sql::query(
        "UPDATE dao_proposals SET closes_at = $2, definition = $3, genesis = $4, head = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(&closes_at)
    .bind(definition.to_string())
    .bind(&genesis)
    .execute(&mut *tx)
    .await?;
    let rows = serde_json::to_string(
        &electorate
            .iter()
            .map(|v| {
                serde_json::json!([
                    id,
                    v.principal,
                    i64::try_from(v.power).unwrap_or(i64::MAX),
                    v.delegate
                ])
            })
            .collect::<Vec<_>>(),
    )?;
    sql::query(sql::AssertSqlSafe(format!(
        "INSERT INTO dao_electorate (proposal, principal, power, delegate)
         SELECT c0, c1, CAST(c2 AS BIGINT), c3 FROM ({}) AS j",
        sql::json_rows(db.backend(), 1, 4)
    )))
    .bind(rows)
    .execute(&mut *tx)
    .await?;
    let staged = outbox
        .stage(&mut tx, vec![events::proposal("opened", &p, actor)])
        .await?;
    tx.commit().await?;
    Ok((p, staged))
}

/// Withdraws a draft, or an open proposal no one has voted on yet; only
/// its author may.
pub async fn cancel(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    author: &str,
) -> Result<(Proposal, Staged), DaoGovError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let changed = sql::query(
        "UPDATE dao_proposals SET status = 'cancelled', closed_at = $3, updated_at = $3
         WHERE id = $1 AND author = $2
           AND (status = 'draft' OR (status = 'active' AND votes = 0 AND closes_at > $3))",
    )
    .bind(id)
    .bind(author)
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let p = proposal_in(&mut tx, id).await?;
        return Err(if p.author != author {
            DaoGovError::Forbidden("only its author withdraws a proposal".into())
        } else if p.status == ProposalStatus::Active {
            DaoGovError::Conflict(
                "someone has voted: the proposal can no longer be withdrawn".into(),
            )
        } else {
            refusal(
                &mut tx,
                id,
                "only a draft or an open one without votes can be withdrawn",
            )
            .await
        });
    }
    let p = proposal_in(&mut tx, id).await?;
    let staged = outbox
        .stage(&mut tx, vec![events::proposal("cancelled", &p, author)])
        .await?;
    tx.commit().await?;
    Ok((p, staged))
}

/// What a voter keeps to find their vote in the record later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct VoteReceipt {
    pub proposal: String,
    pub seq: i64,
    pub voter: String,
    pub ballot: Ballot,
    pub cast_at: String,
    /// The hash before this vote in the chain.
    pub prev: String,
    /// This vote's hash: it is in the record as long as the record is
    /// intact.
    pub hash: String,
    /// The power the voter holds at the snapshot (their own; what others
    /// delegated is counted at the tally).
    pub power: u64,
}

/// Casts `voter`'s ballot (already checked against the method) as the
/// chain's next link.
pub async fn cast(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    voter: &str,
    ballot: &Ballot,
) -> Result<(VoteReceipt, Staged), DaoGovError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let row = sql::query(
        "UPDATE dao_proposals SET votes = votes + 1, updated_at = $2
         WHERE id = $1 AND status = 'active' AND closes_at > $2
         RETURNING votes, head, dao, vote_change, hidden",
    )
    .bind(id)
    .bind(&now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(refusal(&mut tx, id, "voting is not open").await);
    };
    let seq: i64 = row.try_get("votes")?;
    let prev: Option<String> = row.try_get("head")?;
    let prev = prev.ok_or_else(|| corrupt("head", ""))?;
    let dao: String = row.try_get("dao")?;
    let vote_change = row.try_get::<i64, _>("vote_change")? != 0;
    let hidden = row.try_get::<i64, _>("hidden")? != 0;
    let power =
        sql::query("SELECT power FROM dao_electorate WHERE proposal = $1 AND principal = $2")
            .bind(id)
            .bind(voter)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<i64, _>("power"))
            .transpose()?
            .ok_or_else(|| {
                DaoGovError::Forbidden(
                    "you were not among this proposal's voters when it opened".into(),
                )
            })?;
    // The voter's current ballot; where a vote may not change, a second
    // one finds the first in place.
    let on_conflict = if vote_change {
        "DO UPDATE SET ballot = $3, seq = $4"
    } else {
        "DO NOTHING"
    };
    let kept = sql::query(sql::AssertSqlSafe(format!(
        "INSERT INTO dao_ballots (proposal, voter, ballot, seq) VALUES ($1, $2, $3, $4)
         ON CONFLICT (proposal, voter) {on_conflict}"
    )))
    .bind(id)
    .bind(voter)
    .bind(to_json(ballot)?)
    .bind(seq)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if kept == 0 {
        return Err(DaoGovError::Conflict(
            "you have voted, and this proposal does not allow changing a vote".into(),
        ));
    }
    let hash = chain::link(&prev, &chain::entry(id, seq, voter, ballot, &now));
    sql::query(
        "INSERT INTO dao_votes (proposal, seq, voter, ballot, cast_at, prev, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(seq)
    .bind(voter)
    .bind(to_json(ballot)?)
    .bind(&now)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    sql::query("UPDATE dao_proposals SET head = $2 WHERE id = $1")
        .bind(id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::vote_cast((&dao, id, hidden), seq, voter, ballot)],
        )
        .await?;
    tx.commit().await?;
    Ok((
        VoteReceipt {
            proposal: id.to_owned(),
            seq,
            voter: voter.to_owned(),
            ballot: ballot.clone(),
            cast_at: now,
            prev,
            hash,
            power: u64::try_from(power).unwrap_or(0),
        },
        staged,
    ))
}

fn voter_from(row: &AnyRow) -> Result<Elector, DaoGovError> {
    Ok(Elector {
        principal: row.try_get("principal")?,
        power: u64::try_from(row.try_get::<i64, _>("power")?).unwrap_or(0),
        delegate: row.try_get("delegate")?,
    })
}

fn link_from(row: &AnyRow) -> Result<ChainLink, DaoGovError> {
    Ok(ChainLink {
        seq: row.try_get("seq")?,
        voter: row.try_get("voter")?,
        ballot: json(row, "ballot")?,
        cast_at: row.try_get("cast_at")?,
        prev: row.try_get("prev")?,
        hash: row.try_get("hash")?,
    })
}

const ELECTORATE: &str =
    "SELECT principal, power, delegate FROM dao_electorate WHERE proposal = $1 ORDER BY principal";
const LINKS: &str = "SELECT seq, voter, ballot, cast_at, prev, hash FROM dao_votes
    WHERE proposal = $1 AND seq > $2 ORDER BY seq LIMIT $3";

pub async fn electorate(db: &Db, id: &str) -> Result<Vec<Elector>, DaoGovError> {
    let rows = sql::query(ELECTORATE)
        .bind(id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(voter_from).collect()
}

/// The chain from after `after`, at most `limit` (plus one, to tell a
/// next page).
pub async fn links(
    db: &Db,
    id: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<ChainLink>, DaoGovError> {
    let rows = sql::query(LINKS)
        .bind(id)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(link_from).collect()
}

/// The proposal's definition as it opened, its genesis and head.
pub async fn record_head(
    db: &Db,
    id: &str,
) -> Result<Option<(serde_json::Value, String, String)>, DaoGovError> {
    let row = sql::query("SELECT definition, genesis, head FROM dao_proposals WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let definition: Option<String> = row.try_get("definition")?;
    let (Some(definition), Some(genesis), Some(head)) = (
        definition,
        row.try_get::<Option<String>, _>("genesis")?,
        row.try_get::<Option<String>, _>("head")?,
    ) else {
        return Ok(None);
    };
    let definition = serde_json::from_str(&definition).map_err(|_| corrupt("definition", ""))?;
    Ok(Some((definition, genesis, head)))
}

async fn all_links(db: &Db, id: &str) -> Result<Vec<ChainLink>, DaoGovError> {
    let rows = sql::query(LINKS)
        .bind(id)
        .bind(0i64)
        .bind(i64::MAX)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(link_from).collect()
}

/// Whether the stored chain still runs from the definition's genesis to
/// the recorded head.
pub async fn intact(
    db: &Db,
    id: &str,
    definition: &serde_json::Value,
    genesis: &str,
    head: &str,
) -> Result<bool, DaoGovError> {
    let links = all_links(db, id).await?;
    Ok(chain::genesis(definition) == genesis && chain::verify(id, genesis, &links, head).is_ok())
}

/// `voter`'s last vote on a proposal.
pub async fn last_vote(db: &Db, id: &str, voter: &str) -> Result<Option<ChainLink>, DaoGovError> {
    let row = sql::query(
        "SELECT seq, voter, ballot, cast_at, prev, hash FROM dao_votes
         WHERE proposal = $1 AND voter = $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(id)
    .bind(voter)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(link_from).transpose()
}

const BALLOTS: &str = "SELECT voter, ballot FROM dao_ballots WHERE proposal = $1";

fn ballot_from(row: &AnyRow) -> Result<(String, Ballot), DaoGovError> {
    Ok((row.try_get("voter")?, json(row, "ballot")?))
}

/// The count so far: the electorate and every voter's current ballot.
pub async fn count(db: &Db, p: &Proposal) -> Result<Tally, DaoGovError> {
    let electorate = electorate(db, &p.id).await?;
    let ballots = sql::query(BALLOTS)
        .bind(&p.id)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(ballot_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tally::count(&p.rules(), &electorate, &ballots))
}

/// Open proposals whose deadline has passed.
pub async fn due(db: &Db, limit: u32) -> Result<Vec<String>, DaoGovError> {
    ids_where(
        db,
        "status = 'active' AND closes_at <= $1 ORDER BY closes_at",
        limit,
    )
    .await
}

/// Ids of the proposals `filter` keeps, where `$1` is now, at most `limit`.
async fn ids_where(db: &Db, filter: &'static str, limit: u32) -> Result<Vec<String>, DaoGovError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT id FROM dao_proposals WHERE {filter} LIMIT $2"
    )))
    .bind(daarion_store::now())
    .bind(i64::from(limit))
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?)
}

/// Closes a proposal whose deadline has passed: counts it once, stores
/// the result beside the record's head. `None` when it was not due or
/// another replica closed it first.
pub async fn close(
    db: &Db,
    outbox: &Outbox,
    id: &str,
) -> Result<Option<(Proposal, Staged)>, DaoGovError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let claimed = sql::query(
        "UPDATE dao_proposals SET updated_at = $2
         WHERE id = $1 AND status = 'active' AND closes_at <= $2 RETURNING id",
    )
    .bind(id)
    .bind(&now)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        return Ok(None);
    }
    let mut p = proposal_in(&mut tx, id).await?;
    let electorate = sql::query(ELECTORATE)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(voter_from)
        .collect::<Result<Vec<_>, _>>()?;
    let ballots = sql::query(BALLOTS)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(ballot_from)
        .collect::<Result<Vec<_>, _>>()?;
    let result = tally::count(&p.rules(), &electorate, &ballots);
    let status = match result.outcome {
        crate::domain::VoteOutcome::Passed => ProposalStatus::Passed,
        crate::domain::VoteOutcome::Rejected => ProposalStatus::Rejected,
        crate::domain::VoteOutcome::Expired => ProposalStatus::Expired,
    };
    let execution = (status == ProposalStatus::Passed && p.kind == ProposalKind::Action)
        .then_some(ExecutionState::Pending);
    sql::query(
        "UPDATE dao_proposals SET status = $2, result = $3, execution = $4, closed_at = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(to_json(&result)?)
    .bind(execution.map(ExecutionState::as_str))
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    p.status = status;
    p.result = Some(result);
    p.execution = execution;
    p.closed_at = Some(now);
    let staged = outbox
        .stage(&mut tx, vec![events::proposal("closed", &p, "service:dao")])
        .await?;
    tx.commit().await?;
    Ok(Some((p, staged)))
}

/// Passed actions waiting to be carried out whose hold (if any) has lapsed.
pub async fn executable(db: &Db, limit: u32) -> Result<Vec<String>, DaoGovError> {
    ids_where(
        db,
        "execution = 'pending' AND (execution_lease IS NULL OR execution_lease < $1)
         ORDER BY closed_at",
        limit,
    )
    .await
}

/// Takes a pending execution until `until`, counting the try; `None` when
/// another executor holds it or it is no longer pending. An executor that
/// crashes leaves its hold to lapse, and the next try finds whatever the
/// owning service already did (the calls are idempotent).
pub async fn claim_execution(
    db: &Db,
    id: &str,
    until: &str,
) -> Result<Option<Proposal>, DaoGovError> {
    let mut tx = db.begin().await?;
    let claimed = sql::query(
        "UPDATE dao_proposals SET execution_lease = $2, execution_attempts = execution_attempts + 1
         WHERE id = $1 AND execution = 'pending'
           AND (execution_lease IS NULL OR execution_lease < $3) RETURNING id",
    )
    .bind(id)
    .bind(until)
    .bind(daarion_store::now())
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        return Ok(None);
    }
    let p = proposal_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Some(p))
}

/// How a try of an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tried {
    /// Carried out (or found done).
    Done,
    /// Refused by the owning service: recorded; a retry may be asked for.
    Failed(String),
    /// Not reached, or it answered 5xx: tried again once the hold lapses,
    /// up to the attempts allowed.
    Later(String),
}

/// Records a try; the proposal and its event when the execution ended
/// (done or failed).
pub async fn finish_execution(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    tried: Tried,
    max_attempts: i64,
) -> Result<Option<(Proposal, Staged)>, DaoGovError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let (status, execution, error, what) = match tried {
        Tried::Done => (
            ProposalStatus::Executed,
            ExecutionState::Done,
            None,
            "executed",
        ),
        Tried::Failed(error) => (
            ProposalStatus::Passed,
            ExecutionState::Failed,
            Some(error),
            "execution_failed",
        ),
        Tried::Later(error) => {
            let row = sql::query(
                "UPDATE dao_proposals SET execution_error = $2,
                    execution = CASE WHEN execution_attempts >= $3 THEN 'failed' ELSE execution END,
                    execution_lease = CASE WHEN execution_attempts >= $3 THEN NULL ELSE execution_lease END
                 WHERE id = $1 AND execution = 'pending' RETURNING execution",
            )
            .bind(id)
            .bind(&error)
            .bind(max_attempts)
            .fetch_optional(&mut *tx)
            .await?;
            let gave_up = row
                .map(|r| r.try_get::<String, _>("execution"))
                .transpose()?
                .is_some_and(|e| e == ExecutionState::Failed.as_str());
            if !gave_up {
                tx.commit().await?;
                return Ok(None);
            }
            let p = proposal_in(&mut tx, id).await?;
            let staged = outbox
                .stage(
                    &mut tx,
                    vec![events::proposal("execution_failed", &p, "service:dao")],
                )
                .await?;
            tx.commit().await?;
            return Ok(Some((p, staged)));
        }
    };
    let changed = sql::query(
        "UPDATE dao_proposals SET status = $2, execution = $3, execution_error = $4,
            execution_lease = NULL, executed_at = $5, updated_at = $6
         WHERE id = $1 AND execution = 'pending'",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(execution.as_str())
    .bind(error)
    .bind((execution == ExecutionState::Done).then_some(now.as_str()))
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(None);
    }
    let p = proposal_in(&mut tx, id).await?;
    let staged = outbox
        .stage(&mut tx, vec![events::proposal(what, &p, "service:dao")])
        .await?;
    tx.commit().await?;
    Ok(Some((p, staged)))
}

/// Sets a failed execution going again (its tries counted from zero).
pub async fn retry_execution(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    actor: &str,
) -> Result<(Proposal, Staged), DaoGovError> {
    let mut tx = db.begin().await?;
    let changed = sql::query(
        "UPDATE dao_proposals SET execution = 'pending', execution_attempts = 0,
            execution_lease = NULL, updated_at = $2
         WHERE id = $1 AND execution = 'failed'",
    )
    .bind(id)
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let p = proposal_in(&mut tx, id).await?;
        return Err(DaoGovError::Conflict(format!(
            "only a failed execution is retried; this one is {}",
            p.execution.map_or("none", ExecutionState::as_str)
        )));
    }
    let p = proposal_in(&mut tx, id).await?;
    let staged = outbox
        .stage(
            &mut tx,
            vec![events::proposal("execution_retried", &p, actor)],
        )
        .await?;
    tx.commit().await?;
    Ok((p, staged))
}
