//! The treasury: an off-chain, double-entry ledger of a microDAO's points.
//! Every movement is two entries that sum to zero (minting debits the
//! microDAO's issuance account, `issued:<slug>`, the only one that goes
//! below zero); balances are kept per account and never go negative (one
//! conditional update per debit, so concurrent transfers from one balance
//! cannot overdraw it); entries are never changed, so a balance at any past
//! time is the sum of the entries up to it.

use daarion_access::vocab::roles::{DaoPermission, DaoRole};
use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row},
};

use crate::{
    domain::{DaoError, Standing},
    store::{self, Actor},
};

/// The most points one movement may carry.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
pub const MAX_MEMO_CHARS: usize = 280;

/// The microDAO's own account.
pub fn dao_account(slug: &str) -> String {
    format!("dao:{slug}")
}

fn issuance_account(slug: &str) -> String {
    format!("issued:{slug}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mint,
    Transfer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mint => "mint",
            Kind::Transfer => "transfer",
        }
    }
}

/// A movement to make, checked.
#[derive(Debug, Clone)]
pub struct Order {
    pub kind: Kind,
    /// For a transfer: the account debited.
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub memo: String,
}

pub fn amount(raw: i64) -> Result<i64, DaoError> {
    if (1..=MAX_AMOUNT).contains(&raw) {
        Ok(raw)
    } else {
        Err(DaoError::Invalid(format!(
            "amount must be a whole number of points between 1 and {MAX_AMOUNT}"
        )))
    }
}

pub fn memo(raw: Option<&str>) -> Result<String, DaoError> {
    let text = raw.unwrap_or("").trim();
    if text.chars().count() > MAX_MEMO_CHARS || text.chars().any(char::is_control) {
        return Err(DaoError::Invalid(format!(
            "memo must be at most {MAX_MEMO_CHARS} printable characters"
        )));
    }
    Ok(text.to_owned())
}

/// One movement, as its two entries tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub id: String,
    pub dao: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub memo: String,
    pub actor: String,
    pub created_at: String,
}

/// An account and its balance.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub account: String,
    /// The member's handle (the slug for the microDAO's own account).
    pub handle: Option<String>,
    pub balance: i64,
}

/// Makes one movement in the microDAO's ledger: a transfer only by who may
/// debit its source (`may_debit`; minting is the policies' to allow), between
/// the microDAO's own account and its members', never more than the source
/// holds. An `Idempotency-Key` makes a retry return the first movement.
pub async fn execute(
    db: &Db,
    outbox: &Outbox,
    slug: &str,
    order: &Order,
    actor: &Actor,
    idempotency_key: Option<&str>,
) -> Result<(Movement, bool, Staged), DaoError> {
    if order.from == order.to {
        return Err(DaoError::Invalid("from and to are the same account".into()));
    }
    let mut tx = db.begin().await?;
    let scope = format!("microdao.treasury:{}", actor.name);
    if let Some(key) = idempotency_key {
        let hash = idempotency::fingerprint(&[
            slug,
            order.kind.as_str(),
            &order.from,
            &order.to,
            &order.amount.to_string(),
            &order.memo,
        ]);
        if let Claim::Replay(id) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            let movement = movement_in(&mut tx, &id).await?;
            return Ok((movement, false, Staged::none()));
        }
    }
    store::lock(&mut tx, slug).await?;
    let standing = store::standing_in(&mut tx, slug, &actor.name).await?;
    if order.kind == Kind::Transfer && !may_debit(slug, &order.from, actor, standing.as_ref()) {
        return Err(DaoError::Forbidden(format!(
            "you may not move points out of {}",
            order.from
        )));
    }
    for account in [&order.from, &order.to] {
        if *account != dao_account(slug)
            && *account != issuance_account(slug)
            && !store::is_member(&mut tx, slug, account).await?
        {
            return Err(DaoError::Invalid(format!(
                "{account} is not a member of this microDAO"
            )));
        }
    }
    let now = daarion_store::now();
    let id = format!("mv_{}", uuid::Uuid::now_v7().simple());
    let debited = if order.from == issuance_account(slug) {
        add(&mut tx, slug, &order.from, -order.amount, &now).await?
    } else {
        sql::query(
            "UPDATE microdao_balances SET balance = balance - $3, updated_at = $4
             WHERE dao = $1 AND account = $2 AND balance >= $3 RETURNING balance",
        )
        .bind(slug)
        .bind(order.from.as_str())
        .bind(order.amount)
        .bind(now.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            DaoError::Conflict(format!(
                "not enough points: the account holds fewer than {}",
                order.amount
            ))
        })?
        .try_get::<i64, _>("balance")?
    };
    let credited = add(&mut tx, slug, &order.to, order.amount, &now).await?;
    for (account, amount, after) in [
        (&order.from, -order.amount, debited),
        (&order.to, order.amount, credited),
    ] {
        sql::query(
            "INSERT INTO microdao_entries (id, dao, movement, account, amount, balance_after, kind, memo, actor, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(format!("en_{}", uuid::Uuid::now_v7().simple()))
        .bind(slug)
        .bind(id.as_str())
        .bind(account.as_str())
        .bind(amount)
        .bind(after)
        .bind(order.kind.as_str())
        .bind(order.memo.as_str())
        .bind(actor.name.as_str())
        .bind(now.as_str())
        .execute(&mut *tx)
        .await?;
    }
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &id).await?;
    }
    let movement = movement_in(&mut tx, &id).await?;
    let staged = outbox
        .stage(&mut tx, vec![crate::events::moved(&movement)])
        .await?;
    tx.commit().await?;
    Ok((movement, true, staged))
}

/// Adds `amount` (any sign) to an account's balance, opening it if new;
/// the balance after.
async fn add(
    tx: &mut sql::Transaction<'static, sql::Any>,
    slug: &str,
    account: &str,
    amount: i64,
    now: &str,
) -> Result<i64, DaoError> {
    let row = sql::query(
        "INSERT INTO microdao_balances (dao, account, balance, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dao, account) DO UPDATE
         SET balance = microdao_balances.balance + excluded.balance, updated_at = excluded.updated_at
         RETURNING balance",
    )
    .bind(slug)
    .bind(account)
    .bind(amount)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("balance")?)
}

const ENTRY_COLUMNS: &str =
    "SELECT movement, dao, account, amount, kind, memo, actor, created_at FROM microdao_entries";

/// Folds entries (two per movement, in any order) into movements.
fn movements_from(rows: &[AnyRow]) -> Result<Vec<Movement>, DaoError> {
    let mut out: Vec<Movement> = Vec::new();
    for row in rows {
        let id: String = row.try_get("movement")?;
        let account: String = row.try_get("account")?;
        let amount: i64 = row.try_get("amount")?;
        let index = match out.iter().position(|m| m.id == id) {
            Some(index) => index,
            None => {
                out.push(Movement {
                    id,
                    dao: row.try_get("dao")?,
                    kind: row.try_get("kind")?,
                    from: String::new(),
                    to: String::new(),
                    amount: amount.abs(),
                    memo: row.try_get("memo")?,
                    actor: row.try_get("actor")?,
                    created_at: row.try_get("created_at")?,
                });
                out.len() - 1
            }
        };
        if amount < 0 {
            out[index].from = account;
        } else {
            out[index].to = account;
        }
    }
    Ok(out)
}

async fn movement_in(
    tx: &mut sql::Transaction<'static, sql::Any>,
    id: &str,
) -> Result<Movement, DaoError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{ENTRY_COLUMNS} WHERE movement = $1"
    )))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    movements_from(&rows)?
        .pop()
        .ok_or_else(|| DaoError::NotFound(format!("no movement {id}")))
}

/// Movements, newest first, before the movement `before`; with `account`,
/// only those touching it.
pub async fn movements(
    db: &Db,
    slug: &str,
    account: Option<&str>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Movement>, DaoError> {
    let ids = sql::query(
        "SELECT DISTINCT movement FROM microdao_entries
         WHERE dao = $1 AND movement < $2 AND ($3 = '' OR account = $3)
         ORDER BY movement DESC LIMIT $4",
    )
    .bind(slug)
    .bind(before.unwrap_or("~"))
    .bind(account.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    let ids: Vec<String> = ids
        .iter()
        .map(|row| row.try_get("movement"))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let mut query = sql::query(sql::AssertSqlSafe(format!(
        "{ENTRY_COLUMNS} WHERE movement IN ({}) ORDER BY movement DESC",
        placeholders.join(", ")
    )));
    for id in &ids {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(db.pool()).await?;
    movements_from(&rows)
}

/// Every account's balance now, or at `at` (RFC 3339 UTC, as stored): the
/// sum of its entries up to then. The issuance account is left out; the
/// supply is returned beside.
pub async fn balances(
    db: &Db,
    slug: &str,
    at: Option<&str>,
) -> Result<(Vec<Balance>, i64), DaoError> {
    let rows = sql::query(
        "SELECT e.account, CAST(SUM(e.amount) AS BIGINT) AS balance, MAX(m.handle) AS handle
         FROM microdao_entries e
         LEFT JOIN microdao_members m ON m.dao = e.dao AND m.principal = e.account
         WHERE e.dao = $1 AND e.created_at <= $2
         GROUP BY e.account ORDER BY e.account",
    )
    .bind(slug)
    .bind(at.unwrap_or("9999"))
    .fetch_all(db.pool())
    .await?;
    let mut supply = 0;
    let mut out = Vec::new();
    for row in &rows {
        let account: String = row.try_get("account")?;
        let balance: i64 = row.try_get("balance")?;
        if account == issuance_account(slug) {
            supply = -balance;
            continue;
        }
        let handle: Option<String> = row.try_get("handle")?;
        out.push(Balance {
            handle: handle.or_else(|| (account == dao_account(slug)).then(|| slug.to_owned())),
            account,
            balance,
        });
    }
    Ok((out, supply))
}

/// Who may move points out of `from`: its holder, and for the microDAO's
/// own account its owners and admins, those whose custom role grants
/// `treasury` (and city admins).
pub fn may_debit(slug: &str, from: &str, actor: &Actor, standing: Option<&Standing>) -> bool {
    if from == dao_account(slug) {
        actor.city_admin
            || standing.is_some_and(|s| {
                matches!(s.role, DaoRole::Owner | DaoRole::Admin) || s.can(DaoPermission::Treasury)
            })
    } else {
        from == actor.name && standing.is_some()
    }
}

pub fn mint_order(slug: &str, to: String, amount: i64, memo: String) -> Order {
    Order {
        kind: Kind::Mint,
        from: issuance_account(slug),
        to,
        amount,
        memo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(name: &str, city_admin: bool) -> Actor {
        Actor {
            name: name.into(),
            handle: name.into(),
            city_admin,
        }
    }

    #[test]
    fn holders_spend_their_own_points_and_admins_the_treasury() {
        let alice = actor("user:a", false);
        let as_ = |role, permissions: &[DaoPermission]| Standing::of(role, permissions);
        let member = as_(DaoRole::Member, &[]);
        assert!(may_debit("d", "user:a", &alice, Some(&member)));
        assert!(!may_debit(
            "d",
            "user:b",
            &alice,
            Some(&as_(DaoRole::Owner, &[]))
        ));
        assert!(!may_debit("d", "user:a", &alice, None));
        assert!(may_debit(
            "d",
            "dao:d",
            &alice,
            Some(&as_(DaoRole::Admin, &[]))
        ));
        assert!(!may_debit("d", "dao:d", &alice, Some(&member)));
        let treasurer = as_(DaoRole::Member, &[DaoPermission::Treasury]);
        assert!(may_debit("d", "dao:d", &alice, Some(&treasurer)));
        assert!(may_debit("d", "dao:d", &actor("user:root", true), None));
    }

    #[test]
    fn amounts_and_memos_are_bounded() {
        assert!(amount(0).is_err());
        assert!(amount(-5).is_err());
        assert!(amount(MAX_AMOUNT + 1).is_err());
        assert_eq!(amount(10).unwrap(), 10);
        assert!(memo(Some(&"m".repeat(281))).is_err());
        assert_eq!(memo(None).unwrap(), "");
    }
}
