//! The merchants the mock's WeChat Pay knows, each with a store of its own (balance, ledger,
//! notifications, fund-flow bills, signing mode, keys), and how a request finds its merchant, as
//! WeChat routes it: a v2 call by the merchant field of its XML (`mch_id`, or `mchid` for
//! `promotion/transfers`), a v3 call by the `mchid` of its `Authorization` header. The merchant is
//! found before anything is checked against its keys, since the keys are the merchant's.
//!
//! A merchant id the mock does not know changes nothing and is answered as WeChat answers one:
//! v2 `return_code=SUCCESS`, `result_code=FAIL`, `err_code=PARAM_ERROR`, `err_code_des=商户号非法`
//! (an answer merchants have logged on WeChat's developer forum); v3 HTTP 400
//! `{"code":"MCH_NOT_EXISTS","message":"商户号不合法"}` (likewise logged). There is no key of that
//! merchant to sign a v3 answer with, so the mock signs it with the default merchant's, which a
//! client of another merchant fails to verify.

use std::collections::BTreeSet;
use std::ops::{Index, IndexMut};
use std::sync::Arc;

use poem::http::StatusCode;

use super::config::PayConfig;
use super::sign::{parse_authorization, Authorization};
use super::store::{PayChannel, PayStore};
use super::v2::V2Error;
use super::v3::{sign_error, v3_err, V3Error};

/// Index of the default merchant ([`crate::MockConfig::pay`]) among [`PayMerchants`].
pub(crate) const DEFAULT_MERCHANT: usize = 0;

/// What v2 answers for a merchant id WeChat Pay does not know.
pub(crate) const V2_UNKNOWN_MERCHANT: &str = "商户号非法";
/// What v3 answers for a merchant id WeChat Pay does not know.
pub(crate) const V3_UNKNOWN_MERCHANT: &str = "商户号不合法";

/// A merchant id the mock's WeChat Pay does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMerchant(pub String);

impl std::fmt::Display for UnknownMerchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no merchant {}", self.0)
    }
}

impl std::error::Error for UnknownMerchant {}

/// Every merchant's store: the default merchant's first, then the others in configuration order.
pub(crate) struct PayMerchants {
    stores: Vec<PayStore>,
    /// Extra copies of each acknowledged notification to deliver, for every merchant
    /// (the duplicate-notification fault).
    pub(crate) duplicate_notifications: u32,
}

impl PayMerchants {
    /// The default merchant and the others.
    ///
    /// # Panics
    ///
    /// If two merchants have the same `mch_id`: WeChat's merchant ids are unique, and a second one
    /// could never be reached.
    pub(crate) fn new(default: PayConfig, others: Vec<PayConfig>) -> Self {
        let mut seen = BTreeSet::new();
        for config in std::iter::once(&default).chain(&others) {
            assert!(seen.insert(config.mch_id.clone()), "merchant {} is configured twice", config.mch_id);
        }
        let serials = Arc::default();
        let stores = std::iter::once(default)
            .chain(others)
            .map(|config| PayStore::numbered_by(config, Arc::clone(&serials)))
            .collect();
        Self { stores, duplicate_notifications: 0 }
    }

    /// The merchant with this id.
    pub(crate) fn find(&self, mch_id: &str) -> Option<usize> {
        self.stores.iter().position(|store| store.config.mch_id == mch_id)
    }

    /// The store of the merchant with this id.
    pub(crate) fn of(&self, mch_id: &str) -> Result<&PayStore, UnknownMerchant> {
        self.find(mch_id).map(|m| &self.stores[m]).ok_or_else(|| UnknownMerchant(mch_id.to_owned()))
    }

    /// The store of the merchant with this id, to change.
    pub(crate) fn of_mut(&mut self, mch_id: &str) -> Result<&mut PayStore, UnknownMerchant> {
        match self.find(mch_id) {
            Some(m) => Ok(&mut self.stores[m]),
            None => Err(UnknownMerchant(mch_id.to_owned())),
        }
    }

    /// The merchant that has bill `bill_no` on `channel`: the default merchant if it has one,
    /// otherwise the first other merchant that has (bill numbers are unique per merchant only).
    pub(crate) fn holding(&self, channel: PayChannel, bill_no: &str) -> Option<usize> {
        self.stores.iter().position(|store| store.get(channel, bill_no).is_some())
    }

    /// Every store, the default merchant's first.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, PayStore> {
        self.stores.iter()
    }

    /// Every store, to change.
    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, PayStore> {
        self.stores.iter_mut()
    }

    /// Every merchant back to its configuration (see [`PayStore::reset`]); no duplicate notifications.
    pub(crate) fn reset(&mut self) {
        self.stores.iter_mut().for_each(PayStore::reset);
        self.duplicate_notifications = 0;
    }

    /// Refunds every merchant's red packets left unopened for 24 h.
    pub(crate) fn settle_red_packets(&mut self, now: i64) {
        self.stores.iter_mut().for_each(|store| store.settle_red_packets(now));
    }

    /// Cancels every merchant's transfer bills that waited too long for the user.
    pub(crate) fn expire_transfer_bills(&mut self, now_ms: i64) {
        self.stores.iter_mut().for_each(|store| store.expire_transfer_bills(now_ms));
    }

    /// The merchant of a v2 request whose merchant field holds `mch_id`. An absent field goes to the
    /// default merchant, whose checks then refuse it (`SIGN_ERROR` or `PARAM_ERROR`, as before
    /// there were several merchants).
    pub(crate) fn v2_merchant(&self, mch_id: &str) -> Result<usize, V2Error> {
        if mch_id.is_empty() {
            return Ok(DEFAULT_MERCHANT);
        }
        self.find(mch_id).ok_or_else(|| V2Error { code: "PARAM_ERROR".into(), des: V2_UNKNOWN_MERCHANT.into() })
    }

    /// The merchant a v3 request's `Authorization` header names, and the header's parts: 401
    /// `SIGN_ERROR` for a malformed header, 400 `MCH_NOT_EXISTS` for a merchant the mock does not know.
    pub(crate) fn v3_merchant(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<(usize, Authorization), V3Error> {
        let Some(auth) = authorization.and_then(parse_authorization) else {
            return Err(sign_error(
                method,
                url,
                "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
                "authorization malformed",
            ));
        };
        match self.find(&auth.mch_id) {
            Some(m) => Ok((m, auth)),
            None => Err(v3_err(StatusCode::BAD_REQUEST, "MCH_NOT_EXISTS", V3_UNKNOWN_MERCHANT)),
        }
    }

    /// The merchant whose key signs the answer to a v3 request with this `Authorization`: the one
    /// it names if the mock knows it, the default merchant otherwise.
    pub(crate) fn answering(&self, authorization: Option<&str>) -> usize {
        authorization.and_then(parse_authorization).and_then(|auth| self.find(&auth.mch_id)).unwrap_or(DEFAULT_MERCHANT)
    }
}

impl Index<usize> for PayMerchants {
    type Output = PayStore;

    fn index(&self, merchant: usize) -> &PayStore {
        &self.stores[merchant]
    }
}

impl IndexMut<usize> for PayMerchants {
    fn index_mut(&mut self, merchant: usize) -> &mut PayStore {
        &mut self.stores[merchant]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pay::config::{MCH_ID, SECOND_MCH_ID};
    use crate::pay::sign::MerchantSigner;

    fn two() -> PayMerchants {
        PayMerchants::new(PayConfig::default(), vec![PayConfig::second()])
    }

    #[test]
    fn merchants_are_found_by_id() {
        let merchants = two();
        assert_eq!(merchants.find(MCH_ID), Some(DEFAULT_MERCHANT));
        assert_eq!(merchants.find(SECOND_MCH_ID), Some(1));
        assert_eq!(merchants.of("1234567890").err(), Some(UnknownMerchant("1234567890".into())));
        assert_eq!(
            merchants.v2_merchant(""),
            Ok(DEFAULT_MERCHANT),
            "no merchant field: the default's checks refuse it"
        );
        assert_eq!(merchants.v2_merchant("1234567890").unwrap_err().code, "PARAM_ERROR");
    }

    #[test]
    fn v3_requests_go_to_the_merchant_of_their_authorization() {
        let merchants = two();
        let header = MerchantSigner::second_merchant().authorization("GET", "/v3/x", 1, "");
        assert_eq!(merchants.v3_merchant("GET", "/v3/x", Some(&header)).map(|(m, _)| m), Ok(1));
        assert_eq!(merchants.answering(Some(&header)), 1);
        let stranger = MerchantSigner::new("1234567890", "AB", crate::pay::config::MERCHANT_PRIVATE_KEY_PEM)
            .unwrap()
            .authorization("GET", "/v3/x", 1, "");
        let refused = merchants.v3_merchant("GET", "/v3/x", Some(&stranger)).unwrap_err();
        assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("MCH_NOT_EXISTS")));
        assert_eq!(merchants.answering(Some(&stranger)), DEFAULT_MERCHANT);
        assert_eq!(merchants.v3_merchant("GET", "/v3/x", None).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    #[should_panic(expected = "configured twice")]
    fn a_merchant_id_is_configured_once() {
        PayMerchants::new(PayConfig::default(), vec![PayConfig::default()]);
    }
}
