//! Messaging queries. Every change to a room's messages takes the room's
//! next sequence number with one conditional update of the room's row,
//! which also serialises writers per room on PostgreSQL (as SQLite does
//! for all writes), so sequence numbers have no gaps and no repeats.
//! Events are staged in the same transaction (the outbox).

use daarion_access::vocab::roles::DaoRole;
use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row, Transaction},
};

use crate::domain::{MessagingError, Room, RoomKind, RoomSettings};

mod messages;
mod posts;
mod reads;
mod search;

pub use messages::*;
pub use posts::*;
pub use reads::*;
pub use search::*;

pub(crate) type Tx = Transaction<'static, sql::Any>;

macro_rules! room_fields {
    () => {
        "id, kind, dao, slug, title, description, audience, posters, agents_allowed, \
         responder, slow_mode_secs, last_seq, created_by, created_at, archived_at"
    };
}

/// A room's columns, for `RETURNING`.
const ROOM_FIELDS: &str = room_fields!();
const ROOM_COLUMNS: &str = concat!("SELECT ", room_fields!(), " FROM messaging_rooms");

fn dao_role(raw: Option<String>) -> Option<DaoRole> {
    raw.as_deref().and_then(DaoRole::parse)
}

fn room_from(row: &AnyRow) -> Result<Room, MessagingError> {
    let kind: String = row.try_get("kind")?;
    Ok(Room {
        id: row.try_get("id")?,
        kind: RoomKind::parse(&kind)
            .ok_or_else(|| MessagingError::Invalid(format!("stored room kind {kind:?}")))?,
        dao: row.try_get("dao")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        audience: dao_role(row.try_get("audience")?),
        posters: dao_role(row.try_get("posters")?),
        agents_allowed: row.try_get::<i64, _>("agents_allowed")? != 0,
        responder: row.try_get("responder")?,
        slow_mode_secs: u32::try_from(row.try_get::<i64, _>("slow_mode_secs")?).unwrap_or(0),
        last_seq: row.try_get("last_seq")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        archived_at: row.try_get("archived_at")?,
    })
}

fn not_found() -> MessagingError {
    MessagingError::NotFound("no such room".into())
}

/// A room to create.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub kind: RoomKind,
    /// Unique natural name (`public:<slug>`, `dao:<dao>:<slug>`,
    /// `direct:<a>|<b>`); groups have none.
    pub key: Option<String>,
    pub dao: Option<String>,
    pub slug: Option<String>,
    pub title: String,
    pub description: String,
    pub audience: Option<DaoRole>,
    pub posters: Option<DaoRole>,
    pub agents_allowed: bool,
    pub slow_mode_secs: u32,
    /// Conversations: who is in (principal name, manages the group).
    pub participants: Vec<(String, bool)>,
}

impl NewRoom {
    fn fingerprint(&self) -> String {
        let people: Vec<&str> = self.participants.iter().map(|(p, _)| p.as_str()).collect();
        idempotency::fingerprint(&[
            self.kind.as_str(),
            self.key.as_deref().unwrap_or(""),
            &self.title,
            &self.description,
            &people.join(","),
        ])
    }
}

/// What a create did: made the room, or found it (a replayed
/// `Idempotency-Key`, or the direct conversation that already exists).
pub struct Created {
    pub room: Room,
    pub fresh: bool,
    pub staged: Staged,
}

pub async fn create_room(
    db: &Db,
    outbox: &Outbox,
    new: &NewRoom,
    by: &str,
    idempotency_key: Option<&str>,
    events: impl FnOnce(&Room) -> Vec<Envelope>,
) -> Result<Created, MessagingError> {
    let mut tx = db.begin().await?;
    let scope = format!("messaging.rooms:{by}");
    if let Some(key) = idempotency_key
        && let Claim::Replay(id) =
            idempotency::claim(&mut tx, &scope, key, &new.fingerprint()).await?
    {
        let room = room_in(&mut tx, &id).await?;
        return Ok(Created {
            room,
            fresh: false,
            staged: Staged::none(),
        });
    }
    let room = Room {
        id: format!("rm_{}", uuid::Uuid::now_v7().simple()),
        kind: new.kind,
        dao: new.dao.clone(),
        slug: new.slug.clone(),
        title: new.title.clone(),
        description: new.description.clone(),
        audience: new.audience,
        posters: new.posters,
        agents_allowed: new.agents_allowed,
        responder: None,
        slow_mode_secs: new.slow_mode_secs,
        last_seq: 0,
        created_by: by.to_owned(),
        created_at: daarion_store::now(),
        archived_at: None,
    };
    let inserted = sql::query(
        "INSERT INTO messaging_rooms (id, kind, room_key, dao, slug, title, description, audience,
             posters, agents_allowed, slow_mode_secs, last_seq, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13)
         ON CONFLICT (room_key) DO NOTHING",
    )
    .bind(room.id.as_str())
    .bind(room.kind.as_str())
    .bind(new.key.as_deref())
    .bind(room.dao.as_deref())
    .bind(room.slug.as_deref())
    .bind(room.title.as_str())
    .bind(room.description.as_str())
    .bind(room.audience.map(DaoRole::as_str))
    .bind(room.posters.map(DaoRole::as_str))
    .bind(i64::from(room.agents_allowed))
    .bind(i64::from(room.slow_mode_secs))
    .bind(room.created_by.as_str())
    .bind(room.created_at.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        let key = new.key.as_deref().unwrap_or_default();
        let existing = sql::query(sql::AssertSqlSafe(format!(
            "{ROOM_COLUMNS} WHERE room_key = $1"
        )))
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        if new.kind != RoomKind::Direct {
            return Err(MessagingError::Conflict(format!(
                "a room named {:?} already exists",
                new.slug.as_deref().unwrap_or(key)
            )));
        }
        // Starting a direct conversation that exists opens it.
        let room = room_from(&existing)?;
        if let Some(key) = idempotency_key {
            idempotency::complete(&mut tx, &scope, key, &room.id).await?;
        }
        tx.commit().await?;
        return Ok(Created {
            room,
            fresh: false,
            staged: Staged::none(),
        });
    }
    for (principal, owner) in &new.participants {
        add_participant_in(&mut tx, &room.id, principal, *owner).await?;
    }
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &room.id).await?;
    }
    let staged = outbox.stage(&mut tx, events(&room)).await?;
    tx.commit().await?;
    Ok(Created {
        room,
        fresh: true,
        staged,
    })
}

pub(crate) async fn room_in(tx: &mut Tx, id: &str) -> Result<Room, MessagingError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{ROOM_COLUMNS} WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(not_found)?;
    room_from(&row)
}

pub async fn room(db: &Db, id: &str) -> Result<Option<Room>, MessagingError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{ROOM_COLUMNS} WHERE id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(room_from).transpose()
}

/// A room by its natural name (`public:<slug>`, `dao:<dao>:<slug>`).
pub async fn by_key(db: &Db, key: &str) -> Result<Option<Room>, MessagingError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{ROOM_COLUMNS} WHERE room_key = $1"
    )))
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(room_from).transpose()
}

/// What a reader may see of the rooms: public rooms, conversations they
/// are in, and the rooms of their microDAOs whose audience their role
/// reaches. Returns a SQL condition over `messaging_rooms` (aliased `r`)
/// and its bound values, numbered from `$first`.
pub struct Readable {
    pub condition: String,
    pub binds: Vec<String>,
}

impl Readable {
    pub fn of(principal: &str, daos: &[(String, DaoRole)], first: usize) -> Self {
        let mut binds = vec![principal.to_owned()];
        let mut parts = vec![
            "r.kind = 'public'".to_owned(),
            format!(
                "r.id IN (SELECT room_id FROM messaging_participants WHERE principal = ${first})"
            ),
        ];
        for (dao, role) in daos {
            binds.push(dao.clone());
            let n = first + binds.len() - 1;
            let reached: Vec<String> = crate::domain::bounds_reached(*role)
                .map(|r| format!("'{}'", r.as_str()))
                .collect();
            parts.push(format!(
                "(r.kind = 'dao' AND r.dao = ${n} AND (r.audience IS NULL OR r.audience IN ({})))",
                reached.join(", ")
            ));
        }
        Self {
            condition: format!("({})", parts.join(" OR ")),
            binds,
        }
    }
}

/// Rooms the reader may see, by id, `limit + 1` at most, after `after`;
/// only one kind when `kind` says so, only one microDAO's when `dao` does.
pub async fn rooms(
    db: &Db,
    readable: &Readable,
    filter: (Option<RoomKind>, Option<&str>),
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Room>, MessagingError> {
    let n = readable.binds.len();
    let text = format!(
        "{ROOM_COLUMNS} r WHERE {} AND r.id > ${} AND (${} = '' OR r.kind = ${}) \
         AND (${} = '' OR r.dao = ${}) AND r.archived_at IS NULL ORDER BY r.id LIMIT ${}",
        readable.condition,
        n + 1,
        n + 2,
        n + 2,
        n + 3,
        n + 3,
        n + 4
    );
    let mut query = sql::query(sql::AssertSqlSafe(text));
    for bind in &readable.binds {
        query = query.bind(bind.as_str());
    }
    let rows = query
        .bind(after.unwrap_or(""))
        .bind(filter.0.map(RoomKind::as_str).unwrap_or(""))
        .bind(filter.1.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(room_from).collect()
}

/// Changes a room's settings.
pub async fn update_room(
    db: &Db,
    id: &str,
    settings: &RoomSettings,
) -> Result<Room, MessagingError> {
    let mut tx = db.begin().await?;
    let mut room = room_in(&mut tx, id).await?;
    if room.archived_at.is_some() {
        return Err(MessagingError::Conflict("the room is archived".into()));
    }
    if let Some(title) = &settings.title {
        room.title = title.clone();
    }
    if let Some(description) = &settings.description {
        room.description = description.clone();
    }
    if let Some(audience) = settings.audience {
        room.audience = audience;
    }
    if let Some(posters) = settings.posters {
        room.posters = posters;
    }
    if let Some(agents) = settings.agents_allowed {
        room.agents_allowed = agents;
    }
    if let Some(responder) = &settings.responder {
        room.responder = responder.clone();
    }
    if let Some(secs) = settings.slow_mode_secs {
        room.slow_mode_secs = secs;
    }
    sql::query(
        "UPDATE messaging_rooms SET title = $2, description = $3, audience = $4, posters = $5,
             agents_allowed = $6, slow_mode_secs = $7, responder = $8 WHERE id = $1",
    )
    .bind(id)
    .bind(room.title.as_str())
    .bind(room.description.as_str())
    .bind(room.audience.map(DaoRole::as_str))
    .bind(room.posters.map(DaoRole::as_str))
    .bind(i64::from(room.agents_allowed))
    .bind(i64::from(room.slow_mode_secs))
    .bind(room.responder.as_deref())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(room)
}

/// Archives a room: it stays readable, nobody posts any more.
pub async fn archive_room(db: &Db, id: &str) -> Result<(), MessagingError> {
    sql::query("UPDATE messaging_rooms SET archived_at = $2 WHERE id = $1 AND archived_at IS NULL")
        .bind(id)
        .bind(daarion_store::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A conversation's participants: (principal name, manages it), by name.
pub async fn participants(db: &Db, room: &str) -> Result<Vec<(String, bool)>, MessagingError> {
    let rows = sql::query(
        "SELECT principal, owner FROM messaging_participants WHERE room_id = $1 ORDER BY principal",
    )
    .bind(room)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("principal")?,
                row.try_get::<i64, _>("owner")? != 0,
            ))
        })
        .collect()
}

/// The participants of several conversations at once: (room, principal).
pub async fn participants_of(
    db: &Db,
    rooms: &[String],
) -> Result<Vec<(String, String)>, MessagingError> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=rooms.len()).map(|i| format!("${i}")).collect();
    let text = format!(
        "SELECT room_id, principal FROM messaging_participants WHERE room_id IN ({}) ORDER BY principal",
        marks.join(", ")
    );
    let mut query = sql::query(sql::AssertSqlSafe(text));
    for room in rooms {
        query = query.bind(room.as_str());
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("room_id")?, row.try_get("principal")?)))
        .collect()
}

async fn add_participant_in(
    tx: &mut Tx,
    room: &str,
    principal: &str,
    owner: bool,
) -> Result<bool, MessagingError> {
    let n = sql::query(
        "INSERT INTO messaging_participants (room_id, principal, owner, joined_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (room_id, principal) DO NOTHING",
    )
    .bind(room)
    .bind(principal)
    .bind(i64::from(owner))
    .bind(daarion_store::now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Adds someone to a group, at most `max` in all.
pub async fn add_participant(
    db: &Db,
    room: &str,
    principal: &str,
    max: usize,
) -> Result<(), MessagingError> {
    let mut tx = db.begin().await?;
    let current = room_in(&mut tx, room).await?;
    if current.kind != RoomKind::Group {
        return Err(MessagingError::Conflict(
            "only group conversations take new participants".into(),
        ));
    }
    touch(&mut tx, room).await?;
    let count: i64 =
        sql::query("SELECT COUNT(*) AS n FROM messaging_participants WHERE room_id = $1")
            .bind(room)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= max {
        return Err(MessagingError::Conflict(format!(
            "a group holds at most {max} participants"
        )));
    }
    if !add_participant_in(&mut tx, room, principal, false).await? {
        return Err(MessagingError::Conflict("already a participant".into()));
    }
    tx.commit().await?;
    Ok(())
}

/// Takes someone out of a group (or they leave it).
pub async fn remove_participant(
    db: &Db,
    room: &str,
    principal: &str,
) -> Result<(), MessagingError> {
    let mut tx = db.begin().await?;
    let current = room_in(&mut tx, room).await?;
    if current.kind != RoomKind::Group {
        return Err(MessagingError::Conflict(
            "only group conversations can be left".into(),
        ));
    }
    touch(&mut tx, room).await?;
    let n = sql::query("DELETE FROM messaging_participants WHERE room_id = $1 AND principal = $2")
        .bind(room)
        .bind(principal)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(MessagingError::NotFound("not a participant".into()));
    }
    tx.commit().await?;
    Ok(())
}

/// Takes the room's row (without changing it), so changes to one room
/// happen one at a time on PostgreSQL.
async fn touch(tx: &mut Tx, room: &str) -> Result<(), MessagingError> {
    sql::query("UPDATE messaging_rooms SET last_seq = last_seq WHERE id = $1")
        .bind(room)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A city room by its slug.
pub async fn public_room(db: &Db, slug: &str) -> Result<Option<Room>, MessagingError> {
    by_key(db, &format!("public:{slug}")).await
}

/// City rooms by slug, `limit + 1` at most, after the slug `after`.
pub async fn public_rooms(
    db: &Db,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Room>, MessagingError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{ROOM_COLUMNS} WHERE kind = 'public' AND slug > $1 ORDER BY slug LIMIT $2"
    )))
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(room_from).collect()
}

/// The city rooms of these slugs (those that exist), by slug.
pub async fn public_rooms_named(db: &Db, slugs: &[String]) -> Result<Vec<Room>, MessagingError> {
    if slugs.is_empty() {
        return Ok(Vec::new());
    }
    let text = format!(
        "{ROOM_COLUMNS} WHERE kind = 'public' AND slug IN ({}) ORDER BY slug",
        sql::json_texts(db.backend(), 1)
    );
    let slugs = serde_json::to_string(slugs).map_err(|e| MessagingError::Invalid(e.to_string()))?;
    let rows = sql::query(sql::AssertSqlSafe(text))
        .bind(slugs)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(room_from).collect()
}

/// The city room `general` (the city square), made once whoever asks first.
pub async fn ensure_city_square(db: &Db) -> Result<(), MessagingError> {
    sql::query(
        "INSERT INTO messaging_rooms (id, kind, room_key, dao, slug, title, description,
             audience, posters, agents_allowed, slow_mode_secs, last_seq, created_by, created_at)
         VALUES ($1, 'public', 'public:general', NULL, 'general', 'General',
             'The city square: everyone is welcome.', NULL, NULL, 1, 0, 0, 'system', $2)
         ON CONFLICT (room_key) DO NOTHING",
    )
    .bind(format!("rm_{}", uuid::Uuid::now_v7().simple()))
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// What messaging knows of a microDAO (from the microDAO service's events).
pub async fn record_dao(
    db: &Db,
    slug: &str,
    public: bool,
    archived: bool,
    rooms: &[NewRoom],
    responder: Option<&str>,
) -> Result<(), MessagingError> {
    let mut tx = db.begin().await?;
    sql::query(
        "INSERT INTO messaging_daos (slug, public, archived, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slug) DO UPDATE SET public = excluded.public, archived = excluded.archived,
             updated_at = excluded.updated_at",
    )
    .bind(slug)
    .bind(i64::from(public))
    .bind(i64::from(archived))
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?;
    if archived {
        sql::query(
            "UPDATE messaging_rooms SET archived_at = $2 WHERE dao = $1 AND archived_at IS NULL",
        )
        .bind(slug)
        .bind(daarion_store::now())
        .execute(&mut *tx)
        .await?;
    } else {
        for room in rooms {
            sql::query(
                "INSERT INTO messaging_rooms (id, kind, room_key, dao, slug, title, description,
                     audience, posters, agents_allowed, slow_mode_secs, last_seq, created_by,
                     created_at)
                 VALUES ($1, 'dao', $2, $3, $4, $5, $6, NULL, NULL, 1, 0, 0, 'system', $7)
                 ON CONFLICT (room_key) DO NOTHING",
            )
            .bind(format!("rm_{}", uuid::Uuid::now_v7().simple()))
            .bind(room.key.as_deref())
            .bind(slug)
            .bind(room.slug.as_deref())
            .bind(room.title.as_str())
            .bind(room.description.as_str())
            .bind(daarion_store::now())
            .execute(&mut *tx)
            .await?;
        }
        // The first room (`general`) gets the orchestrator as its responder,
        // unless someone chose one already.
        if let (Some(agent), Some(first)) = (responder, rooms.first()) {
            sql::query(
                "UPDATE messaging_rooms SET responder = $2 WHERE room_key = $1 AND responder IS NULL",
            )
            .bind(first.key.as_deref())
            .bind(agent)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Whether messaging knows the microDAO, and whether it is public.
pub async fn dao(db: &Db, slug: &str) -> Result<Option<bool>, MessagingError> {
    let row = sql::query("SELECT public FROM messaging_daos WHERE slug = $1")
        .bind(slug)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| Ok(r.try_get::<i64, _>("public")? != 0))
        .transpose()
}
