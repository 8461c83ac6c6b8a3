//! Fault injection: making WeChat misbehave on purpose. A [`Fault`] names an API path and what goes
//! wrong there: a WeChat error body (`errcode`, e.g. `-1 system error`), an HTTP error status
//! (e.g. 503 from WeChat's gateway), a delay before the answer, or a delay followed by one of the
//! two. Faults apply to the next `times` calls of that path (every call until cleared when `times`
//! is absent), oldest fault first, so several can be queued for one path.
//!
//! Every request except the control API's passes through a poem middleware around the
//! whole mock, so any WeChat endpoint (tokens, users, mini-program, later WeChat Pay) can fail
//! without knowing about faults. A call answered by a fault is counted for its path like any other
//! call, but the API itself never sees it: a login code is not used up by a faulted exchange.

use std::sync::Arc;
use std::time::Duration;

use poem::{http::StatusCode, Endpoint, IntoResponse, Request, Response};
use serde::{Deserialize, Serialize};

use crate::state::MockWechat;
use crate::wx_error::{error_response, WxError};

/// Paths under this prefix (the control API) are never faulted.
pub const CONTROL_PREFIX: &str = "/__mock/";
/// The longest delay a fault may add, in milliseconds (one minute).
pub const MAX_FAULT_DELAY_MS: u64 = 60_000;
/// `errmsg` of an injected `errcode` the mock has no WeChat message for (and none was given).
pub const DEFAULT_FAULT_ERRMSG: &str = "mock injected error";

/// One injected misbehaviour; also the JSON body of `POST /__mock/faults`, e.g.
/// `{"path": "/sns/jscode2session", "errcode": -1, "times": 1}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// The API path it applies to, exactly as requested (e.g. `/cgi-bin/token`), without the query.
    pub path: String,
    /// Answer HTTP 200 with this WeChat `errcode` instead of calling the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// The `errmsg` to send with `errcode`; default: WeChat's message for that code (see
    /// [`WxError::known`]), else [`DEFAULT_FAULT_ERRMSG`]. A ` rid: …` suffix is added as WeChat does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errmsg: Option<String>,
    /// Answer with this HTTP status (400–599) and a plain-text body instead of calling the API;
    /// takes precedence over `errcode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Wait this many milliseconds (at most [`MAX_FAULT_DELAY_MS`]) before answering; alone, the
    /// API then answers normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// WeChat Pay paths: answer this pay error code in the API's own shape instead of calling it —
    /// v2 XML `result_code=FAIL, err_code=<code>` (e.g. `SYSTEMERROR` on `sendredpack`,
    /// `NOT_FOUND` on `gethbinfo` while a packet is "processing"), v3 JSON `{"code": <code>}` with
    /// WeChat's status for it (`NOT_FOUND` → 404, `SYSTEM_ERROR` → 500, …), signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_err_code: Option<String>,
    /// Let the API do its work (the payment is made and recorded), then hold the answer back for
    /// this many milliseconds (at most [`MAX_FAULT_DELAY_MS`]): "a timeout after the payment was
    /// made" for a client whose timeout is shorter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_after_ms: Option<u64>,
    /// How many calls the fault applies to (at least 1); `None` means every call until cleared.
    /// In listings, the calls it still applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Fault {
    /// The next `times` calls of `path` answer WeChat error `errcode` (with WeChat's message for it),
    /// e.g. `Fault::errcode("/sns/jscode2session", -1, 1)`.
    pub fn errcode(path: impl Into<String>, errcode: i64, times: u32) -> Self {
        Self { path: path.into(), errcode: Some(errcode), times: Some(times), ..Self::default() }
    }

    /// The next `times` calls of `path` answer HTTP `status` (400–599).
    pub fn http_status(path: impl Into<String>, status: u16, times: u32) -> Self {
        Self { path: path.into(), http_status: Some(status), times: Some(times), ..Self::default() }
    }

    /// The next `times` calls of `path` are answered normally, but only after `delay_ms` milliseconds.
    pub fn delay(path: impl Into<String>, delay_ms: u64, times: u32) -> Self {
        Self { path: path.into(), delay_ms: Some(delay_ms), times: Some(times), ..Self::default() }
    }

    /// The next `times` calls of a WeChat Pay `path` answer pay error `code` (see [`Fault::pay_err_code`]).
    pub fn pay_error(path: impl Into<String>, code: &str, times: u32) -> Self {
        Self { path: path.into(), pay_err_code: Some(code.to_owned()), times: Some(times), ..Self::default() }
    }

    /// The next `times` calls of `path` are carried out, but answered only after `delay_ms`.
    pub fn delay_after(path: impl Into<String>, delay_ms: u64, times: u32) -> Self {
        Self { path: path.into(), delay_after_ms: Some(delay_ms), times: Some(times), ..Self::default() }
    }

    /// The same fault for every call of its path until cleared.
    pub fn until_cleared(self) -> Self {
        Self { times: None, ..self }
    }

    /// The same fault with a delay before its answer.
    pub fn with_delay(self, delay_ms: u64) -> Self {
        Self { delay_ms: Some(delay_ms), ..self }
    }

    /// The same fault with a chosen `errmsg` for its `errcode`.
    pub fn with_errmsg(self, errmsg: impl Into<String>) -> Self {
        Self { errmsg: Some(errmsg.into()), ..self }
    }

    /// Checks that the fault means something and can be served.
    pub fn validate(&self) -> Result<(), FaultError> {
        if !self.path.starts_with('/') {
            return Err(FaultError::PathNotAbsolute(self.path.clone()));
        }
        if self.path.starts_with(CONTROL_PREFIX) {
            return Err(FaultError::ControlPath(self.path.clone()));
        }
        if self.errcode.is_none()
            && self.http_status.is_none()
            && self.delay_ms.is_none()
            && self.pay_err_code.as_deref().is_none_or(str::is_empty)
            && self.delay_after_ms.is_none()
        {
            return Err(FaultError::NothingToDo);
        }
        if self.errcode == Some(0) {
            return Err(FaultError::ZeroErrcode);
        }
        if let Some(status) = self.http_status {
            if !(400..=599).contains(&status) {
                return Err(FaultError::BadHttpStatus(status));
            }
        }
        if let Some(delay) = self.delay_ms.into_iter().chain(self.delay_after_ms).max() {
            if delay > MAX_FAULT_DELAY_MS {
                return Err(FaultError::DelayTooLong(delay));
            }
        }
        if self.times == Some(0) {
            return Err(FaultError::ZeroTimes);
        }
        Ok(())
    }
}

/// Why a fault was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultError {
    /// The path does not start with `/`.
    PathNotAbsolute(String),
    /// The control API cannot be faulted.
    ControlPath(String),
    /// None of `errcode`, `http_status`, `delay_ms`, `pay_err_code`, `delay_after_ms` is set.
    NothingToDo,
    /// `errcode` 0 is success, not a fault.
    ZeroErrcode,
    /// `http_status` is not an error status (400–599).
    BadHttpStatus(u16),
    /// `delay_ms` exceeds [`MAX_FAULT_DELAY_MS`].
    DelayTooLong(u64),
    /// `times` is 0.
    ZeroTimes,
}

impl std::fmt::Display for FaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PathNotAbsolute(path) => write!(f, "path {path:?} must start with /"),
            Self::ControlPath(path) => write!(f, "path {path:?} is part of the control API, which cannot be faulted"),
            Self::NothingToDo => {
                f.write_str("a fault needs errcode, http_status, delay_ms, pay_err_code or delay_after_ms")
            }
            Self::ZeroErrcode => f.write_str("errcode 0 means success, not a fault"),
            Self::BadHttpStatus(status) => write!(f, "http_status {status} is not between 400 and 599"),
            Self::DelayTooLong(delay) => write!(f, "delay_ms {delay} exceeds {MAX_FAULT_DELAY_MS}"),
            Self::ZeroTimes => f.write_str("times must be at least 1 (leave it out for every call)"),
        }
    }
}

impl std::error::Error for FaultError {}

/// The faults waiting to happen, oldest first.
#[derive(Debug, Default)]
pub(crate) struct FaultStore {
    faults: Vec<Fault>,
}

impl FaultStore {
    /// Queues a validated fault.
    pub(crate) fn push(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Forgets every fault; returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        std::mem::take(&mut self.faults).len()
    }

    /// The faults still pending, `times` being the calls each still applies to.
    pub(crate) fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// The fault the next call of `path` meets, if any, counting that call against it.
    pub(crate) fn take(&mut self, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|fault| fault.path == path)?;
        let fault = &mut self.faults[index];
        match fault.times {
            Some(remaining) if remaining <= 1 => Some(self.faults.remove(index)),
            Some(remaining) => {
                fault.times = Some(remaining - 1);
                Some(fault.clone())
            }
            None => Some(fault.clone()),
        }
    }
}

impl MockWechat {
    /// Queues `fault`: the next calls of its path misbehave as it says (see [`Fault`]).
    pub fn inject_fault(&self, fault: Fault) -> Result<(), FaultError> {
        fault.validate()?;
        self.lock().faults.push(fault);
        Ok(())
    }

    /// Removes every pending fault; returns how many there were.
    pub fn clear_faults(&self) -> usize {
        self.lock().faults.clear()
    }

    /// The pending faults, oldest first, with the calls each still applies to as `times`.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.list()
    }

    /// Takes the fault the next call of `path` meets, if any.
    fn take_fault(&self, path: &str) -> Option<Fault> {
        self.lock().faults.take(path)
    }
}

/// The middleware: serves the request through `endpoint` unless a fault for its path says
/// otherwise. Used with `EndpointExt::around` on the whole mock.
pub(crate) async fn apply<E: Endpoint>(mock: MockWechat, endpoint: Arc<E>, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let fault = if path.starts_with(CONTROL_PREFIX) { None } else { mock.take_fault(&path) };
    let Some(fault) = fault else {
        return endpoint.call(req).await.map(IntoResponse::into_response);
    };
    if let Some(delay_ms) = fault.delay_ms {
        tracing::debug!(%path, delay_ms, "injected delay");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    if let Some(status) = fault.http_status {
        tracing::debug!(%path, status, "injected HTTP status");
        mock.lock().record_call(&path);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
        return Ok(body.with_status(status).into_response());
    }
    if let Some(code) = fault.pay_err_code.as_deref().filter(|code| !code.is_empty()) {
        tracing::debug!(%path, code, "injected WeChat Pay error");
        let mut state = mock.lock();
        state.record_call(&path);
        if path.starts_with("/v3/") {
            let (status, body) = crate::pay::v3::fault_error(code);
            // Signed by the merchant the request names, as its real answers are.
            return Ok(state.signed_v3_response(req.header("Authorization"), status, &body));
        }
        return Ok(crate::pay::v2::fault_xml(code).with_content_type("text/plain; charset=UTF-8").into_response());
    }
    if let Some(delay_ms) = fault.delay_after_ms {
        let response = endpoint.call(req).await.map(IntoResponse::into_response);
        tracing::debug!(%path, delay_ms, "injected delay after the work was done");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        return response;
    }
    if let Some(errcode) = fault.errcode {
        tracing::debug!(%path, errcode, "injected WeChat error");
        mock.lock().record_call(&path);
        let errmsg = match &fault.errmsg {
            Some(errmsg) => errmsg.as_str(),
            None => WxError::known(errcode).map_or(DEFAULT_FAULT_ERRMSG, |known| known.errmsg),
        };
        return Ok(error_response(errcode, errmsg, mock.now_ms()));
    }
    endpoint.call(req).await.map(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(Fault::errcode("/sns/jscode2session", -1, 1).validate(), Ok(()));
        assert_eq!(Fault::http_status("/x", 503, 1).until_cleared().validate(), Ok(()));
        assert_eq!(Fault::delay("/x", 10, 1).validate(), Ok(()));
        assert_eq!(Fault::errcode("x", -1, 1).validate(), Err(FaultError::PathNotAbsolute("x".into())));
        assert!(matches!(Fault::errcode("/__mock/reset", -1, 1).validate(), Err(FaultError::ControlPath(_))));
        assert_eq!(Fault { path: "/x".into(), ..Fault::default() }.validate(), Err(FaultError::NothingToDo));
        assert_eq!(Fault::errcode("/x", 0, 1).validate(), Err(FaultError::ZeroErrcode));
        assert_eq!(Fault::http_status("/x", 200, 1).validate(), Err(FaultError::BadHttpStatus(200)));
        assert_eq!(Fault::delay("/x", MAX_FAULT_DELAY_MS + 1, 1).validate(), Err(FaultError::DelayTooLong(60_001)));
        assert_eq!(Fault::errcode("/x", -1, 0).validate(), Err(FaultError::ZeroTimes));
    }

    #[test]
    fn faults_apply_in_order_and_run_out() {
        let mut store = FaultStore::default();
        store.push(Fault::errcode("/a", -1, 2));
        store.push(Fault::http_status("/a", 503, 1));
        store.push(Fault::delay("/b", 5, 1).until_cleared());
        assert_eq!(store.take("/c"), None);
        assert_eq!(store.take("/a").and_then(|f| f.errcode), Some(-1));
        assert_eq!(store.list()[0].times, Some(1), "one call left");
        assert_eq!(store.take("/a").and_then(|f| f.errcode), Some(-1));
        assert_eq!(store.take("/a").and_then(|f| f.http_status), Some(503));
        assert_eq!(store.take("/a"), None);
        for _ in 0..3 {
            assert_eq!(store.take("/b").and_then(|f| f.delay_ms), Some(5), "no times: until cleared");
        }
        assert_eq!(store.clear(), 1);
        assert_eq!(store.take("/b"), None);
    }

    #[test]
    fn json_form() {
        let fault: Fault = serde_json::from_str(r#"{"path":"/sns/jscode2session","errcode":-1,"times":1}"#).unwrap();
        assert_eq!(fault, Fault::errcode("/sns/jscode2session", -1, 1));
        assert!(serde_json::from_str::<Fault>(r#"{"path":"/x","status":503}"#).is_err(), "unknown fields");
        let json = serde_json::to_value(Fault::http_status("/x", 503, 2)).unwrap();
        assert_eq!(json, serde_json::json!({"path": "/x", "http_status": 503, "times": 2}));
    }
}
