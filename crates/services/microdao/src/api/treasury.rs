//! The treasury: balances, movements, minting and transfers.

use axum::{
    extract::{Path, State},
    response::Response,
};
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Actor, slug_of};
use crate::{
    DaoState,
    treasury::{self, Movement},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceView {
    /// `dao:<slug>` (the microDAO's own), `user:<id>` or `agent:<id>`.
    pub account: String,
    pub handle: Option<String>,
    pub balance: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TreasuryView {
    pub dao: String,
    /// The time the balances are at (RFC 3339 UTC).
    pub at: String,
    /// Points minted so far.
    pub supply: i64,
    pub accounts: Vec<BalanceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovementView {
    pub id: String,
    pub dao: String,
    /// `mint` or `transfer`.
    pub kind: String,
    /// The account debited (`issued:<slug>` for a mint).
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub memo: String,
    pub actor: String,
    pub created_at: String,
}

impl From<Movement> for MovementView {
    fn from(m: Movement) -> Self {
        Self {
            id: m.id,
            dao: m.dao,
            kind: m.kind,
            from: m.from,
            to: m.to,
            amount: m.amount,
            memo: m.memo,
            actor: m.actor,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TreasuryParams {
    /// Balances as they stood at this time (RFC 3339); default: now.
    pub at: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AccountParam {
    /// Only movements in or out of this account.
    pub account: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintPoints {
    /// `dao:<slug>` or a member (`user:<id>`, `agent:<id>`).
    pub to: String,
    /// 1 to 10^12 points.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount: i64,
    #[serde(default)]
    pub memo: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferPoints {
    /// The account debited: the caller's own (default) or `dao:<slug>`
    /// (its owners and admins).
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    /// 1 to 10^12 points.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount: i64,
    #[serde(default)]
    pub memo: Option<String>,
}

/// Balances of every account, now or at a past time, and the supply.
#[utoipa::path(get, path = "/daos/{dao}/treasury", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), TreasuryParams),
    responses((status = 200, body = TreasuryView), (status = 403), (status = 404), (status = 422)))]
pub(super) async fn treasury(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(params): Query<TreasuryParams>,
) -> Result<Json<TreasuryView>, ApiError> {
    let slug = slug_of(&slug)?;
    let at = match params.at.as_deref() {
        None => daarion_store::now(),
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| daarion_store::format_time(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                ApiError::validation("at is an RFC 3339 time like 2026-12-01T00:00:00Z")
            })?,
    };
    let (accounts, supply) = treasury::balances(&state.db, &slug, Some(&at)).await?;
    Ok(Json(TreasuryView {
        dao: slug,
        at,
        supply,
        accounts: accounts
            .into_iter()
            .map(|b| BalanceView {
                account: b.account,
                handle: b.handle,
                balance: b.balance,
            })
            .collect(),
    }))
}

/// Movements, newest first.
#[utoipa::path(get, path = "/daos/{dao}/treasury/movements", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams, AccountParam),
    responses((status = 200, body = Page<MovementView>), (status = 400), (status = 403), (status = 404), (status = 422)))]
pub(super) async fn treasury_movements(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
    Query(params): Query<AccountParam>,
) -> Result<Json<Page<MovementView>>, ApiError> {
    let limit = page.limit()?;
    let rows = treasury::movements(
        &state.db,
        &slug_of(&slug)?,
        params.account.as_deref(),
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |m| m.id.clone());
    Ok(Json(page.map(MovementView::from)))
}

impl DaoState {
    async fn moved(
        &self,
        (movement, fresh, staged): (Movement, bool, daarion_bus::Staged),
    ) -> Response {
        self.outbox.relay(staged).await;
        created(fresh, MovementView::from(movement))
    }
}

/// Mints points into the microDAO's account or a member's (its owners).
/// Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/treasury/mint", tag = "microdao", request_body = MintPoints,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, body = MovementView),
        (status = 200, description = "Replay of an earlier request with the same key", body = MovementView),
        (status = 403), (status = 404),
        (status = 409, description = "Archived, or the key was used with another request"),
        (status = 422, description = "Invalid amount or memo, or not a member")))]
pub(super) async fn mint(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<MintPoints>,
) -> Result<Response, ApiError> {
    let slug = slug_of(&slug)?;
    let order = treasury::mint_order(
        &slug,
        input.to,
        treasury::amount(input.amount)?,
        treasury::memo(input.memo.as_deref())?,
    );
    let done = treasury::execute(
        &state.db,
        &state.outbox,
        &slug,
        &order,
        &Actor::of(&principal),
        key.as_deref(),
    )
    .await?;
    Ok(state.moved(done).await)
}

/// Moves points from the caller's account (or, for owners and admins, the
/// microDAO's) to another member or the microDAO. Send `Idempotency-Key` to
/// make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/treasury/transfers", tag = "microdao", request_body = TransferPoints,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, body = MovementView),
        (status = 200, description = "Replay of an earlier request with the same key", body = MovementView),
        (status = 403, description = "Not yours to move"), (status = 404),
        (status = 409, description = "Not enough points, archived, or the key was used with another request"),
        (status = 422, description = "Invalid amount or memo, or not a member")))]
pub(super) async fn transfer(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<TransferPoints>,
) -> Result<Response, ApiError> {
    let slug = slug_of(&slug)?;
    let order = treasury::Order {
        kind: treasury::Kind::Transfer,
        from: input.from.unwrap_or_else(|| principal.name()),
        to: input.to,
        amount: treasury::amount(input.amount)?,
        memo: treasury::memo(input.memo.as_deref())?,
    };
    let done = treasury::execute(
        &state.db,
        &state.outbox,
        &slug,
        &order,
        &Actor::of(&principal),
        key.as_deref(),
    )
    .await?;
    Ok(state.moved(done).await)
}
