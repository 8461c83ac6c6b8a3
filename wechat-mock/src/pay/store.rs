//! What WeChat Pay remembers: the merchant's balance, the ledger of payments (red packets, v2
//! enterprise payments, v3 transfer bills), notifications waiting to be delivered, pay-only faults.

use std::collections::BTreeMap;

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
}

/// The pay area's state inside [`crate::state::MockState`].
pub(crate) struct PayStore {
    pub(crate) config: PayConfig,
    pub(crate) merchant_key: Option<RsaPublicKey>,
    pub(crate) wechatpay_key: Option<RsaPrivateKey>,
    pub(crate) balance_fen: i64,
    /// By (channel, bill number).
    pub(crate) payments: BTreeMap<(PayChannelKey, String), Payment>,
    /// In creation order.
    pub(crate) order: Vec<(PayChannelKey, String)>,
    pub(crate) notifications: Vec<PayNotification>,
    /// Extra copies of each notification to deliver (duplicate-notification fault).
    pub(crate) duplicate_notifications: u32,
    pub(crate) serial: u64,
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
    pub(crate) fn new(config: PayConfig) -> Self {
        let merchant_key = sign::public_key(&config.merchant_public_key_pem).ok();
        let wechatpay_key = sign::private_key(&config.wechatpay_private_key_pem).ok();
        Self {
            balance_fen: config.balance_fen,
            config,
            merchant_key,
            wechatpay_key,
            payments: BTreeMap::new(),
            order: Vec::new(),
            notifications: Vec::new(),
            duplicate_notifications: 0,
            serial: 0,
        }
    }

    /// A fresh store with the same config and parsed keys (reset).
    pub(crate) fn reset(&mut self) {
        self.balance_fen = self.config.balance_fen;
        self.payments.clear();
        self.order.clear();
        self.notifications.clear();
        self.duplicate_notifications = 0;
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
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

    #[test]
    fn beijing_formats() {
        // 2024-06-01 04:00:00 UTC = 12:00 in Beijing.
        assert_eq!(beijing_time(1_717_214_400), "2024-06-01 12:00:00");
        assert_eq!(rfc3339_beijing(1_717_214_400), "2024-06-01T12:00:00+08:00");
        assert_eq!(beijing_time(0), "1970-01-01 08:00:00");
    }
}
