//! What WeChat Pay remembers of one merchant (one [`PayStore`] per merchant, see
//! [`super::merchants`]): its balance and the journal of its movements, the ledger of its payments
//! (red packets, v2 enterprise payments, v3 transfer bills), its notifications waiting to be
//! delivered, bill files handed out for download, which key signs for it.
//!
//! The balance changes only through [`PayStore::debit`], [`PayStore::credit_back`] and
//! [`PayStore::set_balance`], each of which also writes the movement to the journal the fund-flow
//! bill (资金账单, see [`super::bill`]) is made from.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Serialize;

use super::config::PayConfig;
use super::sign;

/// Which WeChat Pay product a payment went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayChannel {
    /// v2 `sendredpack` (现金红包).
    RedPacket,
    /// v2 `promotion/transfers` (企业付款到零钱).
    EnterprisePayment,
    /// v3 `transfer-bills` (商家转账).
    TransferBill,
}

/// Status of a payment, as WeChat names it for its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Red packet sent, not yet opened.
    Sent,
    /// Red packet opened by the user.
    Received,
    /// Red packet unclaimed for 24 h and refunded to the merchant.
    Refund,
    /// Failed for good; no money moved.
    Failed,
    /// Enterprise payment or transfer bill paid.
    Success,
    /// Transfer bill accepted, waiting for the user to confirm.
    WaitUserConfirm,
    /// Transfer bill cancelled (by the merchant, or unconfirmed in time); money returned.
    Cancelled,
    /// Transfer bill failed; money returned.
    Fail,
}

impl PaymentStatus {
    /// WeChat's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "SENT",
            Self::Received => "RECEIVED",
            Self::Refund => "REFUND",
            Self::Failed => "FAILED",
            Self::Success => "SUCCESS",
            Self::WaitUserConfirm => "WAIT_USER_CONFIRM",
            Self::Cancelled => "CANCELLED",
            Self::Fail => "FAIL",
        }
    }

    /// Whether the money is (still) with the user or on its way (counts in [`crate::MockWechat::paid_total`]).
    pub fn money_out(self) -> bool {
        matches!(self, Self::Sent | Self::Received | Self::Success)
    }
}

/// One entry of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// The merchant that made it (its `mch_id`).
    pub mch_id: String,
    /// The product.
    pub channel: PayChannel,
    /// The merchant's number: `mch_billno`, `partner_trade_no` or `out_bill_no`.
    pub bill_no: String,
    /// WeChat's number: `send_listid`, `payment_no` or `transfer_bill_no`.
    pub wechat_no: String,
    /// The appid the openid belongs to.
    pub appid: String,
    /// The payee.
    pub openid: String,
    /// Fen.
    pub amount_fen: i64,
    /// Current status.
    pub status: PaymentStatus,
    /// When WeChat accepted it, Unix seconds (mock clock).
    pub created_at: i64,
    /// Last status change, Unix seconds.
    pub updated_at: i64,
    /// Why it failed, for `FAIL` transfer bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// Request fields that re-entrant calls must repeat (name → value).
    #[serde(skip)]
    pub(crate) request: BTreeMap<String, String>,
    /// Notification URL of a transfer bill.
    #[serde(skip)]
    pub(crate) notify_url: Option<String>,
    /// Transfer bill: `package_info` for `wx.requestMerchantTransfer`.
    #[serde(skip)]
    pub(crate) package_info: Option<String>,
}

/// A v3 notification and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayNotification {
    /// The notification `id` (the same on every retry).
    pub id: String,
    /// Target URL.
    pub url: String,
    /// The bill it is about.
    pub out_bill_no: String,
    /// The signed JSON body.
    pub body: String,
    /// The decrypted `resource` (for inspection).
    pub plaintext: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// HTTP status of each attempt (`None`: no answer).
    pub results: Vec<Option<u16>>,
    /// When the next attempt is due, Unix ms; `None` once acknowledged or given up.
    pub next_attempt_ms: Option<i64>,
    /// Whether the merchant acknowledged it with 2xx.
    pub acknowledged: bool,
    /// Extra copies delivered by the duplicate-notification fault.
    pub duplicates_sent: u32,
    /// The `Wechatpay-Serial` of each attempt: the key that signed it.
    pub signed_with: Vec<String>,
}

/// One merchant's part of the pay area's state inside [`crate::state::MockState`].
pub(crate) struct PayStore {
    pub(crate) config: PayConfig,
    pub(crate) merchant_key: Option<RsaPublicKey>,
    pub(crate) wechatpay_key: Option<RsaPrivateKey>,
    /// Which key signs (starts as `config.signing`).
    pub(crate) signing: super::config::PaySigning,
    /// The platform certificates' private keys, by serial (those that parse).
    pub(crate) platform_keys: Vec<(String, RsaPrivateKey)>,
    pub(crate) balance_fen: i64,
    /// By (channel, bill number).
    pub(crate) payments: BTreeMap<(PayChannelKey, String), Payment>,
    /// In creation order.
    pub(crate) order: Vec<(PayChannelKey, String)>,
    pub(crate) notifications: Vec<PayNotification>,
    /// The counter WeChat's numbers are made from (payments, flows, notifications), shared by
    /// every merchant: WeChat's numbers are unique across merchants.
    serials: Arc<AtomicU64>,
    /// Every change of `balance_fen`, ordered by time (oldest first).
    pub(crate) movements: Vec<FundMovement>,
    /// Bill files handed out by `fundflowbill`, by download token.
    pub(crate) bill_files: BTreeMap<String, String>,
}

/// Why the merchant's balance moved: decides 业务名称 and 业务类型 of a fund-flow bill line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MovementKind {
    /// A payment left the account.
    Payout(PayChannel),
    /// A payment's money came back: red packet unopened for 24 h, transfer bill cancelled or failed.
    Refund(PayChannel),
    /// The balance was raised by the test control [`crate::MockWechat::set_pay_balance_fen`].
    Recharge,
    /// The balance was lowered by the same test control.
    Withdrawal,
}

/// One movement of the merchant's balance (one line of the fund-flow bill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FundMovement {
    /// When it was booked, Unix seconds (mock clock).
    pub(crate) at: i64,
    /// 资金流水单号, unique.
    pub(crate) flow_no: String,
    pub(crate) kind: MovementKind,
    /// The payment's WeChat number (empty for recharges and withdrawals).
    pub(crate) wechat_no: String,
    /// The payment's merchant number, 业务凭证号 (empty for recharges and withdrawals).
    pub(crate) bill_no: String,
    /// Fen, positive into the account, negative out of it.
    pub(crate) amount_fen: i64,
    /// The balance right after this movement, fen.
    pub(crate) balance_after_fen: i64,
    /// 备注.
    pub(crate) remark: String,
}

/// Orderable channel key.
pub(crate) type PayChannelKey = u8;

pub(crate) fn channel_key(channel: PayChannel) -> PayChannelKey {
    match channel {
        PayChannel::RedPacket => 0,
        PayChannel::EnterprisePayment => 1,
        PayChannel::TransferBill => 2,
    }
}

impl PayStore {
    /// A store of its own numbering (one merchant alone).
    #[cfg(test)]
    pub(crate) fn new(config: PayConfig) -> Self {
        Self::numbered_by(config, Arc::default())
    }

    /// A store numbering its payments, flows and notifications from `serials`, which other
    /// merchants' stores share.
    pub(crate) fn numbered_by(config: PayConfig, serials: Arc<AtomicU64>) -> Self {
        let merchant_key = sign::public_key(&config.merchant_public_key_pem).ok();
        let wechatpay_key = sign::private_key(&config.wechatpay_private_key_pem).ok();
        let platform_keys = config
            .platform_certificates
            .iter()
            .filter_map(|c| sign::private_key(&c.private_key_pem).ok().map(|key| (c.serial_no.clone(), key)))
            .collect();
        Self {
            signing: config.signing,
            platform_keys,
            balance_fen: config.balance_fen,
            config,
            merchant_key,
            wechatpay_key,
            payments: BTreeMap::new(),
            order: Vec::new(),
            notifications: Vec::new(),
            serials,
            movements: Vec::new(),
            bill_files: BTreeMap::new(),
        }
    }

    /// A fresh store with the same config and parsed keys (reset).
    pub(crate) fn reset(&mut self) {
        self.balance_fen = self.config.balance_fen;
        self.signing = self.config.signing;
        self.payments.clear();
        self.order.clear();
        self.notifications.clear();
        self.movements.clear();
        self.bill_files.clear();
    }

    /// Takes `payment`'s amount from the balance, booked at its creation.
    pub(crate) fn debit(&mut self, payment: &Payment) {
        let remark_field = match payment.channel {
            PayChannel::RedPacket => "remark",
            PayChannel::EnterprisePayment => "desc",
            PayChannel::TransferBill => "transfer_remark",
        };
        let remark = payment.request.get(remark_field).cloned().unwrap_or_default();
        self.book(payment.created_at, MovementKind::Payout(payment.channel), payment, -payment.amount_fen, remark);
    }

    /// Gives `payment`'s amount back to the balance, booked at its last status change (for a red
    /// packet refunded late, that is 24 h after sending, possibly before movements already booked).
    pub(crate) fn credit_back(&mut self, payment: &Payment) {
        let remark = match (payment.channel, &payment.fail_reason) {
            (PayChannel::RedPacket, _) => "红包过期未领取退款".to_owned(),
            (_, Some(reason)) => format!("转账失败退回:{reason}"),
            (_, None) => "转账撤销退回".to_owned(),
        };
        self.book(payment.updated_at, MovementKind::Refund(payment.channel), payment, payment.amount_fen, remark);
    }

    /// Sets the balance (a test control), booked at `at` as a 充值 or 提现 of the difference.
    pub(crate) fn set_balance(&mut self, at: i64, fen: i64) {
        let change = fen - self.balance_fen;
        let kind = match change.cmp(&0) {
            std::cmp::Ordering::Equal => return,
            std::cmp::Ordering::Greater => MovementKind::Recharge,
            std::cmp::Ordering::Less => MovementKind::Withdrawal,
        };
        self.insert_movement(at, kind, String::new(), String::new(), change, "模拟余额调整".to_owned());
    }

    fn book(&mut self, at: i64, kind: MovementKind, payment: &Payment, amount_fen: i64, remark: String) {
        self.insert_movement(at, kind, payment.wechat_no.clone(), payment.bill_no.clone(), amount_fen, remark);
    }

    /// Changes the balance by `amount_fen` and journals it in time order. A movement booked in the
    /// past (a lazily settled refund) goes before later ones, whose balances it then shifts, so that
    /// every line's balance stays the one right after it.
    fn insert_movement(
        &mut self,
        at: i64,
        kind: MovementKind,
        wechat_no: String,
        bill_no: String,
        amount_fen: i64,
        remark: String,
    ) {
        let position = self.movements.partition_point(|m| m.at <= at);
        let balance_before = match self.movements.get(position) {
            Some(next) => next.balance_after_fen - next.amount_fen,
            None => self.balance_fen,
        };
        for later in &mut self.movements[position..] {
            later.balance_after_fen += amount_fen;
        }
        self.balance_fen += amount_fen;
        let serial = self.next_serial();
        let flow_no = format!("{}{}{serial:010}", self.config.mch_id, beijing_date(at).replace('-', ""));
        self.movements.insert(
            position,
            FundMovement {
                at,
                flow_no,
                kind,
                wechat_no,
                bill_no,
                amount_fen,
                balance_after_fen: balance_before + amount_fen,
                remark,
            },
        );
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serials.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn get(&self, channel: PayChannel, bill_no: &str) -> Option<&Payment> {
        self.payments.get(&(channel_key(channel), bill_no.to_owned()))
    }

    pub(crate) fn get_mut(&mut self, channel: PayChannel, bill_no: &str) -> Option<&mut Payment> {
        self.payments.get_mut(&(channel_key(channel), bill_no.to_owned()))
    }

    pub(crate) fn insert(&mut self, payment: Payment) {
        let key = (channel_key(payment.channel), payment.bill_no.clone());
        self.order.push(key.clone());
        self.payments.insert(key, payment);
    }

    pub(crate) fn in_order(&self) -> Vec<Payment> {
        self.order.iter().filter_map(|key| self.payments.get(key)).cloned().collect()
    }

    /// Payments of `openid` on `channel` created on Beijing day `day`, money out or not failed.
    pub(crate) fn daily_usage(&self, channel: PayChannel, openid: &str, day: i64) -> (u32, i64) {
        self.payments
            .values()
            .filter(|p| p.channel == channel && p.openid == openid && p.status.money_out())
            .filter(|p| crate::clock::beijing_day(p.created_at * 1000) == day)
            .fold((0, 0), |(n, sum), p| (n + 1, sum + p.amount_fen))
    }
}

/// Beijing local time `yyyy-MM-dd HH:mm:ss` (v2 answers).
pub(crate) fn beijing_time(unix_secs: i64) -> String {
    let (date, (h, m, s)) = beijing_parts(unix_secs);
    format!("{date} {h:02}:{m:02}:{s:02}")
}

/// Beijing calendar date `yyyy-MM-dd`.
pub(crate) fn beijing_date(unix_secs: i64) -> String {
    beijing_parts(unix_secs).0
}

/// RFC 3339 in Beijing time, `yyyy-MM-DDTHH:mm:ss+08:00` (v3 answers).
pub(crate) fn rfc3339_beijing(unix_secs: i64) -> String {
    let (date, (h, m, s)) = beijing_parts(unix_secs);
    format!("{date}T{h:02}:{m:02}:{s:02}+08:00")
}

fn beijing_parts(unix_secs: i64) -> (String, (i64, i64, i64)) {
    let local = unix_secs + 8 * 3600;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), (secs / 3600, secs % 3600 / 60, secs % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(channel: PayChannel, bill_no: &str, amount_fen: i64, at: i64) -> Payment {
        Payment {
            mch_id: crate::pay::config::MCH_ID.to_owned(),
            channel,
            bill_no: bill_no.to_owned(),
            wechat_no: format!("wx{bill_no}"),
            appid: "wxapp".to_owned(),
            openid: "o1".to_owned(),
            amount_fen,
            status: PaymentStatus::Sent,
            created_at: at,
            updated_at: at,
            fail_reason: None,
            request: BTreeMap::from([("remark".to_owned(), "备注".to_owned())]),
            notify_url: None,
            package_info: None,
        }
    }

    fn journal(store: &PayStore) -> Vec<(i64, &str, i64, i64)> {
        store.movements.iter().map(|m| (m.at, m.bill_no.as_str(), m.amount_fen, m.balance_after_fen)).collect()
    }

    #[test]
    fn a_late_refund_goes_before_later_movements_and_shifts_their_balances() {
        let mut store = PayStore::new(PayConfig { balance_fen: 1000, ..PayConfig::default() });
        let mut sent = payment(PayChannel::RedPacket, "R1", 100, 10);
        store.debit(&sent);
        store.debit(&payment(PayChannel::EnterprisePayment, "E1", 50, 30));
        // Settled after E1 was booked, but refunded at 20.
        sent.updated_at = 20;
        store.credit_back(&sent);
        store.set_balance(40, 2000);
        store.set_balance(41, 2000);
        store.set_balance(42, 1500);
        assert_eq!(
            journal(&store),
            vec![
                (10, "R1", -100, 900),
                (20, "R1", 100, 1000),
                (30, "E1", -50, 950),
                (40, "", 1050, 2000),
                (42, "", -500, 1500)
            ]
        );
        assert_eq!(store.balance_fen, 1500);
        let kinds: Vec<MovementKind> = store.movements.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            vec![
                MovementKind::Payout(PayChannel::RedPacket),
                MovementKind::Refund(PayChannel::RedPacket),
                MovementKind::Payout(PayChannel::EnterprisePayment),
                MovementKind::Recharge,
                MovementKind::Withdrawal,
            ]
        );
        assert_eq!(store.movements[0].remark, "备注");
        let mut flow_nos: Vec<&str> = store.movements.iter().map(|m| m.flow_no.as_str()).collect();
        flow_nos.sort_unstable();
        flow_nos.dedup();
        assert_eq!(flow_nos.len(), 5, "flow numbers are unique");
        store.reset();
        assert!(store.movements.is_empty());
    }

    #[test]
    fn beijing_formats() {
        // 2024-06-01 04:00:00 UTC = 12:00 in Beijing.
        assert_eq!(beijing_time(1_717_214_400), "2024-06-01 12:00:00");
        assert_eq!(rfc3339_beijing(1_717_214_400), "2024-06-01T12:00:00+08:00");
        assert_eq!(beijing_time(0), "1970-01-01 08:00:00");
        assert_eq!(beijing_date(1_717_171_200), "2024-06-01", "16:00 UTC is Beijing midnight");
        assert_eq!(beijing_date(1_717_171_199), "2024-05-31");
    }
}
