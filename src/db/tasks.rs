//! Tasks, residents' holds on them, invitations, rewards, invitation QR codes, and the outbox of
//! mini-program subscribe messages.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::money::payouts::PayoutChannel;
use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// What a task's round earns.
    pub enum TaskReward ("task reward kind") {
        Points = "points",
        /// Credited to the wallet.
        Balance = "balance",
        /// Paid out through WeChat Pay (to the wallet when the resident cannot be paid).
        RedPacket = "red_packet",
    }
}

stored_enum! {
    /// Who takes a task: residents accept it themselves, or operators assign it.
    pub enum TaskMode ("task mode") {
        Open = "open",
        Assigned = "assigned",
    }
}

stored_enum! {
    /// What a task asks for: neighbours who bind their home, or who shop at a merchant.
    pub enum TaskCategory ("task category") {
        InviteBind = "invite_bind",
        InviteShop = "invite_shop",
    }
}

stored_enum! {
    /// Whether a task still counts invitations.
    pub enum TaskState ("task state") {
        Active = "active",
        Ended = "ended",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TaskRow {
    pub id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub theme: String,
    pub mode: TaskMode,
    pub category: TaskCategory,
    pub merchant_id: Option<i64>,
    pub target: i64,
    pub reward_kind: TaskReward,
    pub reward_amount: i64,
    pub reward_channel: Option<PayoutChannel>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub max_rounds: i64,
    pub daily_cap: i64,
    pub state: TaskState,
    pub ended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const TASK: &str = "id, owner_org_id, company_id, theme, mode, category, merchant_id, target, reward_kind, \
                    reward_amount, reward_channel, starts_at, ends_at, max_rounds, daily_cap, state, ended_at, created_at, \
                    updated_at";

/// A task's terms, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskFields {
    pub theme: String,
    pub mode: TaskMode,
    pub category: TaskCategory,
    pub merchant_id: Option<i64>,
    pub target: i64,
    pub reward_kind: TaskReward,
    pub reward_amount: i64,
    pub reward_channel: Option<PayoutChannel>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub max_rounds: i64,
    pub daily_cap: i64,
}

pub async fn insert(tx: &mut Tx, owner_org_id: i64, company_id: i64, f: &TaskFields, now: i64) -> DbResult<TaskRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO tasks (owner_org_id, company_id, theme, mode, category, merchant_id, target, reward_kind, \
             reward_amount, reward_channel, starts_at, ends_at, max_rounds, daily_cap, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, 'active', $14, $14) RETURNING {TASK}"
    ))
    .bind(owner_org_id)
    .bind(company_id)
    .bind(&f.theme)
    .bind(f.mode)
    .bind(f.category)
    .bind(f.merchant_id)
    .bind(f.target)
    .bind(f.reward_kind)
    .bind(f.reward_amount)
    .bind(f.reward_channel)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.max_rounds)
    .bind(now)
    .bind(f.daily_cap)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn update(tx: &mut Tx, id: i64, f: &TaskFields, now: i64) -> DbResult<TaskRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE tasks SET theme = $1, mode = $2, category = $3, merchant_id = $4, target = $5, reward_kind = $6, \
             reward_amount = $7, reward_channel = $8, starts_at = $9, ends_at = $10, max_rounds = $11, updated_at = $12, \
             daily_cap = $14 WHERE id = $13 RETURNING {TASK}"
    ))
    .bind(&f.theme)
    .bind(f.mode)
    .bind(f.category)
    .bind(f.merchant_id)
    .bind(f.target)
    .bind(f.reward_kind)
    .bind(f.reward_amount)
    .bind(f.reward_channel)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.max_rounds)
    .bind(now)
    .bind(id)
    .bind(f.daily_cap)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<TaskRow>> {
    let row = sqlx::query_as(&format!("SELECT {TASK} FROM tasks WHERE id = $1")).bind(id).fetch_optional(ex).await?;
    Ok(row)
}

pub async fn end(tx: &mut Tx, id: i64, now: i64) -> DbResult<Option<TaskRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE tasks SET state = 'ended', ended_at = $1, updated_at = $1 WHERE id = $2 AND state = 'active' \
         RETURNING {TASK}"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Deletes a task nobody holds; false otherwise.
pub async fn delete_unheld(tx: &mut Tx, id: i64) -> DbResult<bool> {
    sqlx::query("DELETE FROM task_qrcodes WHERE task_id = $1").bind(id).execute(&mut **tx).await?;
    let done =
        sqlx::query("DELETE FROM tasks WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM task_holds WHERE task_id = $1)")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub scope_path: String,
    pub owner_org_id: Option<i64>,
    pub state: Option<TaskState>,
    pub category: Option<TaskCategory>,
    pub mode: Option<TaskMode>,
}

const FILTER: &str = "o.path LIKE $1 AND ($2 IS NULL OR t.owner_org_id = $2) AND ($3 IS NULL OR t.state = $3) \
     AND ($4 IS NULL OR t.category = $4) AND ($5 IS NULL OR t.mode = $5)";

pub async fn list(pool: &AnyPool, f: &TaskFilter, page: PageRequest) -> DbResult<Page<TaskRow>> {
    let scope = subtree_pattern(&f.scope_path);
    let cols = TASK.split(", ").map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let items = sqlx::query_as(&format!(
        "SELECT {cols} FROM tasks t JOIN orgs o ON o.id = t.owner_org_id WHERE {FILTER} \
         ORDER BY t.id DESC LIMIT $6 OFFSET $7"
    ))
    .bind(&scope)
    .bind(f.owner_org_id)
    .bind(f.state)
    .bind(f.category)
    .bind(f.mode)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM tasks t JOIN orgs o ON o.id = t.owner_org_id WHERE {FILTER}"))
            .bind(&scope)
            .bind(f.owner_org_id)
            .bind(f.state)
            .bind(f.category)
            .bind(f.mode)
            .fetch_one(pool)
            .await?;
    Ok(Page { items, total })
}

/// What became of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Figures {
    /// Residents holding it (accepted or assigned).
    pub accepted: i64,
    /// Invitees attributed.
    pub invitations: i64,
    /// Invitees counted.
    pub counted: i64,
    /// Rounds completed (rewards granted).
    pub completed: i64,
    /// Points or fen granted.
    pub rewards_paid: i64,
}

pub async fn figures<'c, E: Executor<'c, Database = Any>>(ex: E, task_id: i64) -> DbResult<Figures> {
    let row = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM task_holds WHERE task_id = $1) AS accepted, \
             (SELECT COUNT(*) FROM task_invitations WHERE task_id = $1 AND state <> 'rejected') AS invitations, \
             (SELECT COUNT(*) FROM task_invitations WHERE task_id = $1 AND state = 'counted') AS counted, \
             (SELECT COUNT(*) FROM task_rewards WHERE task_id = $1) AS completed, \
             (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM task_rewards WHERE task_id = $1) AS rewards_paid",
    )
    .bind(task_id)
    .fetch_one(ex)
    .await?;
    Ok(row)
}

/// The figures of many tasks in one statement (a list page), by task id.
pub async fn figures_of_many(pool: &AnyPool, task_ids: &[i64]) -> DbResult<HashMap<i64, Figures>> {
    if task_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT t.id, \
             (SELECT COUNT(*) FROM task_holds h WHERE h.task_id = t.id), \
             (SELECT COUNT(*) FROM task_invitations i WHERE i.task_id = t.id AND i.state <> 'rejected'), \
             (SELECT COUNT(*) FROM task_invitations i WHERE i.task_id = t.id AND i.state = 'counted'), \
             (SELECT COUNT(*) FROM task_rewards r WHERE r.task_id = t.id), \
             (SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM task_rewards r WHERE r.task_id = t.id) \
         FROM tasks t WHERE t.id IN ({})",
        crate::db::in_list(task_ids.len(), 1)
    );
    let mut q = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(&sql);
    for id in task_ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, accepted, invitations, counted, completed, rewards_paid)| {
            (id, Figures { accepted, invitations, counted, completed, rewards_paid })
        })
        .collect())
}

// ----- holds -------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HoldRow {
    pub id: i64,
    pub task_id: i64,
    pub resident_id: i64,
    pub how: String,
    pub counted: i64,
    pub rounds: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const HOLD: &str = "id, task_id, resident_id, how, counted, rounds, created_at, updated_at";

/// Gives the resident a hold on the task unless they have one; true when it is new.
pub async fn hold(tx: &mut Tx, task_id: i64, resident_id: i64, how: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO task_holds (task_id, resident_id, how, counted, rounds, created_at, updated_at) \
         VALUES ($1, $2, $3, 0, 0, $4, $4) ON CONFLICT (task_id, resident_id) DO NOTHING",
    )
    .bind(task_id)
    .bind(resident_id)
    .bind(how)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn hold_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    task_id: i64,
    resident_id: i64,
) -> DbResult<Option<HoldRow>> {
    let row = sqlx::query_as(&format!("SELECT {HOLD} FROM task_holds WHERE task_id = $1 AND resident_id = $2"))
        .bind(task_id)
        .bind(resident_id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// Counts one more invitee on the hold; the update locks the row for the rest of the
/// transaction, so concurrent counts for one inviter are decided one after another.
pub async fn count_one(tx: &mut Tx, task_id: i64, resident_id: i64, now: i64) -> DbResult<HoldRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE task_holds SET counted = counted + 1, updated_at = $3 WHERE task_id = $1 AND resident_id = $2 \
         RETURNING {HOLD}"
    ))
    .bind(task_id)
    .bind(resident_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn set_rounds(tx: &mut Tx, hold_id: i64, rounds: i64) -> DbResult<()> {
    sqlx::query("UPDATE task_holds SET rounds = $1 WHERE id = $2")
        .bind(rounds)
        .bind(hold_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A task I hold, with my progress.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MyTask {
    pub hold_id: i64,
    pub how: String,
    pub counted: i64,
    pub rounds: i64,
    pub attributed: i64,
    pub accepted_at: i64,
    pub task_id: i64,
}

pub async fn my_holds(pool: &AnyPool, resident_id: i64) -> DbResult<Vec<MyTask>> {
    let rows = sqlx::query_as(
        "SELECT h.id AS hold_id, h.how, h.counted, h.rounds, \
             (SELECT COUNT(*) FROM task_invitations i WHERE i.task_id = h.task_id AND i.inviter_id = h.resident_id \
                 AND i.state = 'attributed') AS attributed, \
             h.created_at AS accepted_at, h.task_id \
         FROM task_holds h WHERE h.resident_id = $1 ORDER BY h.id DESC LIMIT 200",
    )
    .bind(resident_id)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Open tasks of a company, active now.
pub async fn open_in_company(pool: &AnyPool, company_id: i64, now: i64) -> DbResult<Vec<TaskRow>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {TASK} FROM tasks WHERE company_id = $1 AND state = 'active' AND mode = 'open' AND starts_at <= $2 \
         AND ends_at > $2 ORDER BY id DESC"
    ))
    .bind(company_id)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

// ----- invitations -------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: i64,
    pub task_id: i64,
    pub inviter_id: i64,
    pub invitee_id: i64,
    pub via: String,
    pub state: String,
    pub reason: Option<String>,
    pub attributed_at: i64,
    pub counted_at: Option<i64>,
}

const INVITATION: &str = "id, task_id, inviter_id, invitee_id, via, state, reason, attributed_at, counted_at";

/// Attributes the invitee to the inviter's task; `None` when the invitee was attributed to this
/// task before (by anyone).
pub async fn attribute(
    tx: &mut Tx,
    task_id: i64,
    inviter_id: i64,
    invitee_id: i64,
    via: &str,
    now: i64,
) -> DbResult<Option<InvitationRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO task_invitations (task_id, inviter_id, invitee_id, via, state, attributed_at) \
         VALUES ($1, $2, $3, $4, 'attributed', $5) ON CONFLICT (task_id, invitee_id) DO NOTHING RETURNING {INVITATION}"
    ))
    .bind(task_id)
    .bind(inviter_id)
    .bind(invitee_id)
    .bind(via)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// The invitee's attributions still waiting to count.
pub async fn waiting_for(tx: &mut Tx, invitee_id: i64) -> DbResult<Vec<InvitationRow>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {INVITATION} FROM task_invitations WHERE invitee_id = $1 AND state = 'attributed' ORDER BY id"
    ))
    .bind(invitee_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows)
}

/// Settles an attribution (`counted` or `rejected` with a reason), once.
pub async fn settle(tx: &mut Tx, id: i64, state: &str, reason: Option<&str>, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE task_invitations SET state = $1, reason = $2, counted_at = $3 WHERE id = $4 AND state = 'attributed'",
    )
    .bind(state)
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Invitations of the inviter counted since `since` (any task), for the daily cap.
pub async fn counted_since(tx: &mut Tx, inviter_id: i64, since: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM task_invitations WHERE inviter_id = $1 AND state = 'counted' AND counted_at >= $2",
    )
    .bind(inviter_id)
    .bind(since)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

/// Undoes [`count_one`] when the invitation turned out not to count.
pub async fn uncount(tx: &mut Tx, hold_id: i64) -> DbResult<()> {
    sqlx::query("UPDATE task_holds SET counted = counted - 1 WHERE id = $1").bind(hold_id).execute(&mut **tx).await?;
    Ok(())
}

/// Orders of the resident at the merchant, or at any merchant of the company.
pub async fn orders_count(tx: &mut Tx, resident_id: i64, merchant_id: Option<i64>, company_id: i64) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM orders WHERE resident_id = $1 AND company_id = $3 AND ($2 IS NULL OR merchant_id = $2)",
    )
    .bind(resident_id)
    .bind(merchant_id)
    .bind(company_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

/// Residents with a verified binding in the community.
pub async fn verified_residents_of(tx: &mut Tx, community_id: i64) -> DbResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT DISTINCT resident_id FROM bindings WHERE community_id = $1 AND state = 'verified' ORDER BY resident_id",
    )
    .bind(community_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

// ----- rewards -----------------------------------------------------------------------------

/// One round's reward to one resident.
#[derive(Clone, Copy, Debug)]
pub struct NewReward<'a> {
    pub task_id: i64,
    pub resident_id: i64,
    pub round: i64,
    /// `points` or `red_packet`.
    pub kind: &'a str,
    pub amount: i64,
    pub payout_id: Option<i64>,
}

/// Records a round's reward; false when that round was rewarded already.
pub async fn insert_reward(tx: &mut Tx, r: &NewReward<'_>, now: i64) -> DbResult<bool> {
    let NewReward { task_id, resident_id, round, kind, amount, payout_id } = *r;
    let done = sqlx::query(
        "INSERT INTO task_rewards (task_id, resident_id, round, reward_kind, amount, payout_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (task_id, resident_id, round) DO NOTHING",
    )
    .bind(task_id)
    .bind(resident_id)
    .bind(round)
    .bind(kind)
    .bind(amount)
    .bind(payout_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_reward_payout(
    tx: &mut Tx,
    task_id: i64,
    resident_id: i64,
    round: i64,
    payout_id: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE task_rewards SET payout_id = $1 WHERE task_id = $2 AND resident_id = $3 AND round = $4")
        .bind(payout_id)
        .bind(task_id)
        .bind(resident_id)
        .bind(round)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ----- QR codes ----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct QrRow {
    pub scene: String,
    pub ticket: String,
    pub url: String,
    pub expires_at: i64,
}

pub async fn qrcode<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    task_id: i64,
    resident_id: i64,
) -> DbResult<Option<QrRow>> {
    let row = sqlx::query_as(
        "SELECT scene, ticket, url, expires_at FROM task_qrcodes WHERE task_id = $1 AND resident_id = $2",
    )
    .bind(task_id)
    .bind(resident_id)
    .fetch_optional(ex)
    .await?;
    Ok(row)
}

pub async fn put_qrcode(tx: &mut Tx, task_id: i64, resident_id: i64, q: &QrRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO task_qrcodes (task_id, resident_id, scene, ticket, url, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (task_id, resident_id) DO UPDATE SET scene = $3, ticket = $4, url = $5, expires_at = $6",
    )
    .bind(task_id)
    .bind(resident_id)
    .bind(&q.scene)
    .bind(&q.ticket)
    .bind(&q.url)
    .bind(q.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ----- subscribe messages ------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub resident_id: i64,
    pub appid: String,
    pub openid: String,
    pub template_id: String,
    pub page: Option<String>,
    pub data: String,
    pub attempts: i64,
}

/// A subscribe message to send to a resident's mini-program identity.
#[derive(Clone, Copy, Debug)]
pub struct NewMessage<'a> {
    pub resident_id: i64,
    pub appid: &'a str,
    pub openid: &'a str,
    pub template_id: &'a str,
    /// The mini-program page the message opens.
    pub page: Option<&'a str>,
    /// The template's data, as JSON.
    pub data: &'a str,
    /// Sent once per reference.
    pub reference: &'a str,
}

/// Queues a message once per `reference`.
pub async fn queue_message(tx: &mut Tx, m: &NewMessage<'_>, now: i64) -> DbResult<()> {
    let NewMessage { resident_id, appid, openid, template_id, page, data, reference } = *m;
    sqlx::query(
        "INSERT INTO mp_messages (resident_id, appid, openid, template_id, page, data, reference, state, attempts, \
             next_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) \
         ON CONFLICT (reference) DO NOTHING",
    )
    .bind(resident_id)
    .bind(appid)
    .bind(openid)
    .bind(template_id)
    .bind(page)
    .bind(data)
    .bind(reference)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes up to `limit` due messages: each is pushed `lease_ms` into the future first, so a
/// second instance does not take it too.
pub async fn claim_messages(pool: &AnyPool, now: i64, lease_ms: i64, limit: i64) -> DbResult<Vec<MessageRow>> {
    let rows = sqlx::query_as(
        "UPDATE mp_messages SET next_at = $2, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM mp_messages WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at LIMIT $3) \
         AND state = 'pending' AND next_at <= $1 \
         RETURNING id, resident_id, appid, openid, template_id, page, data, attempts",
    )
    .bind(now)
    .bind(now + lease_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub async fn message_done<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    id: i64,
    state: &str,
    error: Option<&str>,
    next_at: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE mp_messages SET state = $1, last_error = $2, next_at = $3, \
             sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END WHERE id = $5",
    )
    .bind(state)
    .bind(error)
    .bind(next_at)
    .bind(now)
    .bind(id)
    .execute(ex)
    .await?;
    Ok(())
}
