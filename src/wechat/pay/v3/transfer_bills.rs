//! Merchant transfer to a user's balance, the upgraded 商家转账 (`/v3/fund-app/mch-transfer/
//! transfer-bills`, from 2025-01-15): create, query by `out_bill_no`, cancel, and the
//! `MCHTRANSFER.BILL.FINISHED` notification, each sorted into a [`TransferOutcome`] for the payout
//! dispatcher.
//!
//! The error-code list of this API was not retrieved (protocols §7), so only codes whose meaning
//! is general to v3 (`PARAM_ERROR`, `NO_AUTH`, `NOT_ENOUGH`, `FREQUENCY_LIMITED`) count as a
//! definite failure of a create, and only when the error answer itself verifies; everything else is
//! unknown, to be resolved by query with the same `out_bill_no`.

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{open_notification, NotifyError, SignedHeaders, V3Answer, V3Client, V3Error, WechatPayKeys};
use crate::secret::Secret;
use crate::wechat::pay::CODE_BAD_ANSWER;

const BILLS_PATH: &str = "/v3/fund-app/mch-transfer/transfer-bills";
/// Event type of the notification sent when a bill reaches SUCCESS, FAIL or CANCELLED.
pub const EVENT_BILL_FINISHED: &str = "MCHTRANSFER.BILL.FINISHED";

/// State of a transfer bill (§7). New states are kept, never guessed at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferBillState {
    /// Accepted, not yet processed.
    Accepted,
    /// Being processed (often: waiting for merchant balance).
    Processing,
    /// Waiting for the user to confirm in the mini-program with `package_info`.
    WaitUserConfirm,
    /// Being transferred (WeChat's spelling).
    Transfering,
    Success,
    Fail,
    /// Cancellation requested, not finished.
    Canceling,
    Cancelled,
    Unknown(String),
}

impl TransferBillState {
    pub fn parse(value: &str) -> Self {
        match value {
            "ACCEPTED" => Self::Accepted,
            "PROCESSING" => Self::Processing,
            "WAIT_USER_CONFIRM" => Self::WaitUserConfirm,
            "TRANSFERING" => Self::Transfering,
            "SUCCESS" => Self::Success,
            "FAIL" => Self::Fail,
            "CANCELING" => Self::Canceling,
            "CANCELLED" => Self::Cancelled,
            other => Self::Unknown(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::Processing => "PROCESSING",
            Self::WaitUserConfirm => "WAIT_USER_CONFIRM",
            Self::Transfering => "TRANSFERING",
            Self::Success => "SUCCESS",
            Self::Fail => "FAIL",
            Self::Canceling => "CANCELING",
            Self::Cancelled => "CANCELLED",
            Self::Unknown(other) => other,
        }
    }
}

impl<'de> Deserialize<'de> for TransferBillState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self::parse(&s))
    }
}

impl Serialize for TransferBillState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One `transfer_scene_report_infos` entry (scene-specific, e.g. 活动名称 / 奖励说明).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TransferSceneReportInfo {
    pub info_type: String,
    pub info_content: String,
}

/// A transfer bill to create. `mchid` is not part of the body: the signature names the merchant.
#[derive(Clone, Debug)]
pub struct CreateTransferBill {
    pub appid: String,
    /// 1..=32 ASCII letters or digits, unique per merchant; every retry must reuse it.
    pub out_bill_no: String,
    pub transfer_scene_id: String,
    pub openid: String,
    /// The payee's real name in clear; the client encrypts it with the WeChat Pay public key.
    pub user_name: Option<Secret>,
    /// Fen.
    pub transfer_amount: u64,
    /// Shown to the user; at most 32 characters.
    pub transfer_remark: String,
    pub notify_url: Option<String>,
    pub user_recv_perception: Option<String>,
    pub transfer_scene_report_infos: Vec<TransferSceneReportInfo>,
}

#[derive(Serialize)]
struct CreateBody<'a> {
    appid: &'a str,
    out_bill_no: &'a str,
    transfer_scene_id: &'a str,
    openid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<String>,
    transfer_amount: u64,
    transfer_remark: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_recv_perception: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    transfer_scene_report_infos: &'a [TransferSceneReportInfo],
}

fn check_out_bill_no(out_bill_no: &str) -> Result<(), V3Error> {
    if out_bill_no.is_empty() || out_bill_no.len() > 32 || !out_bill_no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(V3Error::InvalidRequest("out_bill_no must be 1..=32 ASCII letters or digits".into()));
    }
    Ok(())
}

impl CreateTransferBill {
    fn validate(&self) -> Result<(), V3Error> {
        check_out_bill_no(&self.out_bill_no)?;
        for (name, value) in [
            ("appid", &self.appid),
            ("transfer_scene_id", &self.transfer_scene_id),
            ("openid", &self.openid),
            ("transfer_remark", &self.transfer_remark),
        ] {
            if value.trim().is_empty() {
                return Err(V3Error::InvalidRequest(format!("{name} is required")));
            }
        }
        if self.transfer_remark.chars().count() > 32 {
            return Err(V3Error::InvalidRequest("transfer_remark longer than 32 characters".into()));
        }
        if self.transfer_amount == 0 {
            return Err(V3Error::InvalidRequest("transfer_amount must be positive".into()));
        }
        Ok(())
    }
}

/// Answer to a create.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TransferBillCreated {
    pub out_bill_no: String,
    #[serde(default)]
    pub transfer_bill_no: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    pub state: TransferBillState,
    #[serde(default)]
    pub fail_reason: Option<String>,
    /// What the mini-program passes to `wx.requestMerchantTransfer` as `package`.
    #[serde(default)]
    pub package_info: Option<String>,
}

/// A bill as a query reports it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TransferBill {
    #[serde(default)]
    pub mch_id: Option<String>,
    pub out_bill_no: String,
    #[serde(default)]
    pub transfer_bill_no: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    pub state: TransferBillState,
    #[serde(default)]
    pub transfer_amount: Option<u64>,
    #[serde(default)]
    pub transfer_remark: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub openid: Option<String>,
    /// Encrypted, as WeChat returns it.
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
}

/// Answer to a cancel.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct CancelledBill {
    pub out_bill_no: String,
    #[serde(default)]
    pub transfer_bill_no: Option<String>,
    pub state: TransferBillState,
    #[serde(default)]
    pub update_time: Option<String>,
}

/// Decrypted payload of `MCHTRANSFER.BILL.FINISHED`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TransferBillFinished {
    /// `mch_id` per WxJava, `mchid` per wechatpay.js.org: both accepted.
    #[serde(default, alias = "mchid")]
    pub mch_id: Option<String>,
    pub out_bill_no: String,
    #[serde(default)]
    pub transfer_bill_no: Option<String>,
    pub state: TransferBillState,
    #[serde(default)]
    pub transfer_amount: Option<u64>,
    #[serde(default)]
    pub openid: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
}

/// What the dispatcher needs from any of the above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferSnapshot {
    pub out_bill_no: String,
    pub transfer_bill_no: Option<String>,
    pub state: TransferBillState,
    pub fail_reason: Option<String>,
    /// Present on create answers only; a query of a waiting bill does not repeat it.
    pub package_info: Option<String>,
}

impl From<TransferBillCreated> for TransferSnapshot {
    fn from(bill: TransferBillCreated) -> Self {
        Self {
            out_bill_no: bill.out_bill_no,
            transfer_bill_no: bill.transfer_bill_no,
            state: bill.state,
            fail_reason: bill.fail_reason,
            package_info: bill.package_info,
        }
    }
}

impl From<TransferBill> for TransferSnapshot {
    fn from(bill: TransferBill) -> Self {
        Self {
            out_bill_no: bill.out_bill_no,
            transfer_bill_no: bill.transfer_bill_no,
            state: bill.state,
            fail_reason: bill.fail_reason,
            package_info: None,
        }
    }
}

impl From<TransferBillFinished> for TransferSnapshot {
    fn from(bill: TransferBillFinished) -> Self {
        Self {
            out_bill_no: bill.out_bill_no,
            transfer_bill_no: bill.transfer_bill_no,
            state: bill.state,
            fail_reason: bill.fail_reason,
            package_info: None,
        }
    }
}

/// What a transfer-bills call came to, for the payout dispatcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// SUCCESS: the money reached the user.
    Succeeded(TransferSnapshot),
    /// WAIT_USER_CONFIRM: the user must confirm with `package_info` in the mini-program.
    AwaitingConfirmation(TransferSnapshot),
    /// ACCEPTED, PROCESSING, TRANSFERING, CANCELING: accepted, not final; query later.
    InProgress(TransferSnapshot),
    /// Definitely not paid: the bill is FAIL or CANCELLED, or WeChat verifiably rejected the create.
    /// A new `out_bill_no` may be used — unless an earlier attempt with this one ended unknown.
    Failed { code: String, message: String, snapshot: Option<TransferSnapshot> },
    /// Nobody can tell: query (or resend) with the same `out_bill_no`.
    Unknown { code: String, message: String },
}

/// Sorts a verified bill by its state.
pub fn classify_state(snapshot: TransferSnapshot) -> TransferOutcome {
    match &snapshot.state {
        TransferBillState::Success => TransferOutcome::Succeeded(snapshot),
        TransferBillState::WaitUserConfirm => TransferOutcome::AwaitingConfirmation(snapshot),
        TransferBillState::Accepted
        | TransferBillState::Processing
        | TransferBillState::Transfering
        | TransferBillState::Canceling => TransferOutcome::InProgress(snapshot),
        TransferBillState::Fail | TransferBillState::Cancelled => TransferOutcome::Failed {
            code: snapshot.state.as_str().to_owned(),
            message: snapshot.fail_reason.clone().unwrap_or_default(),
            snapshot: Some(snapshot),
        },
        TransferBillState::Unknown(state) => {
            TransferOutcome::Unknown { code: format!("STATE_{state}"), message: "state not known to linli".into() }
        }
    }
}

/// Sorts a verified error answer to a create. Only general v3 codes that mean "rejected before
/// anything was created" are failures; `INVALID_REQUEST` is not among them because it also covers
/// a reused `out_bill_no` whose earlier bill may exist.
pub fn classify_create_error(status: u16, code: &str, message: &str) -> TransferOutcome {
    let definite = matches!(
        (status, code),
        (400, "PARAM_ERROR") | (403, "NO_AUTH") | (403, "NOT_ENOUGH") | (429, "FREQUENCY_LIMITED")
    );
    if definite {
        TransferOutcome::Failed { code: code.to_owned(), message: message.to_owned(), snapshot: None }
    } else {
        TransferOutcome::Unknown { code: code.to_owned(), message: message.to_owned() }
    }
}

fn bad_answer(message: impl Into<String>) -> TransferOutcome {
    TransferOutcome::Unknown { code: CODE_BAD_ANSWER.to_owned(), message: message.into() }
}

/// Reads a verified 2xx body into a snapshot, insisting it is about `out_bill_no`.
fn snapshot_from<T>(body: &[u8], out_bill_no: &str) -> Result<TransferSnapshot, String>
where
    T: for<'de> Deserialize<'de> + Into<TransferSnapshot>,
{
    let snapshot: TransferSnapshot =
        serde_json::from_slice::<T>(body).map_err(|err| format!("unreadable answer: {err}"))?.into();
    if snapshot.out_bill_no != out_bill_no {
        return Err("answer is about another out_bill_no".to_owned());
    }
    Ok(snapshot)
}

/// Classifies the answer to a create.
pub fn classify_create_answer(answer: V3Answer, out_bill_no: &str) -> TransferOutcome {
    match answer {
        V3Answer::Ok { body, .. } => match snapshot_from::<TransferBillCreated>(&body, out_bill_no) {
            Ok(snapshot) => classify_state(snapshot),
            Err(message) => bad_answer(message),
        },
        V3Answer::Error { status, error } => classify_create_error(status, &error.code, &error.message),
        V3Answer::Unknown { code, message } => TransferOutcome::Unknown { code, message },
    }
}

/// Classifies the answer to a query. Every error is unknown: `NOT_FOUND` may mean not yet created.
pub fn classify_query_answer(answer: V3Answer, out_bill_no: &str) -> TransferOutcome {
    match answer {
        V3Answer::Ok { body, .. } => match snapshot_from::<TransferBill>(&body, out_bill_no) {
            Ok(snapshot) => classify_state(snapshot),
            Err(message) => bad_answer(message),
        },
        V3Answer::Error { error, .. } => TransferOutcome::Unknown { code: error.code, message: error.message },
        V3Answer::Unknown { code, message } => TransferOutcome::Unknown { code, message },
    }
}

/// What a cancel came to. A cancel never settles the payout by itself: follow with a query or
/// wait for the notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// WeChat accepted the cancel (CANCELING or CANCELLED).
    Accepted(CancelledBill),
    /// WeChat verifiably refused (e.g. the bill is already final).
    Refused {
        code: String,
        message: String,
    },
    Unknown {
        code: String,
        message: String,
    },
}

/// Verifies and reads a `MCHTRANSFER.BILL.FINISHED` notification. The result is a final state
/// (SUCCESS, FAIL, CANCELLED) by WeChat's contract, but it is classified like any answer.
pub fn read_bill_finished(
    keys: &WechatPayKeys,
    api_v3_key: &Secret,
    headers: &SignedHeaders,
    body: &[u8],
    now_unix: i64,
) -> Result<TransferBillFinished, NotifyError> {
    let (notification, plaintext) = open_notification(keys, api_v3_key, headers, body, now_unix)?;
    if notification.event_type != EVENT_BILL_FINISHED {
        return Err(NotifyError::EventType(notification.event_type));
    }
    serde_json::from_slice(&plaintext).map_err(|err| NotifyError::Payload(err.to_string()))
}

impl V3Client {
    /// Creates a transfer bill. `Err` only when nothing was sent.
    pub async fn create_transfer_bill(&self, request: &CreateTransferBill) -> Result<TransferOutcome, V3Error> {
        request.validate()?;
        let (user_name, serial) = match &request.user_name {
            Some(name) => {
                let (ciphertext, serial) =
                    self.expected_keys(super::unix_now()).await.encrypt_sensitive(name.expose())?;
                (Some(ciphertext), Some(serial))
            }
            None => (None, None),
        };
        let body = serde_json::to_vec(&CreateBody {
            appid: &request.appid,
            out_bill_no: &request.out_bill_no,
            transfer_scene_id: &request.transfer_scene_id,
            openid: &request.openid,
            user_name,
            transfer_amount: request.transfer_amount,
            transfer_remark: &request.transfer_remark,
            notify_url: request.notify_url.as_deref(),
            user_recv_perception: request.user_recv_perception.as_deref(),
            transfer_scene_report_infos: &request.transfer_scene_report_infos,
        })?;
        let answer = self.execute(Method::POST, BILLS_PATH, Some(body), serial.as_deref()).await?;
        Ok(classify_create_answer(answer, &request.out_bill_no))
    }

    /// Queries a transfer bill by `out_bill_no`.
    pub async fn query_transfer_bill(&self, out_bill_no: &str) -> Result<TransferOutcome, V3Error> {
        check_out_bill_no(out_bill_no)?;
        let path = format!("{BILLS_PATH}/out-bill-no/{out_bill_no}");
        let answer = self.execute(Method::GET, &path, None, None).await?;
        Ok(classify_query_answer(answer, out_bill_no))
    }

    /// Asks WeChat to cancel a bill not yet final (e.g. one the user never confirmed).
    pub async fn cancel_transfer_bill(&self, out_bill_no: &str) -> Result<CancelOutcome, V3Error> {
        check_out_bill_no(out_bill_no)?;
        let path = format!("{BILLS_PATH}/out-bill-no/{out_bill_no}/cancel");
        let answer = self.execute(Method::POST, &path, None, None).await?;
        Ok(match answer {
            V3Answer::Ok { body, .. } => match serde_json::from_slice::<CancelledBill>(&body) {
                Ok(bill) if bill.out_bill_no == out_bill_no => CancelOutcome::Accepted(bill),
                Ok(_) => CancelOutcome::Unknown {
                    code: CODE_BAD_ANSWER.into(),
                    message: "answer is about another out_bill_no".into(),
                },
                Err(err) => CancelOutcome::Unknown { code: CODE_BAD_ANSWER.into(), message: err.to_string() },
            },
            V3Answer::Error { error, .. } => CancelOutcome::Refused { code: error.code, message: error.message },
            V3Answer::Unknown { code, message } => CancelOutcome::Unknown { code, message },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::ApiError;
    use super::*;
    use crate::wechat::pay::crypto::{self, test_keys::*};

    const NOW: i64 = 1_700_000_000;
    const API_V3_KEY: &str = "0123456789abcdef0123456789ABCDEF";

    fn ok(body: &str) -> V3Answer {
        V3Answer::Ok { status: 200, body: body.as_bytes().to_vec() }
    }

    fn error(status: u16, code: &str) -> V3Answer {
        V3Answer::Error { status, error: ApiError { code: code.into(), message: "m".into() } }
    }

    #[test]
    fn states_parse_and_print() {
        for state in
            ["ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING", "SUCCESS", "FAIL", "CANCELING", "CANCELLED"]
        {
            let parsed = TransferBillState::parse(state);
            assert!(!matches!(parsed, TransferBillState::Unknown(_)), "{state}");
            assert_eq!(parsed.as_str(), state);
        }
        assert_eq!(TransferBillState::parse("NEW_ONE"), TransferBillState::Unknown("NEW_ONE".into()));
        assert_eq!(TransferBillState::parse("success"), TransferBillState::Unknown("success".into()));
    }

    #[test]
    fn create_answer_state_table() {
        let created = |state: &str| {
            classify_create_answer(
                ok(&format!(
                    r#"{{"out_bill_no":"B1","transfer_bill_no":"1330000114850082502080052860000","create_time":"2025-01-01T12:00:00+08:00","state":"{state}","package_info":"affffddafdfafddffda=="}}"#
                )),
                "B1",
            )
        };
        match created("WAIT_USER_CONFIRM") {
            TransferOutcome::AwaitingConfirmation(snapshot) => {
                assert_eq!(snapshot.package_info.as_deref(), Some("affffddafdfafddffda=="))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(created("SUCCESS"), TransferOutcome::Succeeded(_)));
        for state in ["ACCEPTED", "PROCESSING", "TRANSFERING", "CANCELING"] {
            assert!(matches!(created(state), TransferOutcome::InProgress(_)), "{state}");
        }
        for state in ["FAIL", "CANCELLED"] {
            assert!(matches!(created(state), TransferOutcome::Failed { snapshot: Some(_), .. }), "{state}");
        }
        assert!(matches!(created("SOMETHING"), TransferOutcome::Unknown { .. }));
        // Answers about another bill, or unreadable ones, are unknown.
        assert!(matches!(
            classify_create_answer(ok(r#"{"out_bill_no":"B2","state":"SUCCESS"}"#), "B1"),
            TransferOutcome::Unknown { .. }
        ));
        assert!(matches!(classify_create_answer(ok("{}"), "B1"), TransferOutcome::Unknown { .. }));
        assert!(matches!(classify_create_answer(ok("not json"), "B1"), TransferOutcome::Unknown { .. }));
    }

    #[test]
    fn create_error_table() {
        for (status, code) in [(400, "PARAM_ERROR"), (403, "NO_AUTH"), (403, "NOT_ENOUGH"), (429, "FREQUENCY_LIMITED")]
        {
            assert!(
                matches!(
                    classify_create_answer(error(status, code), "B1"),
                    TransferOutcome::Failed { snapshot: None, .. }
                ),
                "{status} {code}"
            );
        }
        for (status, code) in [
            (400, "INVALID_REQUEST"),
            (401, "SIGN_ERROR"),
            (404, "NOT_FOUND"),
            (500, "SYSTEM_ERROR"),
            (503, "SYSTEM_ERROR"),
            (403, "SOMETHING_NEW"),
        ] {
            assert!(
                matches!(classify_create_answer(error(status, code), "B1"), TransferOutcome::Unknown { .. }),
                "{status} {code}"
            );
        }
        let unverified = V3Answer::Unknown { code: "LINLI_BAD_SIGNATURE".into(), message: String::new() };
        assert!(matches!(classify_create_answer(unverified, "B1"), TransferOutcome::Unknown { .. }));
    }

    #[test]
    fn query_answer_table() {
        let bill = r#"{"mch_id":"1900001109","out_bill_no":"B1","transfer_bill_no":"T","appid":"wx","state":"FAIL","transfer_amount":400000,"transfer_remark":"奖励","fail_reason":"PAYEE_ACCOUNT_ABNORMAL","openid":"o","create_time":"2015-05-20T13:29:35.120+08:00","update_time":"2015-05-20T13:29:35.120+08:00"}"#;
        match classify_query_answer(ok(bill), "B1") {
            TransferOutcome::Failed { code, message, snapshot: Some(snapshot) } => {
                assert_eq!(code, "FAIL");
                assert_eq!(message, "PAYEE_ACCOUNT_ABNORMAL");
                assert_eq!(snapshot.transfer_bill_no.as_deref(), Some("T"));
            }
            other => panic!("{other:?}"),
        }
        let waiting = r#"{"out_bill_no":"B1","state":"WAIT_USER_CONFIRM"}"#;
        assert!(matches!(
            classify_query_answer(ok(waiting), "B1"),
            TransferOutcome::AwaitingConfirmation(TransferSnapshot { package_info: None, .. })
        ));
        for (status, code) in [(404, "NOT_FOUND"), (400, "PARAM_ERROR"), (500, "SYSTEM_ERROR")] {
            assert!(matches!(classify_query_answer(error(status, code), "B1"), TransferOutcome::Unknown { .. }));
        }
    }

    #[test]
    fn create_body_encrypts_the_name_and_skips_empties() {
        let keys = keys();
        let (ciphertext, serial) = keys.encrypt_sensitive("张三").unwrap();
        assert_eq!(serial, SERIAL);
        let private = crypto::load_private_key_pem(WECHATPAY_KEY).unwrap();
        assert_eq!(crypto::oaep_decrypt(&private, &ciphertext).unwrap(), "张三".as_bytes());
        let body = serde_json::to_value(CreateBody {
            appid: "wx",
            out_bill_no: "B1",
            transfer_scene_id: "1000",
            openid: "o",
            user_name: None,
            transfer_amount: 100,
            transfer_remark: "奖励",
            notify_url: None,
            user_recv_perception: Some("现金奖励"),
            transfer_scene_report_infos: &[TransferSceneReportInfo {
                info_type: "活动名称".into(),
                info_content: "新春".into(),
            }],
        })
        .unwrap();
        assert!(body.get("user_name").is_none() && body.get("notify_url").is_none());
        assert_eq!(body["transfer_amount"], 100);
        assert_eq!(body["transfer_scene_report_infos"][0]["info_type"], "活动名称");
    }

    fn sample_request() -> CreateTransferBill {
        CreateTransferBill {
            appid: "wx".into(),
            out_bill_no: "B1".into(),
            transfer_scene_id: "1000".into(),
            openid: "o".into(),
            user_name: None,
            transfer_amount: 100,
            transfer_remark: "奖励".into(),
            notify_url: None,
            user_recv_perception: None,
            transfer_scene_report_infos: Vec::new(),
        }
    }

    #[test]
    fn create_validation() {
        sample_request().validate().unwrap();
        let mut bad = sample_request();
        bad.out_bill_no = "B-1".into();
        assert!(bad.validate().is_err());
        let mut bad = sample_request();
        bad.transfer_remark = "长".repeat(33);
        assert!(bad.validate().is_err());
        let mut bad = sample_request();
        bad.transfer_amount = 0;
        assert!(bad.validate().is_err());
    }

    #[tokio::test]
    async fn unreachable_server_is_unknown() {
        let outcome = client().create_transfer_bill(&sample_request()).await.unwrap();
        assert!(matches!(outcome, TransferOutcome::Unknown { .. }), "{outcome:?}");
        assert!(client().query_transfer_bill("../x").await.is_err());
    }

    #[test]
    fn bill_finished_notification() {
        let plaintext = r#"{"out_bill_no":"B1","transfer_bill_no":"T","state":"SUCCESS","mchid":"1900001109","transfer_amount":2000,"openid":"o","create_time":"2015-05-20T13:29:35.120+08:00","update_time":"2015-05-20T13:29:35.120+08:00"}"#;
        let body = notification_body(API_V3_KEY, EVENT_BILL_FINISHED, plaintext);
        let headers = wechat_headers(&body, NOW);
        let finished = read_bill_finished(&keys(), &Secret::new(API_V3_KEY), &headers, &body, NOW).unwrap();
        assert_eq!(finished.mch_id.as_deref(), Some("1900001109"));
        assert_eq!(finished.transfer_amount, Some(2000));
        assert!(matches!(classify_state(finished.into()), TransferOutcome::Succeeded(_)));

        let other = notification_body(API_V3_KEY, "TRANSACTION.SUCCESS", plaintext);
        let headers = wechat_headers(&other, NOW);
        assert!(matches!(
            read_bill_finished(&keys(), &Secret::new(API_V3_KEY), &headers, &other, NOW),
            Err(NotifyError::EventType(_))
        ));
        // A body changed after signing is refused before decryption.
        let mut tampered = body.clone();
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        let headers = wechat_headers(&body, NOW);
        assert!(matches!(
            read_bill_finished(&keys(), &Secret::new(API_V3_KEY), &headers, &tampered, NOW),
            Err(NotifyError::Verify(_))
        ));
    }
}
