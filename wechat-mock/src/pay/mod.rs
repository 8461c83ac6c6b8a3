//! WeChat Pay payouts as linli uses them, written independently of linli's client, for several
//! merchants at once:
//! - [`merchants`]: the merchants the mock knows (the default one, [`crate::MockConfig::pay`], and
//!   [`crate::MockConfig::merchants`]), each with its own keys, balance, ledger, notifications,
//!   fund-flow bills and signing mode, and how each request finds its merchant (v2 by `mch_id` /
//!   `mchid`, v3 by the `mchid` of `Authorization`; an unknown one is refused and changes nothing);
//! - [`v2`]: `POST /mmpaymkttransfers/sendredpack`, `/gethbinfo`, `/promotion/transfers`,
//!   `/gettransferinfo` (XML, MD5-signed with the merchant's APIv2 key);
//! - [`v3`]: `POST /v3/fund-app/mch-transfer/transfer-bills`, `GET …/out-bill-no/{no}`,
//!   `POST …/out-bill-no/{no}/cancel` (JSON, SHA256withRSA both ways: the merchant's key on the
//!   request, WeChat Pay's key for that merchant on the answer);
//! - [`notify`]: transfer notifications, encrypted with the merchant's APIv3 key, signed with its
//!   WeChat Pay key, retried on the mock clock;
//! - [`certificates`]: `GET /v3/certificates` (the merchant's platform certificates, sealed under
//!   its APIv3 key) and which key signs its answers and notifications: each merchant is played as
//!   one with the WeChat Pay public key, with platform certificates, or migrating between them
//!   ([`PaySigning`]);
//! - [`bill`]: `GET /v3/bill/fundflowbill` and `GET /v3/billdownload/file`, the daily fund-flow bill
//!   (资金账单) of the merchant's balance movements (JSON answer signed, file not, as WeChat).
//!
//! Merchants and keys come from [`PayConfig`]: the default is [`MCH_ID`] with the test keys under
//! `src/pay/testdata/`, which are public; [`PayConfig::second`] is a second merchant,
//! [`SECOND_MCH_ID`], with public test keys of its own (`SECOND_…` constants). WeChat requires the
//! merchant's client TLS certificate on the four v2 calls: an HTTPS mock ([`crate::start_tls`])
//! checks it against the mock CA of [`tls`] and answers `CA_ERROR` without one; a plain-HTTP mock
//! ([`crate::start`]) cannot, and does not. The mock CA issued one merchant certificate, which the
//! HTTPS mock accepts from every merchant.
//!
//! [`crate::MockWechat`]'s pay methods without a merchant argument are about the default merchant,
//! except [`crate::MockWechat::payments`] (every merchant's, each [`Payment`] saying whose) and
//! those taking a bill number (the default merchant's bill, or else the first merchant with that
//! number); their `…_of(mch_id, …)` variants are about one merchant.
//!
//! Control API (see [`control`]): `GET /__mock/pay` (balance and ledger), `GET /__mock/pay/keys`
//! (public key material and ids), `POST /__mock/pay/signing {"signing": "public_key" |
//! "platform_certificate" | "migration"}`, `POST /__mock/pay/red-packets/{mch_billno}/receive`,
//! `POST /__mock/pay/transfer-bills/{out_bill_no}/confirm`, `…/decline`, `…/fail`,
//! `GET /__mock/pay/notifications`, each with an optional `?mch_id=`; `GET /__mock/pay/merchants`,
//! `POST /__mock/pay/notifications/run`, `POST /__mock/pay/duplicate-notifications {"extra": n}`.

pub mod bill;
pub mod certificates;
pub mod config;
pub mod control;
pub mod merchants;
pub mod notify;
pub mod sign;
pub(crate) mod store;
pub mod tls;
pub mod v2;
pub mod v3;

use poem::{get, post, Route};
use serde::Serialize;

pub use bill::BillError;
pub use config::{
    PayConfig, PayLimits, PaySigning, PlatformCertificate, API_KEY_V2, API_V3_KEY, MCH_ID, MERCHANT_CERT_SERIAL,
    MERCHANT_PRIVATE_KEY_PEM, MERCHANT_PUBLIC_KEY_PEM, PLATFORM_CERT_PEM, PLATFORM_CERT_SERIAL, SECOND_API_KEY_V2,
    SECOND_API_V3_KEY, SECOND_MCH_ID, SECOND_MERCHANT_CERT_SERIAL, SECOND_MERCHANT_PRIVATE_KEY_PEM,
    SECOND_MERCHANT_PUBLIC_KEY_PEM, SECOND_PLATFORM_CERT_PEM, SECOND_PLATFORM_CERT_SERIAL,
    SECOND_WECHATPAY_PUBLIC_KEY_ID, SECOND_WECHATPAY_PUBLIC_KEY_PEM, WECHATPAY_PUBLIC_KEY_ID, WECHATPAY_PUBLIC_KEY_PEM,
};
pub use merchants::UnknownMerchant;
pub use store::{PayChannel, PayNotification, Payment, PaymentStatus};

use crate::state::{MockState, MockWechat};
use merchants::DEFAULT_MERCHANT;
use store::PayStore;

/// What `GET /__mock/pay[?mch_id=…]` answers: one merchant's balance and ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayReport {
    /// The merchant.
    pub mch_id: String,
    /// Merchant balance, fen.
    pub balance_fen: i64,
    /// Every payment of the merchant, oldest first.
    pub payments: Vec<Payment>,
}

/// Adds the WeChat Pay endpoints and their control API.
pub(crate) fn routes(route: Route) -> Route {
    let route = route
        .at("/mmpaymkttransfers/sendredpack", post(v2::sendredpack))
        .at("/mmpaymkttransfers/gethbinfo", post(v2::gethbinfo))
        .at("/mmpaymkttransfers/promotion/transfers", post(v2::transfers))
        .at("/mmpaymkttransfers/gettransferinfo", post(v2::gettransferinfo))
        .at(v3::TRANSFER_BILLS_PATH, post(v3::create))
        .at("/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/:out_bill_no", get(v3::query))
        .at("/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/:out_bill_no/cancel", post(v3::cancel))
        .at(certificates::CERTIFICATES_PATH, get(certificates::certificates))
        .at(bill::FUND_FLOW_BILL_PATH, get(bill::fund_flow_bill))
        .at(bill::BILL_DOWNLOAD_PATH, get(bill::download));
    control::routes(route)
}

impl MockState {
    /// Books the refunds and cancellations that are due, for every merchant.
    fn settle_payments(&mut self) {
        let now_ms = self.clock.now_ms();
        self.pay.settle_red_packets(now_ms.div_euclid(1000));
        self.pay.expire_transfer_bills(now_ms);
    }

    /// The merchant `mch_id` names, or for `None` the one holding bill `bill_no` on `channel` (the
    /// default merchant if none does).
    fn bill_merchant(&self, mch_id: Option<&str>, channel: PayChannel, bill_no: &str) -> Result<usize, String> {
        match mch_id {
            Some(id) => self.pay.find(id).ok_or_else(|| format!("no merchant {id}")),
            None => Ok(self.pay.holding(channel, bill_no).unwrap_or(DEFAULT_MERCHANT)),
        }
    }
}

/// Fen paid (and not returned) to `openid` by one merchant over every channel.
fn paid_to(store: &PayStore, openid: &str) -> i64 {
    store.in_order().iter().filter(|p| p.openid == openid && p.status.money_out()).map(|p| p.amount_fen).sum()
}

impl MockWechat {
    /// The id of every merchant, the default merchant's first.
    pub fn merchant_ids(&self) -> Vec<String> {
        self.lock().pay.iter().map(|store| store.config.mch_id.clone()).collect()
    }

    /// The default merchant's configuration.
    pub fn pay_config(&self) -> PayConfig {
        self.lock().pay[DEFAULT_MERCHANT].config.clone()
    }

    /// Merchant `mch_id`'s configuration.
    pub fn pay_config_of(&self, mch_id: &str) -> Result<PayConfig, UnknownMerchant> {
        Ok(self.lock().pay.of(mch_id)?.config.clone())
    }

    /// The default merchant's available balance, fen.
    pub fn pay_balance_fen(&self) -> i64 {
        self.lock().pay[DEFAULT_MERCHANT].balance_fen
    }

    /// Merchant `mch_id`'s available balance, fen.
    pub fn pay_balance_fen_of(&self, mch_id: &str) -> Result<i64, UnknownMerchant> {
        Ok(self.lock().pay.of(mch_id)?.balance_fen)
    }

    /// Sets the default merchant's balance (e.g. to provoke `NOTENOUGH`). The fund-flow bill shows
    /// the difference as a 收入 `充值` line (raised) or a 支出 `提现` line (lowered), with no 业务凭证号.
    pub fn set_pay_balance_fen(&self, fen: i64) {
        let mut state = self.lock();
        let now = state.clock.now_ms().div_euclid(1000);
        state.pay[DEFAULT_MERCHANT].set_balance(now, fen);
    }

    /// Sets merchant `mch_id`'s balance, as [`Self::set_pay_balance_fen`] does the default one's.
    pub fn set_pay_balance_fen_of(&self, mch_id: &str, fen: i64) -> Result<(), UnknownMerchant> {
        let mut state = self.lock();
        let now = state.clock.now_ms().div_euclid(1000);
        state.pay.of_mut(mch_id)?.set_balance(now, fen);
        Ok(())
    }

    /// The ledger of every merchant, oldest first (by creation time, then the default merchant's
    /// first): [`Payment::mch_id`] says whose each payment is. Unopened red packets older than
    /// 24 h are shown refunded, waiting transfer bills older than 24 h cancelled.
    pub fn payments(&self) -> Vec<Payment> {
        let mut state = self.lock();
        state.settle_payments();
        let mut all: Vec<Payment> = state.pay.iter().flat_map(PayStore::in_order).collect();
        // A stable sort keeps each merchant's order and puts the default merchant first on ties.
        all.sort_by_key(|p| p.created_at);
        all
    }

    /// Merchant `mch_id`'s ledger, oldest first (settled as in [`Self::payments`]).
    pub fn payments_of(&self, mch_id: &str) -> Result<Vec<Payment>, UnknownMerchant> {
        let mut state = self.lock();
        state.settle_payments();
        Ok(state.pay.of(mch_id)?.in_order())
    }

    /// One payment by channel and merchant number: the default merchant's, or else that of the
    /// first other merchant with that number.
    pub fn payment(&self, channel: PayChannel, bill_no: &str) -> Option<Payment> {
        let mut state = self.lock();
        state.settle_payments();
        let merchant = state.pay.holding(channel, bill_no)?;
        state.pay[merchant].get(channel, bill_no).cloned()
    }

    /// Fen the default merchant paid (and did not get back) to `openid` over every channel.
    pub fn paid_total(&self, openid: &str) -> i64 {
        let mut state = self.lock();
        state.settle_payments();
        paid_to(&state.pay[DEFAULT_MERCHANT], openid)
    }

    /// Fen merchant `mch_id` paid (and did not get back) to `openid` over every channel.
    pub fn paid_total_of(&self, mch_id: &str, openid: &str) -> Result<i64, UnknownMerchant> {
        let mut state = self.lock();
        state.settle_payments();
        Ok(paid_to(state.pay.of(mch_id)?, openid))
    }

    /// The user opens a red packet: `SENT` → `RECEIVED` (the default merchant's packet with this
    /// number, or else the first other merchant's).
    pub fn receive_red_packet(&self, mch_billno: &str) -> Result<Payment, String> {
        self.receive(None, mch_billno)
    }

    /// The user opens merchant `mch_id`'s red packet `mch_billno`.
    pub fn receive_red_packet_of(&self, mch_id: &str, mch_billno: &str) -> Result<Payment, String> {
        self.receive(Some(mch_id), mch_billno)
    }

    fn receive(&self, mch_id: Option<&str>, mch_billno: &str) -> Result<Payment, String> {
        let mut state = self.lock();
        let now = state.clock.now_ms().div_euclid(1000);
        state.pay.settle_red_packets(now);
        let merchant = state.bill_merchant(mch_id, PayChannel::RedPacket, mch_billno)?;
        let p = state.pay[merchant]
            .get_mut(PayChannel::RedPacket, mch_billno)
            .ok_or_else(|| format!("no red packet {mch_billno}"))?;
        if p.status != PaymentStatus::Sent {
            return Err(format!("red packet {mch_billno} is {}", p.status.as_str()));
        }
        p.status = PaymentStatus::Received;
        p.updated_at = now;
        Ok(p.clone())
    }

    /// `package_info` of a waiting transfer bill (what the mini-program passes to
    /// `wx.requestMerchantTransfer`): the default merchant's bill, or else the first other
    /// merchant's with that number.
    pub fn transfer_package_info(&self, out_bill_no: &str) -> Option<String> {
        let state = self.lock();
        let merchant = state.pay.holding(PayChannel::TransferBill, out_bill_no)?;
        state.pay[merchant].get(PayChannel::TransferBill, out_bill_no).and_then(|p| p.package_info.clone())
    }

    /// `package_info` of merchant `mch_id`'s waiting transfer bill; `None` if the merchant or the
    /// bill is unknown.
    pub fn transfer_package_info_of(&self, mch_id: &str, out_bill_no: &str) -> Option<String> {
        let state = self.lock();
        state.pay.of(mch_id).ok()?.get(PayChannel::TransferBill, out_bill_no).and_then(|p| p.package_info.clone())
    }

    /// The resident confirms in WeChat: `WAIT_USER_CONFIRM` → `SUCCESS`, notification queued (and
    /// a first delivery attempted if a runtime is present — call [`Self::deliver_due_notifications`]
    /// to wait for it). The bill is the default merchant's, or else the first other merchant's
    /// with that number.
    pub fn confirm_transfer(&self, out_bill_no: &str) -> Result<Payment, String> {
        self.finish(None, out_bill_no, PaymentStatus::Success, None)
    }

    /// The resident declines (or lets the page lapse): `WAIT_USER_CONFIRM` → `CANCELLED`, money back.
    pub fn decline_transfer(&self, out_bill_no: &str) -> Result<Payment, String> {
        self.finish(None, out_bill_no, PaymentStatus::Cancelled, None)
    }

    /// WeChat fails the bill (e.g. `reason` = "ACCOUNT_FROZEN"): → `FAIL`, money back.
    pub fn fail_transfer(&self, out_bill_no: &str, reason: &str) -> Result<Payment, String> {
        self.finish(None, out_bill_no, PaymentStatus::Fail, Some(reason.to_owned()))
    }

    /// [`Self::confirm_transfer`] of merchant `mch_id`'s bill.
    pub fn confirm_transfer_of(&self, mch_id: &str, out_bill_no: &str) -> Result<Payment, String> {
        self.finish(Some(mch_id), out_bill_no, PaymentStatus::Success, None)
    }

    /// [`Self::decline_transfer`] of merchant `mch_id`'s bill.
    pub fn decline_transfer_of(&self, mch_id: &str, out_bill_no: &str) -> Result<Payment, String> {
        self.finish(Some(mch_id), out_bill_no, PaymentStatus::Cancelled, None)
    }

    /// [`Self::fail_transfer`] of merchant `mch_id`'s bill.
    pub fn fail_transfer_of(&self, mch_id: &str, out_bill_no: &str, reason: &str) -> Result<Payment, String> {
        self.finish(Some(mch_id), out_bill_no, PaymentStatus::Fail, Some(reason.to_owned()))
    }

    fn finish(
        &self,
        mch_id: Option<&str>,
        out_bill_no: &str,
        to: PaymentStatus,
        reason: Option<String>,
    ) -> Result<Payment, String> {
        let mut state = self.lock();
        let now_ms = state.clock.now_ms();
        state.pay.expire_transfer_bills(now_ms);
        let merchant = state.bill_merchant(mch_id, PayChannel::TransferBill, out_bill_no)?;
        state.pay[merchant].finish_transfer(now_ms, out_bill_no, to, reason)
    }
}
