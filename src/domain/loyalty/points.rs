//! Points: one programme per property company, its earn rules, and the append-only ledger.
//!
//! Every movement is one ledger row with a kind, a source and a reference unique in the
//! programme, so posting the same reference again has no second effect. The account's balance
//! moves in the same transaction as its row is appended, and never below zero, so the balance
//! always equals the sum of the account's rows.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::db::community::orgs::OrgKind;
use crate::db::community::orgs::OrgRow;
use crate::db::loyalty::points::{
    self as store, LedgerFilter, LedgerRow, LedgerTotals, MemberRow, NewLedgerRow, ProgrammeFields, ProgrammeRow,
};
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::operators::access::{Actor, Role};
use crate::domain::{operators::audit, required_text, DomainError, DomainResult};

/// Mainland China's offset from UTC, in minutes; it has no daylight saving.
pub const DEFAULT_UTC_OFFSET_MINUTES: i64 = 8 * 60;
const DAY_MS: i64 = 86_400_000;

pub use crate::db::loyalty::points::{PointsKind as Kind, PointsSource as Source};

/// A bonus on a day of a check-in streak: on day `day` of the streak, or on every multiple of it
/// when `repeat` is set (e.g. +20 on every 7th consecutive day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreakBonus {
    pub day: i64,
    pub points: i64,
    #[serde(default)]
    pub repeat: bool,
}

/// The total bonus a streak of `streak` days earns today.
pub fn streak_bonus(bonuses: &[StreakBonus], streak: i64) -> i64 {
    bonuses
        .iter()
        .filter(|b| b.day > 0 && (streak == b.day || (b.repeat && streak % b.day == 0)))
        .map(|b| b.points)
        .sum()
}

/// A programme's rules, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub name: String,
    pub utc_offset_minutes: i64,
    pub follow_points: i64,
    pub checkin_points: i64,
    pub streak_bonuses: Vec<StreakBonus>,
    pub referral_points: i64,
    pub checkin_keyword: String,
    pub checkin_menu_key: String,
    pub default_reply: Option<String>,
    /// Points per yuan paid at the company's merchants.
    pub points_per_yuan: i64,
    /// A resident's first purchase at a merchant earns this percent of the usual points.
    pub first_purchase_percent: i64,
}

impl Rules {
    /// The rules a programme starts with: +10 for the first follow, +5 a day for checking in,
    /// +20 more on every 7th consecutive day, +20 to the inviter of a new follower.
    pub fn defaults(company_name: &str) -> Rules {
        Rules {
            name: format!("{company_name} 积分"),
            utc_offset_minutes: DEFAULT_UTC_OFFSET_MINUTES,
            follow_points: 10,
            checkin_points: 5,
            streak_bonuses: vec![StreakBonus { day: 7, points: 20, repeat: true }],
            referral_points: 20,
            checkin_keyword: "签到".to_owned(),
            checkin_menu_key: "CHECKIN".to_owned(),
            default_reply: None,
            points_per_yuan: 1,
            first_purchase_percent: 200,
        }
    }

    pub fn of(row: &ProgrammeRow) -> Rules {
        Rules {
            name: row.name.clone(),
            utc_offset_minutes: row.utc_offset_minutes,
            follow_points: row.follow_points,
            checkin_points: row.checkin_points,
            streak_bonuses: serde_json::from_str(&row.streak_bonuses).unwrap_or_default(),
            referral_points: row.referral_points,
            checkin_keyword: row.checkin_keyword.clone(),
            checkin_menu_key: row.checkin_menu_key.clone(),
            default_reply: row.default_reply.clone(),
            points_per_yuan: row.points_per_yuan,
            first_purchase_percent: row.first_purchase_percent,
        }
    }

    /// Checks the rules and turns them into what is stored.
    pub fn validated(self) -> DomainResult<ProgrammeFields> {
        let invalid = |m: &str| DomainError::invalid(ErrorCode::InvalidRules, m.to_owned());
        if !(-12 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(invalid("utc_offset_minutes must be between -720 and 840"));
        }
        for (name, v) in [
            ("follow_points", self.follow_points),
            ("checkin_points", self.checkin_points),
            ("referral_points", self.referral_points),
        ] {
            if !(0..=1_000_000).contains(&v) {
                return Err(DomainError::invalid(
                    ErrorCode::InvalidRules,
                    format!("{name} must be between 0 and 1000000"),
                ));
            }
        }
        if !(0..=1000).contains(&self.points_per_yuan) || !(100..=1000).contains(&self.first_purchase_percent) {
            return Err(invalid("points_per_yuan must be 0..=1000 and first_purchase_percent 100..=1000"));
        }
        if self.streak_bonuses.len() > 20 {
            return Err(invalid("at most 20 streak bonuses"));
        }
        for b in &self.streak_bonuses {
            if !(1..=366).contains(&b.day) || !(0..=1_000_000).contains(&b.points) {
                return Err(invalid("a streak bonus needs a day in 1..=366 and points in 0..=1000000"));
            }
        }
        Ok(ProgrammeFields {
            name: required_text("name", &self.name, 64)?,
            utc_offset_minutes: self.utc_offset_minutes,
            follow_points: self.follow_points,
            checkin_points: self.checkin_points,
            streak_bonuses: serde_json::to_string(&self.streak_bonuses).unwrap_or_else(|_| "[]".to_owned()),
            referral_points: self.referral_points,
            checkin_keyword: required_text("checkin_keyword", &self.checkin_keyword, 16)?,
            checkin_menu_key: required_text("checkin_menu_key", &self.checkin_menu_key, 128)?,
            default_reply: crate::domain::optional_text("default_reply", self.default_reply.as_deref(), 600)?,
            points_per_yuan: self.points_per_yuan,
            first_purchase_percent: self.first_purchase_percent,
        })
    }
}

/// The local day number (days since 1970-01-01 in the programme's time zone) of an instant.
/// Saturating: an instant can come from a push's `CreateTime`, and an absurd one must not wrap.
pub fn local_day(at_ms: i64, utc_offset_minutes: i64) -> i64 {
    // Saturating: an instant near the ends of i64 (a push's CreateTime) is a far day, not a wrap.
    at_ms.saturating_add(utc_offset_minutes.saturating_mul(60_000)).div_euclid(DAY_MS)
}

/// The company's programme, created with the default rules if it has none yet.
pub async fn programme_for(tx: &mut Tx, company: &OrgRow, now: i64) -> DomainResult<ProgrammeRow> {
    let fields = Rules::defaults(&company.name).validated()?;
    Ok(store::create_programme_if_absent(tx, company.id, &fields, now).await?)
}

/// One movement to post.
#[derive(Clone, Debug)]
pub struct Posting<'a> {
    pub kind: Kind,
    pub source: Source,
    pub reference: String,
    pub amount: i64,
    pub operator: Option<&'a Actor>,
    pub remark: Option<String>,
}

/// What posting did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// A new row.
    New(LedgerRow),
    /// The reference was posted before, with the same resident and amount: that row.
    Replayed(LedgerRow),
}

impl Posted {
    pub fn row(&self) -> &LedgerRow {
        match self {
            Posted::New(r) | Posted::Replayed(r) => r,
        }
    }
}

/// Posts one movement to the resident's account in the programme (opening it if needed).
/// Refuses to take the balance below zero; a reference already used for another movement is a
/// conflict.
pub async fn post(tx: &mut Tx, programme_id: i64, resident_id: i64, p: &Posting<'_>, now: i64) -> DomainResult<Posted> {
    if p.amount == 0 {
        return Err(DomainError::invalid(ErrorCode::InvalidAmount, "a posting moves at least one point"));
    }
    let account = store::open_account(tx, programme_id, resident_id, now).await?;
    let Some(balance_after) = store::move_balance(tx, account.id, p.amount, now).await? else {
        return Err(DomainError::invalid(
            ErrorCode::InsufficientPoints,
            format!("the balance is {} points, less than {}", account.balance, -p.amount),
        ));
    };
    let row = NewLedgerRow {
        programme_id,
        account_id: account.id,
        resident_id,
        kind: p.kind,
        source: p.source,
        reference: &p.reference,
        amount: p.amount,
        balance_after,
        operator_key_id: p.operator.and_then(|a| a.key_id),
        operator: p.operator.map(|a| a.label.as_str()),
        remark: p.remark.as_deref(),
        created_at: now,
    };
    if let Some(new) = store::append(tx, &row).await? {
        return Ok(Posted::New(new));
    }
    // The reference exists: undo the move (the account row is still locked by this transaction).
    store::move_balance(tx, account.id, -p.amount, now).await?;
    let existing = store::by_reference(tx, programme_id, &p.reference).await?.ok_or(DbError::UniqueViolation)?;
    if existing.resident_id == resident_id && existing.amount == p.amount {
        Ok(Posted::Replayed(existing))
    } else {
        Err(DomainError::conflict(
            ErrorCode::ReferenceUsed,
            format!("reference {:?} was already used for another posting", p.reference),
        ))
    }
}

/// What a check-in did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkin {
    /// The resident had already checked in today: nothing was credited.
    pub already: bool,
    pub streak: i64,
    /// Points credited now (0 when `already`).
    pub points: i64,
    /// Of which the streak bonus.
    pub bonus: i64,
    pub balance: i64,
}

impl Checkin {
    /// What a resident is told after a check-in (the official account's reply, the
    /// mini-program's message).
    pub fn message(&self) -> String {
        if self.already {
            format!("今天已经签到过了，明天再来吧～已连续签到 {} 天，当前积分 {}。", self.streak, self.balance)
        } else if self.bonus > 0 {
            format!(
                "签到成功！获得 {} 积分（含连续签到 {} 天奖励 {}），当前积分 {}。",
                self.points, self.streak, self.bonus, self.balance
            )
        } else {
            format!("签到成功！获得 {} 积分，已连续签到 {} 天，当前积分 {}。", self.points, self.streak, self.balance)
        }
    }

    /// The rule of a check-in on `day`, the one home of the streak arithmetic: `known` holds the
    /// resident's check-ins that matter as `(day, streak)` — the one on `day` if any, and the
    /// latest — in any order. Checked in that day already: nothing more. Otherwise the streak
    /// goes on from yesterday's or starts again, and earns the programme's points plus the
    /// bonus of that streak length. The balance is the caller's to fill in once credited.
    pub fn on_day(rules: &Rules, known: &[(i64, i64)], day: i64) -> Self {
        if let Some(&(_, streak)) = known.iter().find(|(d, _)| *d == day) {
            return Self { already: true, streak, points: 0, bonus: 0, balance: 0 };
        }
        let streak = match known.iter().max_by_key(|(d, _)| *d) {
            Some(&(last, streak)) if day.checked_sub(1) == Some(last) => streak.saturating_add(1),
            _ => 1,
        };
        let bonus = streak_bonus(&rules.streak_bonuses, streak);
        Self { already: false, streak, points: rules.checkin_points.saturating_add(bonus), bonus, balance: 0 }
    }

    /// The ledger reference of a resident's check-in on a day: one credit per resident and day.
    pub fn reference(resident_id: i64, day: i64) -> String {
        format!("checkin:{resident_id}:{day}")
    }

    /// The ledger remark of a check-in that earned a streak bonus.
    pub fn remark(&self) -> Option<String> {
        (self.bonus > 0).then(|| format!("连续签到 {} 天奖励 {}", self.streak, self.bonus))
    }
}

/// Checks the resident in for the programme's current local day: once a day, whatever the
/// channel (OA menu, keyword, mini-program) and however many requests arrive at once.
pub async fn check_in(tx: &mut Tx, programme: &ProgrammeRow, resident_id: i64, now: i64) -> DomainResult<Checkin> {
    let rules = Rules::of(programme);
    let day = local_day(now, rules.utc_offset_minutes);
    let account = store::open_account(tx, programme.id, resident_id, now).await?;
    let today = store::checkin_on(tx, programme.id, resident_id, day).await?;
    let last = match &today {
        Some(_) => None,
        None => store::last_checkin(tx, programme.id, resident_id).await?,
    };
    let known: Vec<(i64, i64)> = today.iter().chain(last.iter()).map(|c| (c.day, c.streak)).collect();
    let mut done = Checkin::on_day(&rules, &known, day);
    if done.already {
        done.balance = account.balance;
        return Ok(done);
    }
    if !store::insert_checkin(tx, programme.id, resident_id, day, done.streak, done.points, now).await? {
        // A concurrent request checked in first.
        let today = store::checkin_on(tx, programme.id, resident_id, day).await?;
        let account = store::open_account(tx, programme.id, resident_id, now).await?;
        return Ok(Checkin {
            already: true,
            streak: today.map_or(done.streak, |c| c.streak),
            points: 0,
            bonus: 0,
            balance: account.balance,
        });
    }
    done.balance = account.balance;
    if done.points > 0 {
        let posting = Posting {
            kind: Kind::Earn,
            source: Source::Checkin,
            reference: Checkin::reference(resident_id, day),
            amount: done.points,
            operator: None,
            remark: done.remark(),
        };
        done.balance = post(tx, programme.id, resident_id, &posting, now).await?.row().balance_after;
    }
    Ok(done)
}

// ----- the operator side -------------------------------------------------------------------

pub(crate) async fn company_in_reach<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    ex: E,
    actor: &Actor,
    company_id: i64,
) -> DomainResult<OrgRow> {
    let org = db::community::orgs::get(ex, company_id)
        .await?
        .filter(|o| actor.reaches(&o.path) && o.kind == OrgKind::Company);
    org.ok_or(DomainError::NotFound("company"))
}

async fn programme_in_reach(db: &Db, actor: &Actor, company_id: i64) -> DomainResult<ProgrammeRow> {
    company_in_reach(db.reader(), actor, company_id).await?;
    store::programme_of(db.reader(), company_id).await?.ok_or(DomainError::NotFound("points programme"))
}

pub async fn get_programme(db: &Db, actor: &Actor, company_id: i64) -> DomainResult<ProgrammeRow> {
    programme_in_reach(db, actor, company_id).await
}

/// Sets the company's earn rules, creating its programme if needed. Admins only.
pub async fn configure(db: &Db, actor: &Actor, company_id: i64, rules: Rules) -> DomainResult<ProgrammeRow> {
    let fields = rules.validated()?;
    let mut tx = db.begin().await?;
    let company = company_in_reach(&mut *tx, actor, company_id).await?;
    actor.require(Role::Admin)?;
    let before = store::programme_of(&mut *tx, company_id).await?;
    let now = db::now_ms();
    let current = match &before {
        Some(p) => p.clone(),
        None => store::create_programme_if_absent(&mut tx, company_id, &fields, now).await?,
    };
    let after = store::update_programme(&mut tx, current.id, &fields, now).await?;
    audit::record(
        &mut tx,
        actor,
        &company,
        "points.programme.configure",
        ("points_programme", after.id),
        (before.as_ref(), Some(&after)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Issues points to a resident (positive amount, kind `issue`) or takes them back (negative,
/// kind `adjust`), with a remark, idempotent by `reference`. Operators and admins.
pub async fn adjust(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    resident_id: i64,
    amount: i64,
    reference: &str,
    remark: &str,
) -> DomainResult<Posted> {
    let reference = required_text("reference", reference, 64)?;
    let remark = required_text("remark", remark, 200)?;
    let programme = programme_in_reach(db, actor, company_id).await?;
    actor.require(Role::Operator)?;
    if amount == 0 || amount.unsigned_abs() > 100_000_000 {
        return Err(DomainError::invalid(
            ErrorCode::InvalidAmount,
            "amount must be non-zero and at most 100000000 either way",
        ));
    }
    let mut tx = db.begin().await?;
    // Only residents who belong to this programme can be credited.
    store::account(&mut *tx, programme.id, resident_id).await?.ok_or(DomainError::NotFound("resident"))?;
    let company = company_in_reach(&mut *tx, actor, company_id).await?;
    let posting = Posting {
        kind: if amount > 0 { Kind::Issue } else { Kind::Adjust },
        source: Source::Operator,
        reference: format!("operator:{reference}"),
        amount,
        operator: Some(actor),
        remark: Some(remark),
    };
    let posted = post(&mut tx, programme.id, resident_id, &posting, db::now_ms()).await?;
    if let Posted::New(row) = &posted {
        audit::record(&mut tx, actor, &company, "points.adjust", ("points_ledger", row.id), (None::<&()>, Some(row)))
            .await?;
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(posted)
}

/// The programme's ledger, filtered, newest first, with totals. Any role.
pub async fn ledger(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    mut filter: LedgerFilter,
    page: PageRequest,
) -> DomainResult<(Page<LedgerRow>, LedgerTotals)> {
    let programme = programme_in_reach(db, actor, company_id).await?;
    filter.programme_id = programme.id;
    Ok(store::list(db.reader(), &filter, page).await?)
}

/// Residents with an account in the company's programme, with balances. Any role.
pub async fn members(db: &Db, actor: &Actor, company_id: i64, page: PageRequest) -> DomainResult<Page<MemberRow>> {
    let programme = programme_in_reach(db, actor, company_id).await?;
    Ok(store::members(db.reader(), programme.id, page).await?)
}

/// One member's balance and identities.
pub async fn member(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    resident_id: i64,
) -> DomainResult<(crate::db::community::residents::ResidentRow, i64, Vec<crate::db::community::residents::IdentityRow>)>
{
    let programme = programme_in_reach(db, actor, company_id).await?;
    let account =
        store::account(db.reader(), programme.id, resident_id).await?.ok_or(DomainError::NotFound("resident"))?;
    let resident = crate::db::community::residents::get(db.reader(), resident_id)
        .await?
        .ok_or(DomainError::NotFound("resident"))?;
    let identities = crate::db::community::residents::identities_of(db.reader(), resident_id).await?;
    Ok((resident, account.balance, identities))
}

/// Adds a campaign: items of `category` bought in [starts_at, ends_at) earn `percent` of the
/// usual purchase points (200 = double). Operators and admins; audited.
pub async fn add_multiplier(
    db: &Db,
    actor: &Actor,
    company_id: i64,
    category: &str,
    percent: i64,
    starts_at: i64,
    ends_at: i64,
) -> DomainResult<crate::db::retail::orders::MultiplierRow> {
    let category = required_text("category", category, 32)?;
    if !(0..=1000).contains(&percent) || starts_at >= ends_at {
        return Err(DomainError::invalid(
            ErrorCode::InvalidMultiplier,
            "percent must be 0..=1000 and starts_at before ends_at",
        ));
    }
    let mut tx = db.begin().await?;
    let company = company_in_reach(&mut *tx, actor, company_id).await?;
    actor.require(Role::Operator)?;
    // A campaign may be set up before the company's first purchase: the programme starts here.
    let programme = programme_for(&mut tx, &company, db::now_ms()).await?;
    let m = crate::db::retail::orders::insert_multiplier(
        &mut tx,
        programme.id,
        &category,
        percent,
        starts_at,
        ends_at,
        db::now_ms(),
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        &company,
        "points.multiplier.create",
        ("points_multiplier", m.id),
        (None::<&()>, Some(&m)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(m)
}

pub async fn multipliers(
    db: &Db,
    actor: &Actor,
    company_id: i64,
) -> DomainResult<Vec<crate::db::retail::orders::MultiplierRow>> {
    let programme = programme_in_reach(db, actor, company_id).await?;
    Ok(crate::db::retail::orders::multipliers(db.reader(), programme.id).await?)
}

pub async fn remove_multiplier(db: &Db, actor: &Actor, company_id: i64, id: i64) -> DomainResult<()> {
    let programme = programme_in_reach(db, actor, company_id).await?;
    actor.require(Role::Operator)?;
    let mut tx = db.begin().await?;
    let company = company_in_reach(&mut *tx, actor, company_id).await?;
    if !crate::db::retail::orders::delete_multiplier(&mut tx, programme.id, id).await? {
        return Err(DomainError::NotFound("multiplier"));
    }
    audit::record(
        &mut tx,
        actor,
        &company,
        "points.multiplier.delete",
        ("points_multiplier", id),
        (None::<&()>, None::<&()>),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

// ----- the resident side ---------------------------------------------------------------------

/// Checks a resident in from the mini-program: the same rules and the same once-a-day as the
/// official account, in the company's programme.
pub async fn check_in_resident(db: &Db, resident_id: i64, company_id: i64) -> DomainResult<Checkin> {
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let company = db::community::orgs::get(&mut *tx, company_id)
        .await?
        .filter(|o| o.kind == OrgKind::Company && o.archived_at.is_none())
        .ok_or(DomainError::NotFound("company"))?;
    let programme = programme_for(&mut tx, &company, now).await?;
    let done = check_in(&mut tx, &programme, resident_id, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(done)
}

/// A resident's own ledger in a company's programme.
pub async fn my_ledger(
    db: &Db,
    resident_id: i64,
    company_id: i64,
    mut filter: LedgerFilter,
    page: PageRequest,
) -> DomainResult<(Page<LedgerRow>, LedgerTotals)> {
    let programme =
        store::programme_of(db.reader(), company_id).await?.ok_or(DomainError::NotFound("points account"))?;
    store::account(db.reader(), programme.id, resident_id).await?.ok_or(DomainError::NotFound("points account"))?;
    filter.programme_id = programme.id;
    filter.resident_id = Some(resident_id);
    filter.operator_key_id = None;
    Ok(store::list(db.reader(), &filter, page).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_turn_at_local_midnight() {
        // 2026-11-22 15:59:59.999 UTC is 23:59:59.999 in Shanghai; one ms later is the next day.
        let before = 1_795_363_199_999; // 2026-11-22T15:59:59.999Z
        assert_eq!(local_day(before + 1, 480), local_day(before, 480) + 1);
        assert_eq!(local_day(before, 0), local_day(before + 1, 0));
        assert_eq!(local_day(-1, 0), -1, "days before 1970 floor, not truncate");
    }

    proptest::proptest! {
        /// A push's CreateTime is the sender's number: any i64 at any offset is a day, in order.
        #[test]
        fn local_days_of_any_instant_are_in_order(at in proptest::prelude::any::<i64>(), offset in -720i64..=840) {
            let day = local_day(at, offset);
            proptest::prop_assert!(local_day(at.saturating_add(1), offset) >= day);
        }
    }

    #[test]
    fn local_days_at_the_ends_of_i64_saturate() {
        assert_eq!(local_day(i64::MAX, 840), i64::MAX.div_euclid(DAY_MS));
        assert_eq!(local_day(i64::MIN, -720), i64::MIN.div_euclid(DAY_MS));
        assert_eq!(local_day(i64::MAX, i64::MAX), i64::MAX.div_euclid(DAY_MS));
    }

    #[test]
    fn a_checkin_continues_yesterdays_streak_and_is_once_a_day() {
        let rules = Rules::defaults("Acme");
        let fresh = Checkin::on_day(&rules, &[], 100);
        assert_eq!((fresh.already, fresh.streak, fresh.points, fresh.bonus), (false, 1, 5, 0));
        // The order of what is known does not matter; the latest day decides the streak.
        for known in [[(99, 6), (97, 4)], [(97, 4), (99, 6)]] {
            let seventh = Checkin::on_day(&rules, &known, 100);
            assert_eq!((seventh.already, seventh.streak, seventh.points, seventh.bonus), (false, 7, 25, 20));
            assert_eq!(seventh.remark().as_deref(), Some("连续签到 7 天奖励 20"));
        }
        let again = Checkin::on_day(&rules, &[(100, 3), (99, 2)], 100);
        assert_eq!((again.already, again.streak, again.points, again.bonus), (true, 3, 0, 0));
        assert_eq!(Checkin::on_day(&rules, &[(98, 9)], 100).streak, 1, "a missed day starts again");
        assert_eq!(Checkin::on_day(&rules, &[(101, 9)], 100).streak, 1, "a later day is no yesterday");
        assert_eq!(Checkin::reference(42, 100), "checkin:42:100");
        assert_eq!(fresh.remark(), None);
    }

    #[test]
    fn a_checkin_at_the_edges_of_i64_does_not_overflow() {
        let mut rules = Rules::defaults("Acme");
        assert_eq!(Checkin::on_day(&rules, &[(i64::MAX, 3)], i64::MIN).streak, 1);
        assert_eq!(Checkin::on_day(&rules, &[(i64::MAX - 1, i64::MAX)], i64::MAX).streak, i64::MAX);
        rules.checkin_points = i64::MAX;
        assert_eq!(Checkin::on_day(&rules, &[(6, 6)], 7).points, i64::MAX);
    }

    #[test]
    fn streak_bonuses_apply_on_their_days() {
        let b = [StreakBonus { day: 7, points: 20, repeat: true }, StreakBonus { day: 30, points: 100, repeat: false }];
        assert_eq!(streak_bonus(&b, 6), 0);
        assert_eq!(streak_bonus(&b, 7), 20);
        assert_eq!(streak_bonus(&b, 14), 20);
        assert_eq!(streak_bonus(&b, 30), 100);
        assert_eq!(streak_bonus(&b, 60), 0);
        assert_eq!(streak_bonus(&b, 70), 20);
    }

    #[test]
    fn default_rules_are_valid_and_bad_ones_refused() {
        assert!(Rules::defaults("Acme").validated().is_ok());
        let mut r = Rules::defaults("Acme");
        r.checkin_points = -1;
        assert!(r.validated().is_err());
        let mut r = Rules::defaults("Acme");
        r.streak_bonuses = vec![StreakBonus { day: 0, points: 1, repeat: true }];
        assert!(r.validated().is_err());
    }
}
