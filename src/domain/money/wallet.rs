//! The wallet: a resident's balance in fen, funded by red packets, rewards and failed payouts,
//! drained by withdrawals to WeChat change through the `transfer` payout channel.

use crate::codes::ErrorCode;
use crate::config::PayoutSettings;
use crate::db::money::payouts::{PayoutChannel, PayoutRow};
use crate::db::money::wallet::{self as store, WalletEntry};
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::community::sessions::ResidentActor;
use crate::domain::money::payouts::{self, Display, Payer, Queue};
use crate::domain::operators::access::PLATFORM_ORG_ID;
use crate::domain::{DomainError, DomainResult};

/// The operation name withdrawals are recorded under in the idempotency store.
const WITHDRAW: &str = "wallet.withdraw";

pub async fn balance(db: &Db, me: &ResidentActor) -> DomainResult<i64> {
    Ok(store::balance(db.reader(), me.resident_id).await?)
}

pub async fn history(db: &Db, me: &ResidentActor, page: PageRequest) -> DomainResult<Page<WalletEntry>> {
    Ok(store::history(db.reader(), me.resident_id, page).await?)
}

/// Money credited to a resident's wallet.
#[derive(Clone, Copy, Debug)]
pub struct Credit<'a> {
    /// What it is for: `task`, …
    pub source: &'a str,
    /// Credited once per reference.
    pub reference: &'a str,
    pub amount_fen: i64,
    /// Who funds it.
    pub owner_org_id: Option<i64>,
    pub remark: Option<&'a str>,
}

/// Credits the wallet in the caller's transaction, once per reference.
pub async fn credit(tx: &mut Tx, resident_id: i64, c: &Credit<'_>, now: i64) -> DomainResult<WalletEntry> {
    let Credit { source, reference, amount_fen, owner_org_id, remark } = *c;
    if let Some(existing) = store::entry_by_reference(tx, reference).await? {
        return Ok(existing);
    }
    let entry =
        store::NewEntry { kind: "credit", source, reference, amount_fen, owner_org_id, payout_id: None, remark };
    store::post(tx, resident_id, &entry, now)
        .await?
        .ok_or_else(|| DomainError::conflict(ErrorCode::WalletRejected, "a credit cannot lower the balance"))
}

/// A withdrawal's outcome: new, or what an earlier request with the same key got.
#[derive(Clone, Debug)]
pub enum Withdrawn {
    New(PayoutRow),
    Replayed(PayoutRow),
}

/// Moves `amount_fen` from my wallet to WeChat change: the debit and the payout commit together.
/// If the payout finally fails, the amount comes back to the wallet.
pub async fn withdraw(
    db: &Db,
    settings: &PayoutSettings,
    payer: &Payer,
    me: &ResidentActor,
    amount_fen: i64,
    idempotency_key: &str,
) -> DomainResult<Withdrawn> {
    if amount_fen < settings.withdraw_min_fen || amount_fen > settings.withdraw_max_fen {
        return Err(DomainError::invalid(
            ErrorCode::WithdrawalOutOfRange,
            format!("a withdrawal is {}..={} fen", settings.withdraw_min_fen, settings.withdraw_max_fen),
        ));
    }
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let request = amount_fen.to_string();
    if let Some(earlier) =
        db::idempotency::claim(&mut tx, me.resident_id, WITHDRAW, idempotency_key, &request, now).await?
    {
        let payout = match earlier.replayed_id(&request) {
            Some(id) => db::money::payouts::get(&mut *tx, id).await?,
            None => None,
        };
        tx.commit().await.map_err(DbError::from)?;
        return payout.map(Withdrawn::Replayed).ok_or_else(crate::domain::idempotency_key_reused);
    }
    let identities = db::community::residents::identities_of(&mut *tx, me.resident_id).await?;
    let apps = payer.apps_for(&mut tx, None).await?;
    let payee = payouts::payee(&apps, PayoutChannel::Transfer, &identities).ok().flatten().ok_or_else(|| {
        DomainError::conflict(ErrorCode::NoMiniProgramIdentity, "log in through the mini-program first")
    })?;
    let today = store::withdrawn_since(&mut tx, me.resident_id, crate::domain::beijing_day_start(now)).await?;
    if today.saturating_add(amount_fen) > settings.withdraw_daily_max_fen {
        return Err(DomainError::conflict(
            ErrorCode::WithdrawalDailyLimit,
            format!("at most {} fen a day; {} fen withdrawn today", settings.withdraw_daily_max_fen, today),
        ));
    }
    let source_ref = format!("withdrawal:{}:{}", me.resident_id, payouts::new_out_no());
    let display =
        Display { transfer_remark: "邻里余额提现".into(), act_name: "余额提现".into(), ..Display::default() };
    let queue = Queue {
        company_id: None,
        owner_org_id: Some(PLATFORM_ORG_ID),
        resident_id: me.resident_id,
        channel: PayoutChannel::Transfer,
        source: "withdrawal",
        source_ref: &source_ref,
        amount_fen,
        payee,
        display: &display,
    };
    let (mut queued, wake) = payouts::queue(&mut tx, payer, &[queue], now).await?;
    let payout = queued.pop().ok_or_else(|| DomainError::Upstream("the payout was not queued".into()))?;
    let reference = format!("withdrawal:{}", payout.id);
    let debit = store::NewEntry {
        kind: "withdraw",
        source: "withdrawal",
        reference: &reference,
        amount_fen: -amount_fen,
        owner_org_id: None,
        payout_id: Some(payout.id),
        remark: None,
    };
    if store::post(&mut tx, me.resident_id, &debit, now).await?.is_none() {
        return Err(DomainError::conflict(ErrorCode::InsufficientBalance, "the balance is less than the amount"));
    }
    store::insert_withdrawal(&mut tx, me.resident_id, amount_fen, payout.id, now).await?;
    db::idempotency::record_response(&mut tx, me.resident_id, WITHDRAW, idempotency_key, &payout.id.to_string())
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    wake.send();
    Ok(Withdrawn::New(payout))
}
