//! Points: programmes (one per property company), accounts, the append-only ledger, check-ins.

use serde::Serialize;
use sqlx::{Any, AnyPool, Executor};

use crate::db::{DbResult, Page, PageRequest, Tx};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ProgrammeRow {
    pub id: i64,
    pub company_id: i64,
    pub name: String,
    pub utc_offset_minutes: i64,
    pub follow_points: i64,
    pub checkin_points: i64,
    pub streak_bonuses: String,
    pub referral_points: i64,
    pub checkin_keyword: String,
    pub checkin_menu_key: String,
    pub default_reply: Option<String>,
    pub points_per_yuan: i64,
    pub first_purchase_percent: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const PROGRAMME: &str = "id, company_id, name, utc_offset_minutes, follow_points, checkin_points, \
                         streak_bonuses, referral_points, checkin_keyword, checkin_menu_key, default_reply, \
                         points_per_yuan, first_purchase_percent, created_at, updated_at";

/// A programme's rules, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgrammeFields {
    pub name: String,
    pub utc_offset_minutes: i64,
    pub follow_points: i64,
    pub checkin_points: i64,
    pub streak_bonuses: String,
    pub referral_points: i64,
    pub checkin_keyword: String,
    pub checkin_menu_key: String,
    pub default_reply: Option<String>,
    pub points_per_yuan: i64,
    pub first_purchase_percent: i64,
}

pub async fn programme_of<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    company_id: i64,
) -> DbResult<Option<ProgrammeRow>> {
    let row = sqlx::query_as(&format!("SELECT {PROGRAMME} FROM points_programmes WHERE company_id = $1"))
        .bind(company_id)
        .fetch_optional(ex)
        .await?;
    Ok(row)
}

/// Creates the programme unless the company has one; answers the company's programme either way.
pub async fn create_programme_if_absent(
    tx: &mut Tx,
    company_id: i64,
    f: &ProgrammeFields,
    now: i64,
) -> DbResult<ProgrammeRow> {
    sqlx::query(
        "INSERT INTO points_programmes (company_id, name, utc_offset_minutes, follow_points, checkin_points, \
             streak_bonuses, referral_points, checkin_keyword, checkin_menu_key, default_reply, points_per_yuan, \
             first_purchase_percent, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $11, $11) ON CONFLICT (company_id) DO NOTHING",
    )
    .bind(company_id)
    .bind(&f.name)
    .bind(f.utc_offset_minutes)
    .bind(f.follow_points)
    .bind(f.checkin_points)
    .bind(&f.streak_bonuses)
    .bind(f.referral_points)
    .bind(&f.checkin_keyword)
    .bind(&f.checkin_menu_key)
    .bind(&f.default_reply)
    .bind(now)
    .bind(f.points_per_yuan)
    .bind(f.first_purchase_percent)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query_as(&format!("SELECT {PROGRAMME} FROM points_programmes WHERE company_id = $1"))
        .bind(company_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row)
}

pub async fn update_programme(tx: &mut Tx, id: i64, f: &ProgrammeFields, now: i64) -> DbResult<ProgrammeRow> {
    let row = sqlx::query_as(&format!(
        "UPDATE points_programmes SET name = $1, utc_offset_minutes = $2, follow_points = $3, checkin_points = $4, \
             streak_bonuses = $5, referral_points = $6, checkin_keyword = $7, checkin_menu_key = $8, \
             default_reply = $9, updated_at = $10, points_per_yuan = $12, first_purchase_percent = $13 \
         WHERE id = $11 RETURNING {PROGRAMME}"
    ))
    .bind(&f.name)
    .bind(f.utc_offset_minutes)
    .bind(f.follow_points)
    .bind(f.checkin_points)
    .bind(&f.streak_bonuses)
    .bind(f.referral_points)
    .bind(&f.checkin_keyword)
    .bind(&f.checkin_menu_key)
    .bind(&f.default_reply)
    .bind(now)
    .bind(id)
    .bind(f.points_per_yuan)
    .bind(f.first_purchase_percent)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub programme_id: i64,
    pub resident_id: i64,
    pub balance: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const ACCOUNT: &str = "id, programme_id, resident_id, balance, created_at, updated_at";

/// The resident's account in the programme, opened (at zero) if it has none.
pub async fn open_account(tx: &mut Tx, programme_id: i64, resident_id: i64, now: i64) -> DbResult<AccountRow> {
    sqlx::query(
        "INSERT INTO points_accounts (programme_id, resident_id, balance, created_at, updated_at) \
         VALUES ($1, $2, 0, $3, $3) ON CONFLICT (programme_id, resident_id) DO NOTHING",
    )
    .bind(programme_id)
    .bind(resident_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let row =
        sqlx::query_as(&format!("SELECT {ACCOUNT} FROM points_accounts WHERE programme_id = $1 AND resident_id = $2"))
            .bind(programme_id)
            .bind(resident_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(row)
}

pub async fn account<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    programme_id: i64,
    resident_id: i64,
) -> DbResult<Option<AccountRow>> {
    let row =
        sqlx::query_as(&format!("SELECT {ACCOUNT} FROM points_accounts WHERE programme_id = $1 AND resident_id = $2"))
            .bind(programme_id)
            .bind(resident_id)
            .fetch_optional(ex)
            .await?;
    Ok(row)
}

/// Moves an account's balance by `amount` unless it would go below zero; the new balance, or
/// `None` when refused. The update also locks the account row until the transaction ends, so
/// postings to one account are serialized.
pub async fn move_balance(tx: &mut Tx, account_id: i64, amount: i64, now: i64) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE points_accounts SET balance = balance + $1, updated_at = $2 \
         WHERE id = $3 AND balance + $1 >= 0 RETURNING balance",
    )
    .bind(amount)
    .bind(now)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(b,)| b))
}

stored_enum! {
    /// What a ledger row records.
    pub enum PointsKind ("points ledger kind") {
        /// Points granted by an operator (发行积分).
        Issue = "issue",
        /// Points earned by a rule: follow, check-in, purchase, referral, task.
        Earn = "earn",
        /// Points spent (支出积分).
        Spend = "spend",
        /// Points exchanged for goods or services (积分兑换).
        Redeem = "redeem",
        /// Points given back (返还).
        Refund = "refund",
        /// Points that lapsed.
        Expire = "expire",
        /// An operator's correction, either way.
        Adjust = "adjust",
    }
}

stored_enum! {
    /// What caused a ledger row.
    pub enum PointsSource ("points ledger source") {
        Follow = "follow",
        Checkin = "checkin",
        Purchase = "purchase",
        Referral = "referral",
        Task = "task",
        Redemption = "redemption",
        Operator = "operator",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub programme_id: i64,
    pub account_id: i64,
    pub resident_id: i64,
    pub kind: PointsKind,
    pub source: PointsSource,
    pub reference: String,
    pub amount: i64,
    pub balance_after: i64,
    pub operator_key_id: Option<i64>,
    pub operator: Option<String>,
    pub remark: Option<String>,
    pub created_at: i64,
}

const LEDGER: &str = "id, programme_id, account_id, resident_id, kind, source, reference, amount, balance_after, \
                      operator_key_id, operator, remark, created_at";

pub struct NewLedgerRow<'a> {
    pub programme_id: i64,
    pub account_id: i64,
    pub resident_id: i64,
    pub kind: PointsKind,
    pub source: PointsSource,
    pub reference: &'a str,
    pub amount: i64,
    pub balance_after: i64,
    pub operator_key_id: Option<i64>,
    pub operator: Option<&'a str>,
    pub remark: Option<&'a str>,
    pub created_at: i64,
}

/// Appends a row unless its reference was used in this programme; `None` when it was.
pub async fn append(tx: &mut Tx, r: &NewLedgerRow<'_>) -> DbResult<Option<LedgerRow>> {
    let row = sqlx::query_as(&format!(
        "INSERT INTO points_ledger (programme_id, account_id, resident_id, kind, source, reference, amount, \
             balance_after, operator_key_id, operator, remark, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (programme_id, reference) DO NOTHING RETURNING {LEDGER}"
    ))
    .bind(r.programme_id)
    .bind(r.account_id)
    .bind(r.resident_id)
    .bind(r.kind)
    .bind(r.source)
    .bind(r.reference)
    .bind(r.amount)
    .bind(r.balance_after)
    .bind(r.operator_key_id)
    .bind(r.operator)
    .bind(r.remark)
    .bind(r.created_at)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn by_reference(tx: &mut Tx, programme_id: i64, reference: &str) -> DbResult<Option<LedgerRow>> {
    let row = sqlx::query_as(&format!("SELECT {LEDGER} FROM points_ledger WHERE programme_id = $1 AND reference = $2"))
        .bind(programme_id)
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row)
}

#[derive(Clone, Debug, Default)]
pub struct LedgerFilter {
    pub programme_id: i64,
    pub resident_id: Option<i64>,
    pub kind: Option<PointsKind>,
    pub source: Option<PointsSource>,
    pub operator_key_id: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Sums over every row matching a ledger filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerTotals {
    pub row_count: i64,
    pub credited: i64,
    pub debited: i64,
}

const FILTER: &str = "programme_id = $1 AND ($2 IS NULL OR resident_id = $2) AND ($3 IS NULL OR kind = $3) \
     AND ($4 IS NULL OR source = $4) AND ($5 IS NULL OR operator_key_id = $5) \
     AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7)";

/// Newest first, with totals over every match.
pub async fn list(pool: &AnyPool, f: &LedgerFilter, page: PageRequest) -> DbResult<(Page<LedgerRow>, LedgerTotals)> {
    let items = sqlx::query_as(&format!(
        "SELECT {LEDGER} FROM points_ledger WHERE {FILTER} ORDER BY id DESC LIMIT $8 OFFSET $9"
    ))
    .bind(f.programme_id)
    .bind(f.resident_id)
    .bind(f.kind)
    .bind(f.source)
    .bind(f.operator_key_id)
    .bind(f.since)
    .bind(f.until)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let totals: LedgerTotals = sqlx::query_as(&format!(
        "SELECT COUNT(*) AS row_count, \
                CAST(COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS BIGINT) AS credited, \
                CAST(COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS BIGINT) AS debited \
         FROM points_ledger WHERE {FILTER}"
    ))
    .bind(f.programme_id)
    .bind(f.resident_id)
    .bind(f.kind)
    .bind(f.source)
    .bind(f.operator_key_id)
    .bind(f.since)
    .bind(f.until)
    .fetch_one(pool)
    .await?;
    Ok((Page { items, total: totals.row_count }, totals))
}

/// Accounts whose balance differs from the sum of their ledger rows: always empty.
pub async fn unbalanced_accounts<'c, E: Executor<'c, Database = Any>>(ex: E) -> DbResult<Vec<(i64, i64, i64)>> {
    let rows = sqlx::query_as(
        "SELECT a.id, a.balance, CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) AS sum \
         FROM points_accounts a LEFT JOIN points_ledger l ON l.account_id = a.id \
         GROUP BY a.id, a.balance HAVING a.balance <> CAST(COALESCE(SUM(l.amount), 0) AS BIGINT)",
    )
    .fetch_all(ex)
    .await?;
    Ok(rows)
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CheckinRow {
    pub day: i64,
    pub streak: i64,
}

/// Opens (at zero) the accounts the residents lack in the programme, in one statement.
pub async fn open_accounts(tx: &mut Tx, programme_id: i64, residents: &[i64], now: i64) -> DbResult<()> {
    for chunk in residents.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO points_accounts (programme_id, resident_id, balance, created_at, updated_at) VALUES {} \
             ON CONFLICT (programme_id, resident_id) DO NOTHING",
            crate::db::values_list(chunk.len(), 5, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q.bind(programme_id).bind(*r).bind(0i64).bind(now).bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The residents' accounts in the programme.
pub async fn accounts_of(tx: &mut Tx, programme_id: i64, residents: &[i64]) -> DbResult<Vec<AccountRow>> {
    let mut rows = Vec::with_capacity(residents.len());
    for chunk in residents.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {ACCOUNT} FROM points_accounts WHERE programme_id = $1 AND resident_id IN ({})",
            crate::db::in_list(chunk.len(), 2)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, AccountRow>(&sql).bind(programme_id);
        for r in chunk {
            q = q.bind(*r);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// Adds `delta` (≥ 0) to each account's balance, in one statement; answers (account, new balance).
pub async fn credit_accounts(tx: &mut Tx, deltas: &[(i64, i64)], now: i64) -> DbResult<Vec<(i64, i64)>> {
    let mut rows = Vec::with_capacity(deltas.len());
    for chunk in deltas.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE points_accounts SET balance = points_accounts.balance + v.column2, updated_at = v.column3 \
             FROM (VALUES {}) AS v WHERE points_accounts.id = v.column1 RETURNING id, balance",
            crate::db::values_list(chunk.len(), 3, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, (i64, i64)>(&sql);
        for (account, delta) in chunk {
            debug_assert!(*delta >= 0, "credits only");
            q = q.bind(*account).bind(*delta).bind(now);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// Appends many rows in one statement. The (programme, reference) key stays the guard: a
/// reference used meanwhile fails the whole statement.
pub async fn append_many(tx: &mut Tx, rows: &[NewLedgerRow<'_>]) -> DbResult<()> {
    for chunk in rows.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO points_ledger (programme_id, account_id, resident_id, kind, source, reference, amount, \
                 balance_after, operator_key_id, operator, remark, created_at) VALUES {}",
            crate::db::values_list(chunk.len(), 12, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.programme_id)
                .bind(r.account_id)
                .bind(r.resident_id)
                .bind(r.kind)
                .bind(r.source)
                .bind(r.reference)
                .bind(r.amount)
                .bind(r.balance_after)
                .bind(r.operator_key_id)
                .bind(r.operator)
                .bind(r.remark)
                .bind(r.created_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A check-in of one resident, as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DayRow {
    pub resident_id: i64,
    pub day: i64,
    pub streak: i64,
}

/// The residents' check-ins on `since` or later.
pub async fn checkins_since(tx: &mut Tx, programme_id: i64, residents: &[i64], since: i64) -> DbResult<Vec<DayRow>> {
    let mut rows = Vec::new();
    for chunk in residents.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT resident_id, day, streak FROM checkins WHERE programme_id = $1 AND day >= $2 \
             AND resident_id IN ({})",
            crate::db::in_list(chunk.len(), 3)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query_as::<_, DayRow>(&sql).bind(programme_id).bind(since);
        for r in chunk {
            q = q.bind(*r);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

/// A check-in to record.
#[derive(Clone, Debug)]
pub struct NewCheckin {
    pub resident_id: i64,
    pub day: i64,
    pub streak: i64,
    pub points: i64,
    pub at: i64,
}

/// Records many check-ins in one statement; the (programme, resident, day) key stays the guard.
pub async fn insert_checkins(tx: &mut Tx, programme_id: i64, rows: &[NewCheckin]) -> DbResult<()> {
    for chunk in rows.chunks(crate::db::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO checkins (programme_id, resident_id, day, streak, points, created_at) VALUES {}",
            crate::db::values_list(chunk.len(), 6, 1)
        );
        let sql = crate::db::positional(tx, sql);
        let mut q = sqlx::query(&sql);
        for c in chunk {
            q = q.bind(programme_id).bind(c.resident_id).bind(c.day).bind(c.streak).bind(c.points).bind(c.at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The resident's latest check-in in the programme.
pub async fn last_checkin(tx: &mut Tx, programme_id: i64, resident_id: i64) -> DbResult<Option<CheckinRow>> {
    let row = sqlx::query_as(
        "SELECT day, streak FROM checkins WHERE programme_id = $1 AND resident_id = $2 ORDER BY day DESC LIMIT 1",
    )
    .bind(programme_id)
    .bind(resident_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row)
}

/// Records a check-in for the day unless there is one; `false` when there was.
pub async fn insert_checkin(
    tx: &mut Tx,
    programme_id: i64,
    resident_id: i64,
    day: i64,
    streak: i64,
    points: i64,
    now: i64,
) -> DbResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO checkins (programme_id, resident_id, day, streak, points, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (programme_id, resident_id, day) DO NOTHING RETURNING id",
    )
    .bind(programme_id)
    .bind(resident_id)
    .bind(day)
    .bind(streak)
    .bind(points)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// The check-in of a given day, if any.
pub async fn checkin_on(tx: &mut Tx, programme_id: i64, resident_id: i64, day: i64) -> DbResult<Option<CheckinRow>> {
    let row =
        sqlx::query_as("SELECT day, streak FROM checkins WHERE programme_id = $1 AND resident_id = $2 AND day = $3")
            .bind(programme_id)
            .bind(resident_id)
            .bind(day)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row)
}

/// Residents with an account in the programme, newest first.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MemberRow {
    pub resident_id: i64,
    pub unionid: Option<String>,
    pub invite_code: String,
    pub balance: i64,
    pub joined_at: i64,
}

pub async fn members(pool: &AnyPool, programme_id: i64, page: PageRequest) -> DbResult<Page<MemberRow>> {
    let items = sqlx::query_as(
        "SELECT r.id AS resident_id, r.unionid, r.invite_code, a.balance, a.created_at AS joined_at \
         FROM points_accounts a JOIN residents r ON r.id = a.resident_id \
         WHERE a.programme_id = $1 ORDER BY a.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(programme_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM points_accounts WHERE programme_id = $1")
        .bind(programme_id)
        .fetch_one(pool)
        .await?;
    Ok(Page { items, total })
}

/// A resident's account in one programme, with whose programme it is.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HoldingRow {
    pub programme_id: i64,
    pub company_id: i64,
    pub company_name: String,
    pub programme_name: String,
    pub balance: i64,
}

/// Every programme a resident holds points in.
pub async fn holdings(pool: &AnyPool, resident_id: i64) -> DbResult<Vec<HoldingRow>> {
    let rows = sqlx::query_as(
        "SELECT p.id AS programme_id, p.company_id, o.name AS company_name, p.name AS programme_name, a.balance \
         FROM points_accounts a JOIN points_programmes p ON p.id = a.programme_id JOIN orgs o ON o.id = p.company_id \
         WHERE a.resident_id = $1 ORDER BY p.id",
    )
    .bind(resident_id)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// How many purchase rows a resident has in a company's programme.
pub async fn purchase_count<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    company_id: i64,
    resident_id: i64,
) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM points_ledger l JOIN points_programmes p ON p.id = l.programme_id \
         WHERE p.company_id = $1 AND l.resident_id = $2 AND l.source = 'purchase'",
    )
    .bind(company_id)
    .bind(resident_id)
    .fetch_one(ex)
    .await?;
    Ok(n)
}
