//! Simulated WeChat users and the official account's user API, `GET /cgi-bin/user/info`.
//!
//! A user is one person: a unionid per Open Platform account (开放平台), shared by every app bound to
//! that account and different on every other account, as WeChat does, and one openid per app (28
//! characters starting with `o`, different in every app). The person is named by their unionid on
//! the default account ([`MockUser::unionid`], [`UserRecord::unionid`]); their unionids on the
//! accounts named by [`crate::MockApp::open_platform`] are in [`UserRecord::open_platform_unionids`],
//! and any of them names the person where the mock takes a unionid. For each official
//! account the mock keeps whether the person follows it, since when, and through which channel;
//! follow and unfollow pushes from [`crate::push::OaPusher`] update that state, as WeChat's state
//! changes before it tells the account.
//!
//! `user/info` answers as WeChat documents it: the full record for a follower, only `subscribe` and
//! `openid` for someone who does not follow (WeChat stopped returning unionid for non-followers in
//! December 2017), `40003 invalid openid` for an openid the account has never seen.

mod http;
mod ids;
mod store;

pub(crate) use http::routes;
pub(crate) use store::UserStore;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::AppKind;
use crate::state::MockWechat;
use crate::wx_error::WxError;

/// Path of the user information endpoint.
pub const USER_INFO_PATH: &str = "/cgi-bin/user/info";

/// The ids of a simulated user, as the apps of the default configuration see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MockUser {
    /// Openid under the first registered official account (empty if there is none).
    pub oa_openid: String,
    /// Openid under the first registered mini-program (empty if there is none).
    pub mp_openid: String,
    /// The person's unionid on the default Open Platform account, the same for every app bound to
    /// it (apps bound to a named account see the person's unionid there instead).
    pub unionid: String,
}

/// How a user came to follow an official account (`subscribe_scene` of `user/info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscribeScene {
    /// 公众号搜索: found by search.
    #[serde(rename = "ADD_SCENE_SEARCH")]
    Search,
    /// 公众号迁移: moved over from another account.
    #[serde(rename = "ADD_SCENE_ACCOUNT_MIGRATION")]
    AccountMigration,
    /// 名片分享: a shared account card.
    #[serde(rename = "ADD_SCENE_PROFILE_CARD")]
    ProfileCard,
    /// 扫描二维码: a QR code (with `qr_scene` / `qr_scene_str` for a parametric one).
    #[serde(rename = "ADD_SCENE_QR_CODE")]
    QrCode,
    /// 图文页内名称点击: the account name in an article.
    #[serde(rename = "ADD_SCENE_PROFILE_LINK")]
    ProfileLink,
    /// 图文页右上角菜单: the article's menu.
    #[serde(rename = "ADD_SCENE_PROFILE_ITEM")]
    ProfileItem,
    /// 支付后关注: after paying.
    #[serde(rename = "ADD_SCENE_PAID")]
    Paid,
    /// 微信广告: a WeChat ad.
    #[serde(rename = "ADD_SCENE_WECHAT_ADVERTISEMENT")]
    WechatAdvertisement,
    /// 他人转载: a reprinted article.
    #[serde(rename = "ADD_SCENE_REPRINT")]
    Reprint,
    /// 视频号直播: a Channels live stream.
    #[serde(rename = "ADD_SCENE_LIVESTREAM")]
    Livestream,
    /// 视频号: Channels.
    #[serde(rename = "ADD_SCENE_CHANNELS")]
    Channels,
    /// 其他: anything else.
    #[serde(rename = "ADD_SCENE_OTHERS")]
    Others,
}

/// A user's relation to one official account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OaFollow {
    /// Whether the user follows the account now.
    pub subscribed: bool,
    /// When the user last followed, Unix seconds (0 if never).
    pub subscribe_time: i64,
    /// Channel of the last follow.
    pub subscribe_scene: SubscribeScene,
    /// Numeric scene of the parametric QR code of the last follow (0 if none).
    pub qr_scene: u32,
    /// String scene of the parametric QR code of the last follow (empty if none).
    pub qr_scene_str: String,
}

impl OaFollow {
    /// Not following, never followed.
    pub fn never() -> Self {
        Self {
            subscribed: false,
            subscribe_time: 0,
            subscribe_scene: SubscribeScene::Others,
            qr_scene: 0,
            qr_scene_str: String::new(),
        }
    }

    /// Following since `at` (Unix seconds), through `scene`, without a parametric QR code.
    pub fn via(scene: SubscribeScene, at: i64) -> Self {
        Self { subscribed: true, subscribe_time: at, subscribe_scene: scene, ..Self::never() }
    }

    /// Following since `at` through a parametric QR code with scene `scene`: a number that fits a
    /// u32 is a `scene_id` (`qr_scene`), anything else a `scene_str` (`qr_scene_str`).
    pub fn via_qr(scene: &str, at: i64) -> Self {
        let (qr_scene, qr_scene_str) = match scene.parse::<u32>() {
            Ok(id) => (id, String::new()),
            Err(_) => (0, scene.to_owned()),
        };
        Self { qr_scene, qr_scene_str, ..Self::via(SubscribeScene::QrCode, at) }
    }
}

/// Everything the mock knows about one user, as served by `GET /__mock/users/{unionid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// The unionid on the default Open Platform account, which names the person in the mock.
    pub unionid: String,
    /// The unionid on each named Open Platform account some app is bound to (by account name).
    pub open_platform_unionids: BTreeMap<String, String>,
    /// Openid per AppID.
    pub openids: BTreeMap<String, String>,
    /// Follow state per official-account AppID.
    pub follows: BTreeMap<String, OaFollow>,
    /// The operator's remark (`remark`).
    pub remark: String,
    /// Tag ids (`tagid_list`).
    pub tagid_list: Vec<u64>,
    /// Language (`language`).
    pub language: String,
    /// The phone number bound to the WeChat account (`purePhoneNumber`, without country code).
    pub phone: String,
    /// Rated high-risk: mini-program logins are refused with `40226 code blocked`.
    pub blocked: bool,
}

/// Choices for [`MockWechat::add_user_with`]; the default is a fresh person who does not follow.
/// Also the JSON body of `POST /__mock/users` (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserOptions {
    /// A chosen unionid instead of a generated one.
    pub unionid: Option<String>,
    /// A chosen openid under the first official account.
    pub oa_openid: Option<String>,
    /// A chosen openid under the first mini-program.
    pub mp_openid: Option<String>,
    /// Whether the user already follows the first official account.
    pub subscribed: bool,
    /// When they followed, Unix seconds (default: the mock's now).
    pub subscribe_time: Option<i64>,
    /// Through which channel (default: QR code when `qr_scene_str` is set, otherwise search).
    pub subscribe_scene: Option<SubscribeScene>,
    /// The parametric QR scene they followed through (a number is a `scene_id`).
    pub qr_scene_str: Option<String>,
    /// The operator's remark.
    pub remark: String,
    /// Tag ids.
    pub tagid_list: Vec<u64>,
    /// Language, default `zh_CN`.
    pub language: Option<String>,
    /// The phone number bound to the WeChat account, as `purePhoneNumber` (5–20 digits, mainland
    /// China, country code 86); default: a random mainland mobile number `1[3-9]` + 9 digits.
    pub phone: Option<String>,
    /// Whether WeChat rates the user high-risk, refusing mini-program logins with `40226`.
    pub blocked: bool,
}

/// Why a user could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// A chosen id is empty.
    EmptyId,
    /// The chosen unionid belongs to another user.
    UnionidTaken(String),
    /// The chosen phone number is not 5–20 digits.
    InvalidPhoneNumber(String),
    /// The chosen openid belongs to another user of that app.
    OpenidTaken {
        /// The app.
        appid: String,
        /// The openid.
        openid: String,
    },
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyId => f.write_str("ids must not be empty"),
            Self::UnionidTaken(id) => write!(f, "unionid {id} belongs to another user"),
            Self::InvalidPhoneNumber(number) => write!(f, "phone number {number:?} is not 5 to 20 digits"),
            Self::OpenidTaken { appid, openid } => {
                write!(f, "openid {openid} belongs to another user of {appid}")
            }
        }
    }
}

impl std::error::Error for UserError {}

/// The body of a successful `GET /cgi-bin/user/info`, field for field as WeChat sends it. Fields
/// that are `None` are absent (everything but `subscribe` and `openid` for a non-follower).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// 1 if the user follows the account, 0 if not.
    pub subscribe: u8,
    /// The openid asked about.
    pub openid: String,
    /// The user's language, e.g. `zh_CN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Last follow time, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe_time: Option<i64>,
    /// Present only when the account is bound to an Open Platform account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// The operator's remark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Legacy group id, 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groupid: Option<i64>,
    /// Tag ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagid_list: Option<Vec<u64>>,
    /// Follow channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe_scene: Option<SubscribeScene>,
    /// Numeric parametric QR scene, 0 if none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_scene: Option<u32>,
    /// String parametric QR scene, empty if none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_scene_str: Option<String>,
}

impl MockWechat {
    /// Adds a new person with generated ids under every registered app, following nothing.
    pub fn add_user(&self) -> MockUser {
        let mut state = self.lock();
        let now = state.clock.now_ms().div_euclid(1000);
        state.users.insert(&UserOptions::default(), now)
    }

    /// Adds a new person as described by `options` (chosen ids, already following, …).
    pub fn add_user_with(&self, options: &UserOptions) -> Result<MockUser, UserError> {
        let mut state = self.lock();
        let now = state.clock.now_ms().div_euclid(1000);
        state.users.check_choices(options)?;
        Ok(state.users.insert(options, now))
    }

    /// The user with this unionid (on any Open Platform account).
    pub fn user(&self, unionid: &str) -> Option<UserRecord> {
        self.lock().users.record(unionid)
    }

    /// The user known to `appid` as `openid`.
    pub fn user_by_openid(&self, appid: &str, openid: &str) -> Option<UserRecord> {
        let state = self.lock();
        let unionid = state.users.unionid_of(appid, openid)?.to_owned();
        state.users.record(&unionid)
    }

    /// Every user, ordered by unionid.
    pub fn users(&self) -> Vec<UserRecord> {
        self.lock().users.records()
    }

    /// Marks the user as high-risk: from now on WeChat refuses their mini-program logins
    /// (`jscode2session` answers `40226 code blocked`). Returns `false` for an unknown unionid.
    pub fn block_user(&self, unionid: &str) -> bool {
        self.lock().users.set_blocked(unionid, true)
    }

    /// Lifts [`Self::block_user`]. Returns `false` for an unknown unionid.
    pub fn unblock_user(&self, unionid: &str) -> bool {
        self.lock().users.set_blocked(unionid, false)
    }

    /// Records that the user known to official account `oa_appid` as `openid` now follows it.
    /// Returns `false` (and changes nothing) for an openid the account does not know.
    pub fn record_follow(&self, oa_appid: &str, openid: &str, follow: OaFollow) -> bool {
        self.lock().users.set_follow(oa_appid, openid, follow)
    }

    /// Records that the user stopped following `oa_appid` (the last follow's time and channel are
    /// kept). Returns `false` for an openid the account does not know.
    pub fn record_unfollow(&self, oa_appid: &str, openid: &str) -> bool {
        self.lock().users.unfollow(oa_appid, openid)
    }

    /// Answers `GET /cgi-bin/user/info` (and counts the call): the access token first (`41001`,
    /// `40001`, `42001`), then `48001` for a token that is not an official account's, then
    /// `40003 invalid openid` for an openid the account does not know.
    pub fn user_info(&self, access_token: &str, openid: &str) -> Result<UserInfo, WxError> {
        let mut state = self.lock();
        state.record_call(USER_INFO_PATH);
        let now_ms = state.clock.now_ms();
        let appid = state.tokens.check(access_token, now_ms)?;
        let is_oa = state.apps.get(&appid).is_some_and(|app| app.kind == AppKind::OfficialAccount);
        if !is_oa {
            return Err(WxError::API_UNAUTHORIZED);
        }
        let bound = state.open_platform_bound;
        state.users.user_info(&appid, openid, bound).ok_or(WxError::INVALID_OPENID)
    }
}
