//! v3 transfer notifications (`MCHTRANSFER.BILL.FINISHED`), each merchant's its own: the resource
//! is AES-256-GCM-encrypted with the merchant's APIv3 key, the body is signed with the merchant's
//! WeChat Pay public key or newest platform certificate (as it signs, [`super::PaySigning`]), and a
//! delivery that does
//! not get 2xx is retried on WeChat's schedule, driven by the mock clock: nothing is sent until
//! [`MockWechat::deliver_due_notifications`] runs (the mock runs it itself right after the event).

use std::time::Duration;

use serde_json::json;

use super::merchants::{UnknownMerchant, DEFAULT_MERCHANT};
use super::sign::{aes_gcm_encrypt, nonce, rsa_sign, v3_response_message};
use super::store::{rfc3339_beijing, PayNotification, PayStore, Payment};
use crate::state::MockWechat;

/// Seconds between attempts: first at once, then 15 s ×10, 300 s ×10, 1800 s ×44 (protocols notes §7).
pub fn retry_delay_secs(attempts_made: u32) -> Option<i64> {
    match attempts_made {
        0 => Some(0),
        1..=10 => Some(15),
        11..=20 => Some(300),
        21..=64 => Some(1800),
        _ => None,
    }
}

/// 16 bits of a merchant id, so that two merchants' notification ids differ even when their
/// serials and clocks agree (WeChat's ids are unique across merchants).
fn merchant_tag(mch_id: &str) -> u32 {
    mch_id.bytes().fold(0_u32, |hash, byte| hash.wrapping_mul(31).wrapping_add(u32::from(byte))) & 0xffff
}

/// How long the mock waits for the merchant's answer (WeChat: 5 s).
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

impl PayStore {
    /// Queues the notification of `payment`'s final state, due at once (`now_ms`, Unix ms).
    pub(crate) fn queue_notification(&mut self, now_ms: i64, payment: &Payment) {
        let Some(url) = payment.notify_url.clone() else { return };
        let config = &self.config;
        let mut plain = json!({
            "out_bill_no": payment.bill_no,
            "transfer_bill_no": payment.wechat_no,
            "state": payment.status.as_str(),
            "mch_id": config.mch_id,
            "transfer_amount": payment.amount_fen,
            "openid": payment.openid,
            "create_time": rfc3339_beijing(payment.created_at),
            "update_time": rfc3339_beijing(payment.updated_at),
        });
        if let Some(reason) = &payment.fail_reason {
            plain["fail_reason"] = json!(reason);
        }
        let plaintext = plain.to_string();
        let resource_nonce = nonce(12);
        let associated_data = "mch_payment";
        let Ok(ciphertext) = aes_gcm_encrypt(&config.api_v3_key, &resource_nonce, associated_data, &plaintext) else {
            tracing::warn!("APIv3 key is not 32 bytes: notification not sent");
            return;
        };
        let tag = merchant_tag(&config.mch_id);
        let serial = self.next_serial();
        let body = json!({
            "id": format!("{:08x}-{:04x}-5{:03x}-a{:03x}-{:012x}", now_ms as u32, tag, serial & 0xfff, (serial >> 12) & 0xfff, serial),
            "create_time": rfc3339_beijing(now_ms.div_euclid(1000)),
            "resource_type": "encrypt-resource",
            "event_type": "MCHTRANSFER.BILL.FINISHED",
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": associated_data,
                "nonce": resource_nonce,
            }
        });
        self.notifications.push(PayNotification {
            id: body["id"].as_str().unwrap_or_default().to_owned(),
            url,
            out_bill_no: payment.bill_no.clone(),
            body: body.to_string(),
            plaintext,
            attempts: 0,
            results: Vec::new(),
            next_attempt_ms: Some(now_ms),
            acknowledged: false,
            duplicates_sent: 0,
            signed_with: Vec::new(),
        });
    }

    /// Signed headers for one delivery of `body` at `now` (Unix seconds), with the key this
    /// merchant's notifications are signed with.
    fn notification_headers(&self, now: i64, body: &str) -> Vec<(&'static str, String)> {
        let timestamp = now.to_string();
        let nonce = nonce(32);
        let (serial, signature) = match self.signing_key(None, now) {
            Some((serial, key)) => (serial, rsa_sign(key, &v3_response_message(&timestamp, &nonce, body))),
            None => (self.config.wechatpay_public_key_id.clone(), String::new()),
        };
        vec![
            ("Wechatpay-Timestamp", timestamp),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Serial", serial),
            ("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048".to_owned()),
        ]
    }
}

/// One claimed delivery: merchant, index, url, body, signed headers, extra copies.
type Due = (usize, usize, String, String, Vec<(&'static str, String)>, u32);

impl MockWechat {
    /// Delivers every notification (of every merchant) whose attempt is due on the mock clock, records the results,
    /// and schedules retries for those not acknowledged with 2xx. Returns how many deliveries were
    /// made (duplicates included).
    pub async fn deliver_due_notifications(&self) -> usize {
        let due: Vec<Due> = {
            let mut state = self.lock();
            let now = state.clock.now_ms();
            let dup = state.pay.duplicate_notifications;
            let mut due = Vec::new();
            for (merchant, store) in state.pay.iter_mut().enumerate() {
                for index in 0..store.notifications.len() {
                    let n = &store.notifications[index];
                    if n.next_attempt_ms.is_some_and(|at| at <= now) {
                        let (url, body) = (n.url.clone(), n.body.clone());
                        let headers = store.notification_headers(now.div_euclid(1000), &body);
                        let serial =
                            headers.iter().find(|(name, _)| *name == "Wechatpay-Serial").map(|(_, v)| v.clone());
                        let n = &mut store.notifications[index];
                        n.signed_with.extend(serial);
                        // Claimed: a concurrent run does not deliver it again.
                        n.next_attempt_ms = None;
                        due.push((merchant, index, url, body, headers, dup));
                    }
                }
            }
            due
        };
        let client = reqwest::Client::builder().timeout(NOTIFY_TIMEOUT).build().unwrap_or_default();
        let mut sent = 0;
        for (merchant, index, url, body, headers, duplicates) in due {
            let status = post(&client, &url, &body, &headers).await;
            sent += 1;
            let acknowledged = status.is_some_and(|s| (200..300).contains(&s));
            let mut extra = 0;
            if acknowledged {
                for _ in 0..duplicates {
                    post(&client, &url, &body, &headers).await;
                    sent += 1;
                    extra += 1;
                }
            }
            let mut state = self.lock();
            let now = state.clock.now_ms();
            if let Some(n) = state.pay[merchant].notifications.get_mut(index) {
                n.attempts += 1;
                n.results.push(status);
                n.duplicates_sent += extra;
                n.acknowledged = acknowledged;
                n.next_attempt_ms =
                    if acknowledged { None } else { retry_delay_secs(n.attempts).map(|secs| now + secs * 1000) };
            }
        }
        sent
    }

    /// Every notification of the default merchant queued so far, with its deliveries.
    pub fn pay_notifications(&self) -> Vec<PayNotification> {
        self.lock().pay[DEFAULT_MERCHANT].notifications.clone()
    }

    /// Every notification of merchant `mch_id` queued so far, with its deliveries.
    pub fn pay_notifications_of(&self, mch_id: &str) -> Result<Vec<PayNotification>, UnknownMerchant> {
        Ok(self.lock().pay.of(mch_id)?.notifications.clone())
    }

    /// The duplicate-notification fault: every acknowledged notification (of every merchant) is
    /// delivered `extra` more times (same id and body), until set back to 0.
    pub fn set_duplicate_notifications(&self, extra: u32) {
        self.lock().pay.duplicate_notifications = extra;
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &str, headers: &[(&'static str, String)]) -> Option<u16> {
    let mut request = client.post(url).header("Content-Type", "application/json").body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    match request.send().await {
        Ok(response) => Some(response.status().as_u16()),
        Err(err) => {
            tracing::debug!(%url, %err, "pay notification not delivered");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_covers_65_attempts() {
        let total: i64 = (0..65).map(|n| retry_delay_secs(n).unwrap()).sum();
        assert_eq!(total, 15 * 10 + 300 * 10 + 1800 * 44);
        assert_eq!(retry_delay_secs(65), None);
    }
}
