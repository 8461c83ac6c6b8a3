//! Reaching users: the official account's parametric QR codes ([`qrcode`]) and the mini-program's
//! subscribe messages ([`subscribe`]).
//!
//! - `POST /cgi-bin/qrcode/create` (official account token): a ticket and URL for a temporary or
//!   permanent code carrying a scene; the mock remembers every ticket, its account, scene and
//!   expiry on the mock clock, so [`crate::OaPusher::follow_via_ticket`] can play "a user scanned
//!   this code". `GET /cgi-bin/showqrcode?ticket=…` answers a placeholder PNG (404 once expired).
//! - `POST /cgi-bin/message/subscribe/send` (mini-program token): delivered only to a user who has
//!   accepted the template ([`crate::MockWechat::accept_subscription`]); each message uses one
//!   acceptance. A new user has accepted nothing, so sending to them answers `43101` until a test
//!   accepts.
//!
//! Both check the access token first, as every API does (`41001`, `40001`, `42001`), then the app
//! kind (`48001 api unauthorized` for the other kind's token). The error codes of each API are in
//! its module.
//!
//! Control API (not part of WeChat):
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /__mock/qrcodes` | every QR code created, oldest first ([`QrCode`]) |
//! | `GET /__mock/subscribe-messages` | every subscribe message delivered, oldest first ([`SubscribeMessage`]) |
//! | `POST /__mock/subscriptions` `{"user", "template_id"?, "times"?}` | `{"user", "template_id", "remaining"}`: the user (unionid or mini-program openid) accepted the template (default [`MP_TASK_TEMPLATE_ID`]) `times` more times (default 1) |
//! | `GET /__mock/subscribe-templates` / `POST …` `{"template_id", "appid"?, "keywords"?}` | the registered templates / registers one |
//!
//! [`crate::MockWechat::reset`] forgets QR codes, delivered messages and acceptances; templates stay.

mod http;
pub mod qrcode;
pub mod subscribe;
pub mod template_data;

pub(crate) use http::routes;
pub use qrcode::{QrAction, QrCode, QrCodeRequest, QrTicket};
pub use subscribe::{
    SendRefusal, SubscribeMessage, SubscribeMessageRequest, SubscribeTemplate, SubscriptionError, MP_TASK_TEMPLATE_ID,
};

/// What this area remembers: QR codes, subscribe templates, users' acceptances and delivered messages.
#[derive(Debug)]
pub(crate) struct MessageStore {
    pub(crate) qrcodes: qrcode::QrStore,
    pub(crate) subscribe: subscribe::SubscribeStore,
}

impl MessageStore {
    /// An empty store; [`MP_TASK_TEMPLATE_ID`] is registered for `primary_mini_program`, if any.
    pub(crate) fn new(primary_mini_program: Option<&str>) -> Self {
        Self { qrcodes: qrcode::QrStore::default(), subscribe: subscribe::SubscribeStore::new(primary_mini_program) }
    }

    /// Forgets everything but the registered templates.
    pub(crate) fn reset(&mut self) {
        self.qrcodes = qrcode::QrStore::default();
        self.subscribe.reset();
    }
}
