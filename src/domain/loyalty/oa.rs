//! What the official account's pushes do: a follow makes (or finds) a resident and may earn the
//! first-follow and referral rewards; a check-in by menu or keyword earns the day's points; an
//! unfollow is recorded. Each push has one effect however often WeChat delivers it, and every
//! delivery gets the answer the first one got.
//!
//! The URL signature covers the token, timestamp and nonce, not the body, so whoever sees one
//! callback URL (in a proxy's or an access log) could post any body under it while its timestamp
//! is fresh. Each URL's (timestamp, nonce) is therefore bound, durably and for every instance, to
//! the SHA-256 of the first body taken under it, in the transaction that applies that body: a
//! different body under a bound URL is refused (409 `push_nonce_reused`) and changes nothing;
//! the same body again is a redelivery and gets the first answer. A safe-mode encrypted push is
//! the exception ([`SignedPush::sealed`]): its `msg_signature` already ties its body to the URL.

use crate::db::community::orgs::OrgKind;
use crate::db::group::GroupCommit;
use crate::db::loyalty::points::ProgrammeRow;
use crate::db::{self, Db, Tx};
use crate::domain::community::residents::{self, invite_code_of_scene, AppKind};
use crate::domain::loyalty::checkin_writer::{CheckinPush, CheckinWriter, Handled};
use crate::domain::loyalty::points::{self, Checkin, Kind, Posted, Posting, Rules, Source};
use crate::domain::loyalty::pushes::{nonce_reused, SignedPush};
use crate::domain::{DomainError, DomainResult};
use crate::wechat::api::{AppCredentials, WechatClient};
use crate::wechat::oa::message::{Event, Message, MessageKind};

/// The official account a push arrived for.
#[derive(Clone, Debug)]
pub struct OfficialAccount {
    pub appid: String,
    /// For calls back to WeChat (user info); absent, unionids are not looked up.
    pub credentials: Option<AppCredentials>,
    /// The property company the account belongs to; absent, nothing earns points.
    pub company_id: Option<i64>,
}

/// What handling a push needs of the instance: storage, the group committer, the check-in
/// writer, and the WeChat client (to look a new follower's unionid up). Cheap to clone.
#[derive(Clone)]
pub struct PushServices {
    pub db: Db,
    pub group: GroupCommit,
    pub checkins: CheckinWriter,
    pub wechat: WechatClient,
}

/// Handles one push and answers the text to reply with (`None`: reply `success`). `at_ms` is
/// when the resident acted (the push's `CreateTime`, checked by the caller against the clock):
/// check-in days and records are dated by it, so a redelivery lands on the same day.
pub async fn handle_push(
    services: &PushServices,
    oa: &OfficialAccount,
    signed: &SignedPush,
    msg: &Message,
    at_ms: i64,
) -> DomainResult<Option<String>> {
    let PushServices { db, group, checkins, wechat } = services;
    let key = msg.dedupe_key();
    // The festival-evening path: a check-in by a resident we know, written in a group of many.
    if let Some(company_id) = oa.company_id {
        if let Some(programme) = checkins.programme(company_id).await? {
            if is_checkin(msg, &programme) {
                let (msg_type, event) = labels(msg);
                let push = CheckinPush {
                    appid: oa.appid.clone(),
                    signed: signed.clone(),
                    dedupe_key: key.clone(),
                    openid: msg.from_user.clone(),
                    msg_type: if msg_type == "text" { "text" } else { "event" },
                    event,
                    at_ms,
                };
                match checkins.write(programme, push).await? {
                    Handled::Reply(reply) => return Ok(reply),
                    Handled::NonceReused => return Err(nonce_reused()),
                    Handled::Stranger => {}
                }
            }
        }
    }
    // A redelivery under its own URL is answered from the read pool; another body under a bound
    // URL is refused there too. A URL not bound yet is bound in the write below.
    if signed.sealed {
        if let Some(reply) = db::wechat::seen_push(db.reader(), &oa.appid, &key).await? {
            return Ok(reply);
        }
    } else {
        match db::wechat::nonce_binding(db.reader(), &oa.appid, signed.url_timestamp, &signed.nonce).await? {
            Some(bound) if bound != signed.body_sha256 => return Err(nonce_reused()),
            Some(_) => {
                if let Some(reply) = db::wechat::seen_push(db.reader(), &oa.appid, &key).await? {
                    return Ok(reply);
                }
            }
            None => {}
        }
    }
    // Learn the unionid of an openid new to us before the transaction: no transaction is held
    // open across a call to WeChat. A failure only means the resident is keyed by openid for now.
    let unionid = if needs_resident(msg)
        && db::community::residents::identity(db.reader(), &oa.appid, &msg.from_user).await?.is_none()
    {
        lookup_unionid(wechat, oa, &msg.from_user).await
    } else {
        None
    };
    // The write goes through the group writer: many pushes share a commit, each answered once
    // committed. One resident's pushes share a lane, so they are applied in order.
    let lane = msg.from_user.bytes().fold(0i64, |h, b| h.wrapping_mul(31).wrapping_add(i64::from(b)));
    let (oa, msg, signed) = (oa.clone(), msg.clone(), signed.clone());
    group
        .run(lane, move |tx| {
            Box::pin(async move { apply_push(tx, &oa, &signed, &msg, &key, unionid.as_deref(), at_ms).await })
        })
        .await
        .map_err(|e| DomainError::Upstream(e.to_string()))?
}

/// Binds the push's URL to its body, claims its dedupe row and applies it, in the caller's
/// transaction; a redelivery gets the first delivery's answer, another body under the URL a
/// refusal (the job's savepoint is rolled back: nothing of it stays).
async fn apply_push(
    tx: &mut Tx,
    oa: &OfficialAccount,
    signed: &SignedPush,
    msg: &Message,
    key: &str,
    unionid: Option<&str>,
    now: i64,
) -> DomainResult<Option<String>> {
    if let Some(claim) = signed.claim() {
        if !db::wechat::bind_nonces(tx, &oa.appid, &[claim], db::now_ms()).await?.is_empty() {
            return Err(nonce_reused());
        }
    }
    let (msg_type, event) = labels(msg);
    if !db::wechat::claim_push(tx, &oa.appid, key, &msg.from_user, msg_type, event.as_deref(), now).await? {
        // A redelivery: the first delivery has committed (a concurrent one waited for it), or is
        // earlier in this same group.
        return Ok(db::wechat::seen_push(&mut **tx, &oa.appid, key).await?.flatten());
    }
    let reply = apply(tx, oa, msg, unionid, now).await?;
    db::wechat::set_push_reply(tx, &oa.appid, key, reply.as_deref()).await?;
    Ok(reply)
}

/// Whether the push is a check-in under the programme's rules: its menu key or its keyword.
fn is_checkin(msg: &Message, p: &ProgrammeRow) -> bool {
    match &msg.kind {
        MessageKind::Event(Event::Click { key }) => *key == p.checkin_menu_key,
        MessageKind::Text { content } => content.trim() == p.checkin_keyword,
        _ => false,
    }
}

fn needs_resident(msg: &Message) -> bool {
    matches!(
        msg.kind,
        MessageKind::Text { .. }
            | MessageKind::Event(Event::Subscribe { .. } | Event::Scan { .. } | Event::Click { .. })
    )
}

fn labels(msg: &Message) -> (&str, Option<String>) {
    match &msg.kind {
        MessageKind::Text { .. } => ("text", None),
        MessageKind::Other { msg_type } => (msg_type.as_str(), None),
        MessageKind::Event(e) => ("event", Some(e.name_lowercase().into_owned())),
    }
}

async fn lookup_unionid(wechat: &WechatClient, oa: &OfficialAccount, openid: &str) -> Option<String> {
    let creds = oa.credentials.as_ref()?;
    match wechat.user_info(creds, openid).await {
        Ok(info) => info.unionid.filter(|u| !u.is_empty()),
        Err(e) => {
            tracing::warn!(error = %e, "user info lookup failed; continuing without a unionid");
            None
        }
    }
}

async fn programme(tx: &mut Tx, oa: &OfficialAccount, now: i64) -> DomainResult<Option<ProgrammeRow>> {
    let Some(company_id) = oa.company_id else { return Ok(None) };
    match db::community::orgs::get(&mut **tx, company_id).await? {
        Some(company) if company.kind == OrgKind::Company && company.archived_at.is_none() => {
            Ok(Some(points::programme_for(tx, &company, now).await?))
        }
        _ => {
            tracing::warn!(company_id, "LINLI_OA_COMPANY_ID names no active property company; no points are earned");
            Ok(None)
        }
    }
}

async fn apply(
    tx: &mut Tx,
    oa: &OfficialAccount,
    msg: &Message,
    unionid: Option<&str>,
    now: i64,
) -> DomainResult<Option<String>> {
    let openid = msg.from_user.as_str();
    match &msg.kind {
        MessageKind::Event(Event::Subscribe { scene, .. }) => {
            follow(tx, oa, openid, scene.as_deref(), unionid, now).await
        }
        MessageKind::Event(Event::Unsubscribe) => {
            if let Some(identity) = db::community::residents::identity(&mut **tx, &oa.appid, openid).await? {
                db::community::residents::record_follow(tx, &identity, false, None, now).await?;
            }
            Ok(None)
        }
        MessageKind::Event(Event::Click { key }) => {
            let resident = residents::find_or_create(tx, AppKind::Oa, &oa.appid, openid, unionid, now).await?;
            match programme(tx, oa, now).await? {
                Some(p) if *key == p.checkin_menu_key => {
                    check_in_reply(tx, &p, resident.resident.id, now).await.map(Some)
                }
                _ => Ok(None),
            }
        }
        MessageKind::Text { content } => {
            let resident = residents::find_or_create(tx, AppKind::Oa, &oa.appid, openid, unionid, now).await?;
            match programme(tx, oa, now).await? {
                Some(p) if content.trim() == p.checkin_keyword => {
                    check_in_reply(tx, &p, resident.resident.id, now).await.map(Some)
                }
                Some(p) => Ok(p.default_reply.clone()),
                None => Ok(None),
            }
        }
        MessageKind::Event(Event::Scan { scene, .. }) => {
            // An existing follower scanning a QR code: known to us from now on, no follow reward;
            // a task invitation may still attribute them.
            let found = residents::find_or_create(tx, AppKind::Oa, &oa.appid, openid, unionid, now).await?;
            task_invitation(tx, scene, found.resident.id, now).await?;
            Ok(None)
        }
        _ => {
            let (msg_type, event) = labels(msg);
            tracing::info!(msg_type, event = event.as_deref().unwrap_or(""), "push acknowledged without effect");
            Ok(None)
        }
    }
}

/// A follow: the resident, the follow history, the first-follow reward (once per resident,
/// ever), and the referral reward when a resident new to the account came through an invitation.
async fn follow(
    tx: &mut Tx,
    oa: &OfficialAccount,
    openid: &str,
    scene: Option<&str>,
    unionid: Option<&str>,
    now: i64,
) -> DomainResult<Option<String>> {
    let found = residents::find_or_create(tx, AppKind::Oa, &oa.appid, openid, unionid, now).await?;
    let resident_id = found.resident.id;
    let first_follow = db::community::residents::follow_count(tx, resident_id).await? == 0;
    db::community::residents::record_follow(tx, &found.identity, true, scene, now).await?;
    if let Some(scene) = scene {
        task_invitation(tx, scene, resident_id, now).await?;
    }
    let Some(p) = programme(tx, oa, now).await? else {
        return Ok(Some("欢迎关注！".to_owned()));
    };
    let rules = Rules::of(&p);
    db::loyalty::points::open_account(tx, p.id, resident_id, now).await?;

    let mut earned = 0;
    if rules.follow_points > 0 {
        let posting = Posting {
            kind: Kind::Earn,
            source: Source::Follow,
            reference: format!("follow:{resident_id}"),
            amount: rules.follow_points,
            operator: None,
            remark: None,
        };
        // The reference makes it once per resident, ever: re-follows replay it.
        if let Posted::New(_) = points::post(tx, p.id, resident_id, &posting, now).await? {
            earned = rules.follow_points;
        }
    }
    if first_follow {
        let trigger = format!("resident:{resident_id}");
        crate::domain::offers::coupon_rules::fire(
            tx,
            p.company_id,
            crate::domain::offers::coupon_rules::Trigger::FirstFollow,
            resident_id,
            &trigger,
            now,
        )
        .await?;
        if let Some(code) = scene.and_then(invite_code_of_scene) {
            reward_referral(tx, &p, &rules, resident_id, code, scene.unwrap_or_default(), now).await?;
        }
    }
    let balance = db::loyalty::points::account(&mut **tx, p.id, resident_id).await?.map_or(0, |a| a.balance);
    let keyword = &rules.checkin_keyword;
    Ok(Some(if earned > 0 {
        format!("欢迎关注！关注奖励 {earned} 积分，当前积分 {balance}。回复「{keyword}」每日签到领积分。")
    } else {
        format!("欢迎回来！当前积分 {balance}。回复「{keyword}」每日签到领积分。")
    }))
}

/// A follow or scan through a task's invitation QR code attributes the resident to it (when the
/// rules allow; a refusal changes nothing and is only logged).
async fn task_invitation(tx: &mut Tx, scene: &str, resident_id: i64, now: i64) -> DomainResult<()> {
    if crate::domain::tasks::parse_scene(scene).is_none() {
        return Ok(());
    }
    match crate::domain::tasks::attribute(tx, scene, resident_id, "oa_qr", now).await? {
        Ok(inv) => {
            tracing::info!(task = inv.task_id, inviter = inv.inviter_id, invitee = resident_id, "invitee attributed")
        }
        Err(refusal) => tracing::info!(?refusal, invitee = resident_id, "task invitation not attributed"),
    }
    Ok(())
}

async fn reward_referral(
    tx: &mut Tx,
    p: &ProgrammeRow,
    rules: &Rules,
    invitee_id: i64,
    code: &str,
    scene: &str,
    now: i64,
) -> DomainResult<()> {
    let Some(inviter) = db::community::residents::by_invite_code(tx, code).await? else { return Ok(()) };
    if inviter.id == invitee_id
        || !db::community::residents::insert_referral(tx, invitee_id, inviter.id, scene, now).await?
    {
        return Ok(());
    }
    if rules.referral_points > 0 {
        let posting = Posting {
            kind: Kind::Earn,
            source: Source::Referral,
            reference: format!("referral:{invitee_id}"),
            amount: rules.referral_points,
            operator: None,
            remark: Some(format!("邀请新邻居关注 (resident {invitee_id})")),
        };
        points::post(tx, p.id, inviter.id, &posting, now).await?;
    }
    Ok(())
}

async fn check_in_reply(tx: &mut Tx, p: &ProgrammeRow, resident_id: i64, now: i64) -> DomainResult<String> {
    let c: Checkin = points::check_in(tx, p, resident_id, now).await?;
    Ok(c.message())
}
