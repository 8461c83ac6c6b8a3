//! Red-packet campaigns, their shares and grabs.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::money::payouts::PayoutChannel;
use crate::db::{subtree_pattern, DbResult, Page, PageRequest, Tx};

stored_enum! {
    /// Where a red-packet campaign is: drafted, open to grabs (within its window), or ended.
    pub enum CampaignState ("red-packet campaign state") {
        Draft = "draft",
        Active = "active",
        Ended = "ended",
    }
}

stored_enum! {
    /// How a campaign's total is split: every share the same, or random (double mean).
    pub enum AmountMode ("red-packet amount mode") {
        Fixed = "fixed",
        Random = "random",
    }
}

stored_enum! {
    /// Who may grab a campaign's shares: followers of the official account, or residents with a
    /// verified home (in the campaign's communities, when it names some).
    pub enum RedPacketAudience ("red-packet audience") {
        Followers = "followers",
        VerifiedResidents = "verified_residents",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: i64,
    pub owner_org_id: i64,
    pub company_id: i64,
    pub theme: String,
    pub channel: PayoutChannel,
    pub amount_mode: AmountMode,
    pub total_fen: i64,
    pub shares: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub audience: RedPacketAudience,
    pub audience_communities: String,
    pub send_name: String,
    pub wishing: String,
    pub act_name: String,
    pub remark: String,
    pub transfer_remark: String,
    pub transfer_scene_id: String,
    pub state: CampaignState,
    pub granted: i64,
    pub activated_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const CAMPAIGN: &str =
    "id, owner_org_id, company_id, theme, channel, amount_mode, total_fen, shares, starts_at, ends_at, \
                        audience, audience_communities, send_name, wishing, act_name, remark, transfer_remark, \
                        transfer_scene_id, state, granted, activated_at, ended_at, created_at, updated_at";

/// A campaign's terms, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CampaignFields {
    pub theme: String,
    pub channel: PayoutChannel,
    pub amount_mode: AmountMode,
    pub total_fen: i64,
    pub shares: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub audience: RedPacketAudience,
    pub audience_communities: String,
    pub send_name: String,
    pub wishing: String,
    pub act_name: String,
    pub remark: String,
    pub transfer_remark: String,
    pub transfer_scene_id: String,
}

pub async fn insert(
    tx: &mut Tx,
    owner_org_id: i64,
    company_id: i64,
    f: &CampaignFields,
    now: i64,
) -> DbResult<CampaignRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO rp_campaigns (owner_org_id, company_id, theme, channel, amount_mode, total_fen, shares, starts_at, \
             ends_at, audience, audience_communities, send_name, wishing, act_name, remark, transfer_remark, \
             transfer_scene_id, state, granted, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'draft', 0, $18, $18) \
         RETURNING {CAMPAIGN}"
    ))
    .bind(owner_org_id)
    .bind(company_id)
    .bind(&f.theme)
    .bind(f.channel)
    .bind(f.amount_mode)
    .bind(f.total_fen)
    .bind(f.shares)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.audience)
    .bind(&f.audience_communities)
    .bind(&f.send_name)
    .bind(&f.wishing)
    .bind(&f.act_name)
    .bind(&f.remark)
    .bind(&f.transfer_remark)
    .bind(&f.transfer_scene_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Rewrites a draft's terms; `None` when it is no longer a draft.
pub async fn update_draft(tx: &mut Tx, id: i64, f: &CampaignFields, now: i64) -> DbResult<Option<CampaignRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE rp_campaigns SET theme = $1, channel = $2, amount_mode = $3, total_fen = $4, shares = $5, \
             starts_at = $6, ends_at = $7, audience = $8, audience_communities = $9, send_name = $10, wishing = $11, \
             act_name = $12, remark = $13, transfer_remark = $14, transfer_scene_id = $15, updated_at = $16 \
         WHERE id = $17 AND state = 'draft' RETURNING {CAMPAIGN}"
    ))
    .bind(&f.theme)
    .bind(f.channel)
    .bind(f.amount_mode)
    .bind(f.total_fen)
    .bind(f.shares)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.audience)
    .bind(&f.audience_communities)
    .bind(&f.send_name)
    .bind(&f.wishing)
    .bind(&f.act_name)
    .bind(&f.remark)
    .bind(&f.transfer_remark)
    .bind(&f.transfer_scene_id)
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn get<'c, E: Executor<'c, Database = Any>>(ex: E, id: i64) -> DbResult<Option<CampaignRow>> {
    let row = sqlx::query_as(&format!("SELECT {CAMPAIGN} FROM rp_campaigns WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// Deletes a draft; false when it is not (or no longer) one.
pub async fn delete_draft(tx: &mut Tx, id: i64) -> DbResult<bool> {
    let done =
        sqlx::query("DELETE FROM rp_campaigns WHERE id = $1 AND state = 'draft'").bind(id).execute(&mut **tx).await?;
    Ok(done.rows_affected() == 1)
}

/// Draft → active, with the shares stored in the same transaction; `None` if not a draft.
pub async fn activate(tx: &mut Tx, id: i64, amounts: &[i64], now: i64) -> DbResult<Option<CampaignRow>> {
    let row: Option<CampaignRow> = sqlx::query_as(&format!(
        "UPDATE rp_campaigns SET state = 'active', activated_at = $1, updated_at = $1 \
         WHERE id = $2 AND state = 'draft' RETURNING {CAMPAIGN}"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if row.is_none() {
        return Ok(None);
    }
    // Multi-row inserts keep a 100,000-share campaign to a few hundred statements.
    for (chunk_no, chunk) in amounts.chunks(300).enumerate() {
        let mut sql = String::from("INSERT INTO rp_shares (campaign_id, seq, amount_fen) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i));
        }
        let mut q = sqlx::query(&sql).bind(id);
        for (i, amount) in chunk.iter().enumerate() {
            q = q.bind((chunk_no * 300 + i + 1) as i64).bind(*amount);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(row)
}

/// Active → ended; `None` if it was not active.
pub async fn end(tx: &mut Tx, id: i64, now: i64) -> DbResult<Option<CampaignRow>> {
    let row = sqlx::query_as(&format!(
        "UPDATE rp_campaigns SET state = 'ended', ended_at = $1, updated_at = $1 \
         WHERE id = $2 AND state = 'active' RETURNING {CAMPAIGN}"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

#[derive(Clone, Debug, Default)]
pub struct CampaignFilter {
    pub scope_path: String,
    pub owner_org_id: Option<i64>,
    pub state: Option<CampaignState>,
    pub channel: Option<PayoutChannel>,
}

const FILTER: &str = "o.path LIKE $1 AND ($2 IS NULL OR c.owner_org_id = $2) AND ($3 IS NULL OR c.state = $3) \
     AND ($4 IS NULL OR c.channel = $4)";

pub async fn list(pool: &AnyPool, f: &CampaignFilter, page: PageRequest) -> DbResult<Page<CampaignRow>> {
    let scope = subtree_pattern(&f.scope_path);
    let cols = CAMPAIGN.split(", ").map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let items = sqlx::query_as(&format!(
        "SELECT {cols} FROM rp_campaigns c JOIN orgs o ON o.id = c.owner_org_id WHERE {FILTER} \
         ORDER BY c.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(&scope)
    .bind(f.owner_org_id)
    .bind(f.state)
    .bind(f.channel)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM rp_campaigns c JOIN orgs o ON o.id = c.owner_org_id WHERE {FILTER}"
    ))
    .bind(&scope)
    .bind(f.owner_org_id)
    .bind(f.state)
    .bind(f.channel)
    .fetch_one(pool)
    .await?;
    Ok(Page { items, total })
}

/// Active campaigns of a company whose window is open now.
pub async fn open_in_company(pool: &AnyPool, company_id: i64, now: i64) -> DbResult<Vec<CampaignRow>> {
    let rows = sqlx::query_as(&format!(
        "SELECT {CAMPAIGN} FROM rp_campaigns WHERE company_id = $1 AND state = 'active' AND starts_at <= $2 \
         AND ends_at > $2 ORDER BY id DESC"
    ))
    .bind(company_id)
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Takes the next share: the conditional update is the guard against granting more than there
/// are, and locks the campaign row for the rest of the transaction. Answers the share's number.
pub async fn take_share(tx: &mut Tx, campaign_id: i64, now: i64) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE rp_campaigns SET granted = granted + 1, updated_at = $2 \
         WHERE id = $1 AND state = 'active' AND granted < shares AND starts_at <= $2 AND ends_at > $2 \
         RETURNING granted",
    )
    .bind(campaign_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(g,)| g))
}

pub async fn share_amount(tx: &mut Tx, campaign_id: i64, seq: i64) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT amount_fen FROM rp_shares WHERE campaign_id = $1 AND seq = $2")
        .bind(campaign_id)
        .bind(seq)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|(a,)| a))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GrabRow {
    pub id: i64,
    pub campaign_id: i64,
    pub resident_id: i64,
    pub seq: i64,
    pub amount_fen: i64,
    pub payout_id: Option<i64>,
    pub created_at: i64,
}

const GRAB: &str = "id, campaign_id, resident_id, seq, amount_fen, payout_id, created_at";

pub async fn grab_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    campaign_id: i64,
    resident_id: i64,
) -> DbResult<Option<GrabRow>> {
    let row = sqlx::query_as(&format!("SELECT {GRAB} FROM rp_grabs WHERE campaign_id = $1 AND resident_id = $2"))
        .bind(campaign_id)
        .bind(resident_id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

pub async fn insert_grab(
    tx: &mut Tx,
    campaign_id: i64,
    resident_id: i64,
    seq: i64,
    amount_fen: i64,
    payout_id: Option<i64>,
    now: i64,
) -> DbResult<GrabRow> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO rp_grabs (campaign_id, resident_id, seq, amount_fen, payout_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {GRAB}"
    ))
    .bind(campaign_id)
    .bind(resident_id)
    .bind(seq)
    .bind(amount_fen)
    .bind(payout_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

/// Every resident holding a share of the campaign.
pub async fn holders(pool: &AnyPool, campaign_id: i64) -> DbResult<std::collections::HashSet<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT resident_id FROM rp_grabs WHERE campaign_id = $1")
        .bind(campaign_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// Which of `residents` already hold a share of the campaign.
pub async fn holders_among(tx: &mut Tx, campaign_id: i64, residents: &[i64]) -> DbResult<Vec<i64>> {
    if residents.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT resident_id FROM rp_grabs WHERE campaign_id = $1 AND resident_id IN ({})",
        crate::db::in_list(residents.len(), 2)
    );
    let sql = crate::db::positional(tx, sql);
    let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(campaign_id);
    for r in residents {
        q = q.bind(*r);
    }
    Ok(q.fetch_all(&mut **tx).await?.into_iter().map(|(r,)| r).collect())
}

/// Moves the campaign's grant count from `from` to `to` if it still is `from` and the campaign is
/// open: the compare-and-set that guards a group of grants on every engine and instance. False
/// when another writer moved it first or the campaign closed.
pub async fn take_shares(tx: &mut Tx, campaign_id: i64, from: i64, to: i64, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE rp_campaigns SET granted = $3, updated_at = $4 \
         WHERE id = $1 AND granted = $2 AND $3 <= shares AND state = 'active' AND starts_at <= $4 AND ends_at > $4",
    )
    .bind(campaign_id)
    .bind(from)
    .bind(to)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The amounts of shares `from + 1 ..= to`, by number.
pub async fn share_amounts(tx: &mut Tx, campaign_id: i64, from: i64, to: i64) -> DbResult<Vec<(i64, i64)>> {
    let rows = sqlx::query_as(
        "SELECT seq, amount_fen FROM rp_shares WHERE campaign_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
    )
    .bind(campaign_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows)
}

/// A grab to record.
#[derive(Clone, Debug)]
pub struct NewGrab {
    pub resident_id: i64,
    pub seq: i64,
    pub amount_fen: i64,
    pub payout_id: Option<i64>,
}

/// Records many grabs of one campaign in one statement. The unique (campaign, resident) key stays
/// the guard: a resident who grabbed meanwhile fails the whole statement.
pub async fn insert_grabs(tx: &mut Tx, campaign_id: i64, grabs: &[NewGrab], now: i64) -> DbResult<Vec<GrabRow>> {
    let mut out = Vec::with_capacity(grabs.len());
    for chunk in grabs.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO rp_grabs (campaign_id, resident_id, seq, amount_fen, payout_id, created_at) VALUES {} \
             RETURNING {GRAB}",
            crate::db::values_list(chunk.len(), 6, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, GrabRow>(&sql);
        for g in chunk {
            q = q.bind(campaign_id).bind(g.resident_id).bind(g.seq).bind(g.amount_fen).bind(g.payout_id).bind(now);
        }
        out.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(out)
}

/// A grab with its campaign's theme and its payout's state, for "my red packets".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MyGrab {
    pub id: i64,
    pub campaign_id: i64,
    pub theme: String,
    pub channel: PayoutChannel,
    pub amount_fen: i64,
    pub payout_id: Option<i64>,
    pub payout_state: Option<crate::db::money::payouts::PayoutState>,
    pub credited_at: Option<i64>,
    pub created_at: i64,
}

const MY_GRAB: &str = "SELECT g.id, g.campaign_id, c.theme, c.channel, g.amount_fen, g.payout_id, \
     p.state AS payout_state, p.credited_at, g.created_at \
     FROM rp_grabs g JOIN rp_campaigns c ON c.id = g.campaign_id LEFT JOIN payouts p ON p.id = g.payout_id";

pub async fn my_grabs(pool: &AnyPool, resident_id: i64, page: PageRequest) -> DbResult<Vec<MyGrab>> {
    let rows = sqlx::query_as(&format!("{MY_GRAB} WHERE g.resident_id = $1 ORDER BY g.id DESC LIMIT $2 OFFSET $3"))
        .bind(resident_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// What became of a campaign's shares, fen and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Figures {
    pub grabbed: i64,
    pub grabbed_fen: i64,
    /// Paid out to WeChat (or credited at once, for the balance channel).
    pub paid: i64,
    pub paid_fen: i64,
    /// Not final yet.
    pub pending: i64,
    /// Failed for good (the amount went to the resident's wallet).
    pub failed: i64,
}

pub async fn figures<'c, E: Executor<'c, Database = Any>>(ex: E, campaign_id: i64) -> DbResult<Figures> {
    let row = sqlx::query_as(
        "SELECT COUNT(g.id) AS grabbed, CAST(COALESCE(SUM(g.amount_fen), 0) AS BIGINT) AS grabbed_fen, \
             CAST(COALESCE(SUM(CASE WHEN p.id IS NULL OR p.state = 'succeeded' THEN 1 ELSE 0 END), 0) AS BIGINT) AS paid, \
             CAST(COALESCE(SUM(CASE WHEN p.id IS NULL OR p.state = 'succeeded' THEN g.amount_fen ELSE 0 END), 0) AS BIGINT) \
                 AS paid_fen, \
             CAST(COALESCE(SUM(CASE WHEN p.state IN ('pending', 'submitted', 'unknown', 'awaiting_confirmation') \
                 THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending, \
             CAST(COALESCE(SUM(CASE WHEN p.state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed \
         FROM rp_grabs g LEFT JOIN payouts p ON p.id = g.payout_id WHERE g.campaign_id = $1",
    )
    .bind(campaign_id)
    .fetch_one(ex)
    .await?;
    Ok(row)
}

/// The figures of many campaigns in one statement (a list page), by campaign id; a campaign
/// nobody grabbed from has none.
pub async fn figures_of_many(pool: &AnyPool, campaign_ids: &[i64]) -> DbResult<HashMap<i64, Figures>> {
    if campaign_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT g.campaign_id, COUNT(g.id), CAST(COALESCE(SUM(g.amount_fen), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN p.id IS NULL OR p.state = 'succeeded' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN p.id IS NULL OR p.state = 'succeeded' THEN g.amount_fen ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN p.state IN ('pending', 'submitted', 'unknown', 'awaiting_confirmation') \
                 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN p.state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM rp_grabs g LEFT JOIN payouts p ON p.id = g.payout_id WHERE g.campaign_id IN ({}) \
         GROUP BY g.campaign_id",
        crate::db::in_list(campaign_ids.len(), 1)
    );
    let mut q = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64, i64)>(&sql);
    for id in campaign_ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, grabbed, grabbed_fen, paid, paid_fen, pending, failed)| {
            (id, Figures { grabbed, grabbed_fen, paid, paid_fen, pending, failed })
        })
        .collect())
}
