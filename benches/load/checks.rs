//! The invariants, read straight from the database after a scenario: what the figures are worth
//! depends on them. Each is printed PASS or FAIL; any FAIL makes the run exit non-zero.

use sqlx::AnyPool;

pub struct Check {
    pub scenario: String,
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

#[derive(Default)]
pub struct Checks {
    pub all: Vec<Check>,
}

impl Checks {
    pub fn add(&mut self, scenario: &str, name: &str, pass: bool, detail: String) {
        println!("  {} {name}: {detail}", if pass { "PASS" } else { "FAIL" });
        self.all.push(Check { scenario: scenario.to_owned(), name: name.to_owned(), pass, detail });
    }

    /// `got == want`, said so.
    pub fn equal(&mut self, scenario: &str, name: &str, got: i64, want: i64) {
        let detail = if got == want { format!("{got}") } else { format!("{got}, expected {want}") };
        self.add(scenario, name, got == want, detail);
    }

    pub fn failures(&self) -> usize {
        self.all.iter().filter(|c| !c.pass).count()
    }
}

/// One number from the database.
pub async fn scalar(pool: &AnyPool, sql: &str, binds: &[i64]) -> anyhow::Result<i64> {
    let mut q = sqlx::query_as::<_, (i64,)>(sql);
    for b in binds {
        q = q.bind(*b);
    }
    Ok(q.fetch_one(pool).await?.0)
}

/// Every points account and every wallet is the sum of its ledger rows; none is negative.
pub async fn ledgers(checks: &mut Checks, scenario: &str, pool: &AnyPool) -> anyhow::Result<()> {
    let off = linli::db::loyalty::points::unbalanced_accounts(pool).await?;
    let accounts = scalar(pool, "SELECT COUNT(*) FROM points_accounts", &[]).await?;
    checks.add(
        scenario,
        "points balances = sums of their ledger rows",
        off.is_empty(),
        if off.is_empty() {
            format!("all {accounts} accounts")
        } else {
            format!("{} of {accounts} accounts differ, e.g. {:?}", off.len(), &off[..off.len().min(5)])
        },
    );
    let wallets = scalar(pool, "SELECT COUNT(*) FROM wallet_accounts", &[]).await?;
    let unbalanced = scalar(
        pool,
        "SELECT COUNT(*) FROM wallet_accounts a WHERE a.balance_fen <> \
         (SELECT CAST(COALESCE(SUM(l.amount_fen), 0) AS BIGINT) FROM wallet_ledger l WHERE l.resident_id = a.resident_id)",
        &[],
    )
    .await?;
    checks.add(
        scenario,
        "wallet balances = sums of their ledger rows",
        unbalanced == 0,
        if unbalanced == 0 { format!("all {wallets} wallets") } else { format!("{unbalanced} of {wallets} differ") },
    );
    let negative = scalar(
        pool,
        "SELECT (SELECT COUNT(*) FROM points_accounts WHERE balance < 0) \
         + (SELECT COUNT(*) FROM wallet_accounts WHERE balance_fen < 0)",
        &[],
    )
    .await?;
    checks.equal(scenario, "negative balances", negative, 0);
    Ok(())
}

/// What a scenario asked of a red packet or a coupon template, and what it was answered.
pub struct Expect {
    /// The campaign or template.
    pub id: i64,
    /// Shares, or stock.
    pub supply: i64,
    /// Residents who asked.
    pub demand: i64,
    /// 201 answers seen by the client.
    pub answered_201: i64,
}

/// A campaign granted exactly its shares (when demand exceeded them), each resident at most
/// once, and the granted amounts sum to the total to the fen.
pub async fn red_packet(
    checks: &mut Checks,
    scenario: &str,
    pool: &AnyPool,
    e: &Expect,
    total_fen: i64,
) -> anyhow::Result<()> {
    let (campaign, shares, demand, answered_201) = (e.id, e.supply, e.demand, e.answered_201);
    let grabs = scalar(pool, "SELECT COUNT(*) FROM rp_grabs WHERE campaign_id = $1", &[campaign]).await?;
    let residents =
        scalar(pool, "SELECT COUNT(DISTINCT resident_id) FROM rp_grabs WHERE campaign_id = $1", &[campaign]).await?;
    let sum = scalar(
        pool,
        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM rp_grabs WHERE campaign_id = $1",
        &[campaign],
    )
    .await?;
    let granted = scalar(pool, "SELECT granted FROM rp_campaigns WHERE id = $1", &[campaign]).await?;
    if demand >= shares {
        checks.equal(scenario, "grants = shares", grabs, shares);
        checks.equal(scenario, "granted amounts sum to the total (fen)", sum, total_fen);
    } else {
        checks.add(scenario, "grants ≤ shares", grabs <= shares, format!("{grabs} of {shares}"));
        checks.add(scenario, "granted amounts ≤ total (fen)", sum <= total_fen, format!("{sum} of {total_fen}"));
    }
    checks.equal(scenario, "nobody twice (distinct residents = grants)", residents, grabs);
    checks.equal(scenario, "campaign's granted counter = grants", granted, grabs);
    checks.equal(scenario, "201 answers = grants", answered_201, grabs);
    Ok(())
}

/// A template gave out no more than its stock (all of it when demand exceeded it), and nobody
/// more than the per-resident limit.
pub async fn coupon(
    checks: &mut Checks,
    scenario: &str,
    pool: &AnyPool,
    e: &Expect,
    per_resident_limit: i64,
) -> anyhow::Result<()> {
    let (template, stock, demand) = (e.id, e.supply, e.demand);
    let claimed = scalar(pool, "SELECT COUNT(*) FROM coupons WHERE template_id = $1", &[template]).await?;
    let left = scalar(pool, "SELECT stock_left FROM coupon_templates WHERE id = $1", &[template]).await?;
    if demand >= stock {
        checks.equal(scenario, "claims = stock (demand exceeded it)", claimed, stock);
    } else {
        checks.add(scenario, "claims ≤ stock", claimed <= stock, format!("{claimed} of {stock}"));
    }
    checks.equal(scenario, "stock left + claims = stock", left + claimed, stock);
    let over = scalar(
        pool,
        "SELECT COUNT(*) FROM (SELECT resident_id FROM coupons WHERE template_id = $1 \
         GROUP BY resident_id HAVING COUNT(*) > $2) o",
        &[template, per_resident_limit],
    )
    .await?;
    checks.equal(scenario, &format!("residents over the limit of {per_resident_limit}"), over, 0);
    checks.equal(scenario, "201 answers = claims", e.answered_201, claimed);
    Ok(())
}

/// Check-in counts, to compare before and after.
pub struct CheckinCounts {
    pub checkins: i64,
    pub ledger_rows: i64,
    pub pushes: i64,
}

pub async fn checkin_counts(pool: &AnyPool) -> anyhow::Result<CheckinCounts> {
    Ok(CheckinCounts {
        checkins: scalar(pool, "SELECT COUNT(*) FROM checkins", &[]).await?,
        ledger_rows: scalar(pool, "SELECT COUNT(*) FROM points_ledger WHERE source = 'checkin'", &[]).await?,
        pushes: scalar(pool, "SELECT COUNT(*) FROM wechat_pushes WHERE msg_type = 'text'", &[]).await?,
    })
}

/// One check-in per resident per day, each with its ledger row; every push recorded once.
pub async fn checkins(
    checks: &mut Checks,
    scenario: &str,
    pool: &AnyPool,
    before: &CheckinCounts,
    new_checkins: Option<i64>,
    pushes_sent: i64,
) -> anyhow::Result<()> {
    let after = checkin_counts(pool).await?;
    let twice = scalar(
        pool,
        "SELECT COUNT(*) FROM (SELECT programme_id, resident_id, day FROM checkins \
         GROUP BY programme_id, resident_id, day HAVING COUNT(*) > 1) d",
        &[],
    )
    .await?;
    checks.equal(scenario, "residents checked in twice on one day", twice, 0);
    if let Some(n) = new_checkins {
        checks.equal(scenario, "new check-ins = residents who pushed 签到", after.checkins - before.checkins, n);
    }
    checks.equal(
        scenario,
        "check-in ledger rows = check-ins",
        after.ledger_rows - before.ledger_rows,
        after.checkins - before.checkins,
    );
    checks.equal(scenario, "pushes recorded once each (dedupe rows)", after.pushes - before.pushes, pushes_sent);
    Ok(())
}
