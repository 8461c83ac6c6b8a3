//! The mini-program's subscribe messages (订阅消息): `POST /cgi-bin/message/subscribe/send`, the
//! templates an app has, and users' one-time acceptances of them.
//!
//! A user receives a message only after accepting its template in the mini-program
//! (`wx.requestSubscribeMessage`); each acceptance lets one message through. The mock plays that
//! with [`MockWechat::accept_subscription`]. **A new user has accepted nothing**, so a send to them
//! answers `43101` until the test accepts on their behalf.
//!
//! Templates belong to one mini-program. [`MP_TASK_TEMPLATE_ID`] is registered for the first
//! mini-program of the configuration and takes any keywords; a template registered with
//! [`MockWechat::register_subscribe_template`] and a list of keywords also requires each of them.
//!
//! Answers, in the order checked: the token (`41001`, `40001`, `42001`); `48001` for a token that
//! is not a mini-program's; `43002` for GET, `44002` for an empty body, `47001` for a body that is
//! not a JSON object; `40003 invalid openid` for a `touser` the mini-program does not know;
//! `40037 invalid template_id` for a template it does not have; `47003 argument invalid!` with the
//! field WeChat names (`data.thing1.value is empty`, `data.thing1.value invalid`) for data that
//! breaks the template or WeChat's value rules, or an unknown `miniprogram_state` or `lang`;
//! `43101 user refuse to accept the msg` without an acceptance left. Only a delivered message uses
//! an acceptance. Not checked: `page` (WeChat's `41030` needs the app's page list). The value
//! rules are in [`super::template_data`].

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::template_data::{check_data, keyword_kind};
use crate::config::AppKind;
use crate::state::{MockState, MockWechat};
use crate::wx_error::{error_response, WxError};

/// Path of the subscribe-message endpoint.
pub const SUBSCRIBE_SEND_PATH: &str = "/cgi-bin/message/subscribe/send";
/// The template registered for the first mini-program: linli's task notice. Takes any keywords.
pub const MP_TASK_TEMPLATE_ID: &str = "LinliMockTaskTemplate-0123456789abcdefghijk";
/// The `miniprogram_state` values WeChat accepts.
pub const MINIPROGRAM_STATES: [&str; 3] = ["developer", "trial", "formal"];
/// The `miniprogram_state` of a message sent without one: the released version.
pub const DEFAULT_MINIPROGRAM_STATE: &str = "formal";
/// The `lang` values WeChat accepts.
pub const LANGS: [&str; 4] = ["zh_CN", "en_US", "zh_HK", "zh_TW"];
/// The `lang` of a message sent without one.
pub const DEFAULT_LANG: &str = "zh_CN";

/// A subscribe-message template of a mini-program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribeTemplate {
    /// The template id, as `template_id` of a send.
    pub template_id: String,
    /// The mini-program that has it.
    pub appid: String,
    /// The keywords every message must carry (e.g. `thing1`, `time2`); empty: any keywords.
    pub keywords: Vec<String>,
}

/// Why a template could not be registered or a subscription accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionError {
    /// The template id is empty.
    EmptyTemplateId,
    /// The app is not a registered mini-program.
    NotAMiniProgram(String),
    /// A keyword is not a known kind followed by a number (e.g. `thing1`).
    BadKeyword(String),
    /// No template has this id.
    UnknownTemplate(String),
    /// Neither a unionid nor an openid of the template's mini-program.
    UnknownUser(String),
}

impl std::fmt::Display for SubscriptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyTemplateId => f.write_str("the template id must not be empty"),
            Self::NotAMiniProgram(appid) => write!(f, "{appid} is not a registered mini-program"),
            Self::BadKeyword(key) => write!(f, "keyword {key:?} is not a known kind followed by a number, e.g. thing1"),
            Self::UnknownTemplate(id) => write!(f, "no subscribe template {id}"),
            Self::UnknownUser(user) => {
                write!(f, "{user} is neither a unionid nor an openid of the template's mini-program")
            }
        }
    }
}

impl std::error::Error for SubscriptionError {}

/// The body of `POST /cgi-bin/message/subscribe/send`. Text fields that are not strings read as
/// absent; `data` is kept as sent and checked against the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeMessageRequest {
    /// The receiver's openid in the mini-program.
    pub touser: String,
    /// The template.
    pub template_id: String,
    /// The page a tap on the message opens.
    pub page: Option<String>,
    /// `{"thing1": {"value": "…"}, …}`.
    pub data: Value,
    /// `developer`, `trial` or `formal`.
    pub miniprogram_state: Option<String>,
    /// `zh_CN`, `en_US`, `zh_HK` or `zh_TW`.
    pub lang: Option<String>,
}

impl SubscribeMessageRequest {
    /// A message to `touser` with template `template_id` and `data` as keyword/value pairs.
    pub fn new(touser: impl Into<String>, template_id: impl Into<String>, data: &[(&str, &str)]) -> Self {
        let data = data.iter().map(|(key, value)| ((*key).to_owned(), serde_json::json!({ "value": value }))).collect();
        Self {
            touser: touser.into(),
            template_id: template_id.into(),
            page: None,
            data: Value::Object(data),
            miniprogram_state: None,
            lang: None,
        }
    }

    /// Reads a request body: `44002` when empty, `47001` when not a JSON object.
    pub(crate) fn parse_body(bytes: &[u8]) -> Result<Self, WxError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(WxError::EMPTY_POST_DATA);
        }
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(bytes) else {
            return Err(WxError::DATA_FORMAT_ERROR);
        };
        let mut text = |name: &str| match fields.remove(name) {
            Some(Value::String(value)) => Some(value),
            _ => None,
        };
        Ok(Self {
            touser: text("touser").unwrap_or_default(),
            template_id: text("template_id").unwrap_or_default(),
            page: text("page"),
            miniprogram_state: text("miniprogram_state"),
            lang: text("lang"),
            data: fields.remove("data").unwrap_or(Value::Null),
        })
    }
}

/// A subscribe message WeChat delivered, as served by `GET /__mock/subscribe-messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscribeMessage {
    /// The mini-program that sent it.
    pub appid: String,
    /// The receiver's openid in it.
    pub touser: String,
    /// The receiver's unionid.
    pub unionid: String,
    /// The template.
    pub template_id: String,
    /// The page a tap opens.
    pub page: Option<String>,
    /// The values by keyword.
    pub data: BTreeMap<String, String>,
    /// `developer`, `trial` or `formal`.
    pub miniprogram_state: String,
    /// The language.
    pub lang: String,
    /// When it was delivered, Unix seconds.
    pub sent_at: i64,
}

/// A refused send: WeChat's error, with the field it names for `47003`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRefusal {
    /// The error code and its message.
    pub error: WxError,
    /// What WeChat appends to the message, e.g. `data.thing1.value is empty`.
    pub hint: Option<String>,
}

impl SendRefusal {
    fn argument_invalid(hint: String) -> Self {
        Self { error: WxError::ARGUMENT_INVALID, hint: Some(hint) }
    }

    /// The `errmsg` without the `rid:` suffix, e.g. `argument invalid! data.thing1.value is empty`.
    pub fn errmsg(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{} {hint}", self.error.errmsg),
            None => self.error.errmsg.to_owned(),
        }
    }

    /// The HTTP answer: status 200 and WeChat's error body.
    pub(crate) fn to_response(&self, now_ms: i64) -> poem::Response {
        error_response(self.error.errcode, &self.errmsg(), now_ms)
    }
}

impl From<WxError> for SendRefusal {
    fn from(error: WxError) -> Self {
        Self { error, hint: None }
    }
}

impl std::fmt::Display for SendRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errcode {}: {}", self.error.errcode, self.errmsg())
    }
}

impl std::error::Error for SendRefusal {}

/// Templates, acceptances left per (unionid, template), and delivered messages.
#[derive(Debug)]
pub(crate) struct SubscribeStore {
    templates: BTreeMap<String, SubscribeTemplate>,
    accepted: BTreeMap<(String, String), u32>,
    sent: Vec<SubscribeMessage>,
}

impl SubscribeStore {
    /// [`MP_TASK_TEMPLATE_ID`] registered for `primary_mini_program`, if there is one.
    pub(crate) fn new(primary_mini_program: Option<&str>) -> Self {
        let templates = primary_mini_program
            .map(|appid| {
                let template = SubscribeTemplate {
                    template_id: MP_TASK_TEMPLATE_ID.to_owned(),
                    appid: appid.to_owned(),
                    keywords: vec![],
                };
                (template.template_id.clone(), template)
            })
            .into_iter()
            .collect();
        Self { templates, accepted: BTreeMap::new(), sent: Vec::new() }
    }

    /// Forgets acceptances and delivered messages.
    pub(crate) fn reset(&mut self) {
        self.accepted.clear();
        self.sent.clear();
    }
}

impl MockState {
    /// The unionid of `user` (a unionid, or an openid of `appid`) if `appid` knows them.
    fn subscriber(&self, appid: &str, user: &str) -> Option<String> {
        if self.users.openid_of(user, appid).is_some() {
            return Some(user.to_owned());
        }
        self.users.unionid_of(appid, user).map(str::to_owned)
    }
}

impl MockWechat {
    /// Registers (or replaces) a template of mini-program `appid`; messages with it must carry
    /// every keyword in `keywords` (none: any keywords).
    pub fn register_subscribe_template(
        &self,
        appid: &str,
        template_id: &str,
        keywords: &[&str],
    ) -> Result<SubscribeTemplate, SubscriptionError> {
        if template_id.is_empty() {
            return Err(SubscriptionError::EmptyTemplateId);
        }
        if let Some(bad) = keywords.iter().find(|key| keyword_kind(key).is_none()) {
            return Err(SubscriptionError::BadKeyword((*bad).to_owned()));
        }
        let mut state = self.lock();
        if !state.apps.get(appid).is_some_and(|app| app.kind == AppKind::MiniProgram) {
            return Err(SubscriptionError::NotAMiniProgram(appid.to_owned()));
        }
        let template = SubscribeTemplate {
            template_id: template_id.to_owned(),
            appid: appid.to_owned(),
            keywords: keywords.iter().map(|key| (*key).to_owned()).collect(),
        };
        state.messages.subscribe.templates.insert(template_id.to_owned(), template.clone());
        Ok(template)
    }

    /// The first registered mini-program, which [`MP_TASK_TEMPLATE_ID`] belongs to.
    pub(crate) fn primary_mini_program(&self) -> Option<String> {
        self.lock().users.primary_mini_program().map(str::to_owned)
    }

    /// Every registered template, ordered by id.
    pub fn subscribe_templates(&self) -> Vec<SubscribeTemplate> {
        self.lock().messages.subscribe.templates.values().cloned().collect()
    }

    /// The user (a unionid, or an openid of the template's mini-program) accepts template
    /// `template_id` `times` more times, as tapping "allow" in `wx.requestSubscribeMessage` does
    /// once; returns how many messages of it they will now accept.
    pub fn accept_subscription(&self, user: &str, template_id: &str, times: u32) -> Result<u32, SubscriptionError> {
        let mut state = self.lock();
        let appid = state
            .messages
            .subscribe
            .templates
            .get(template_id)
            .ok_or_else(|| SubscriptionError::UnknownTemplate(template_id.to_owned()))?
            .appid
            .clone();
        let unionid = state.subscriber(&appid, user).ok_or_else(|| SubscriptionError::UnknownUser(user.to_owned()))?;
        let left = state.messages.subscribe.accepted.entry((unionid, template_id.to_owned())).or_default();
        *left = left.saturating_add(times);
        Ok(*left)
    }

    /// How many more messages of `template_id` the user (unionid or openid) accepts; 0 when unknown.
    pub fn subscription_quota(&self, user: &str, template_id: &str) -> u32 {
        let state = self.lock();
        let Some(template) = state.messages.subscribe.templates.get(template_id) else { return 0 };
        let Some(unionid) = state.subscriber(&template.appid, user) else { return 0 };
        state.messages.subscribe.accepted.get(&(unionid, template_id.to_owned())).copied().unwrap_or(0)
    }

    /// Every subscribe message delivered, oldest first.
    pub fn subscribe_messages(&self) -> Vec<SubscribeMessage> {
        self.lock().messages.subscribe.sent.clone()
    }

    /// Answers `POST /cgi-bin/message/subscribe/send` (and counts the call); see the module
    /// documentation for the checks.
    pub fn send_subscribe_message(
        &self,
        access_token: &str,
        request: &SubscribeMessageRequest,
    ) -> Result<(), SendRefusal> {
        self.answer_subscribe_send(access_token, Ok(request))
    }

    /// Counts a subscribe/send call and answers it; `request` is the body, or the error the
    /// request already earned (wrong method, empty or malformed body), reported after the token checks.
    pub(crate) fn answer_subscribe_send(
        &self,
        access_token: &str,
        request: Result<&SubscribeMessageRequest, WxError>,
    ) -> Result<(), SendRefusal> {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.record_call(SUBSCRIBE_SEND_PATH);
        let now_ms = state.clock.now_ms();
        let appid = state.tokens.check(access_token, now_ms)?;
        if !state.apps.get(&appid).is_some_and(|app| app.kind == AppKind::MiniProgram) {
            return Err(WxError::API_UNAUTHORIZED.into());
        }
        let request = request?;
        let unionid = state.users.unionid_of(&appid, &request.touser).ok_or(WxError::INVALID_OPENID)?.to_owned();
        let store = &mut state.messages.subscribe;
        let template = store
            .templates
            .get(&request.template_id)
            .filter(|template| template.appid == appid)
            .ok_or(WxError::INVALID_TEMPLATE_ID)?;
        let miniprogram_state =
            one_of(&request.miniprogram_state, &MINIPROGRAM_STATES, DEFAULT_MINIPROGRAM_STATE, "miniprogram_state")?;
        let lang = one_of(&request.lang, &LANGS, DEFAULT_LANG, "lang")?;
        let data = check_data(&request.data, &template.keywords).map_err(SendRefusal::argument_invalid)?;
        let left = store.accepted.get_mut(&(unionid.clone(), request.template_id.clone())).filter(|left| **left > 0);
        let Some(left) = left else {
            return Err(WxError::USER_REFUSE_TO_ACCEPT_MSG.into());
        };
        *left -= 1;
        store.sent.push(SubscribeMessage {
            appid,
            touser: request.touser.clone(),
            unionid,
            template_id: request.template_id.clone(),
            page: request.page.clone(),
            data,
            miniprogram_state,
            lang,
            sent_at: now_ms.div_euclid(1000),
        });
        Ok(())
    }
}

/// The value of an optional enumerated field: `default` when absent or empty.
fn one_of(value: &Option<String>, allowed: &[&str], default: &str, name: &str) -> Result<String, SendRefusal> {
    match value.as_deref() {
        None | Some("") => Ok(default.to_owned()),
        Some(value) if allowed.contains(&value) => Ok(value.to_owned()),
        Some(_) => Err(SendRefusal::argument_invalid(format!("{name} invalid"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parsing() {
        assert_eq!(SubscribeMessageRequest::parse_body(b"\n"), Err(WxError::EMPTY_POST_DATA));
        assert_eq!(SubscribeMessageRequest::parse_body(b"[1]"), Err(WxError::DATA_FORMAT_ERROR));
        let parsed = SubscribeMessageRequest::parse_body(
            br#"{"touser":"o1","template_id":"t","page":"pages/task?id=1","data":{"thing1":{"value":"x"}},"lang":"en_US","miniprogram_state":7}"#,
        )
        .unwrap();
        let expected = SubscribeMessageRequest {
            page: Some("pages/task?id=1".into()),
            lang: Some("en_US".into()),
            ..SubscribeMessageRequest::new("o1", "t", &[("thing1", "x")])
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn optional_fields_default_like_wechat() {
        let state = |value: Option<&str>| {
            one_of(&value.map(str::to_owned), &MINIPROGRAM_STATES, DEFAULT_MINIPROGRAM_STATE, "miniprogram_state")
        };
        assert_eq!(state(None).unwrap(), "formal");
        assert_eq!(state(Some("")).unwrap(), "formal");
        assert_eq!(state(Some("trial")).unwrap(), "trial");
        assert_eq!(one_of(&None, &LANGS, DEFAULT_LANG, "lang").unwrap(), "zh_CN");
        let refused = state(Some("release")).unwrap_err();
        assert_eq!(refused.errmsg(), "argument invalid! miniprogram_state invalid");
    }
}
