//! Tasks: "invite neighbours to bind their home" and "invite neighbours to shop", rewarded once
//! per `target` real new neighbours.
//!
//! An invitation travels as a scene, `t<task id>_<invite code>`: in an official-account QR code
//! (`qrscene_t12_ABCDEFGH` when followed through it) or a mini-program link. The invitee is
//! attributed to the inviter's task once ([`attribute`]): never to the inviter themself, never when
//! already bound (bind tasks) or already a customer (shop tasks), never twice to one task. The
//! attribution counts when, within the task's window, the invitee first becomes a verified resident
//! of a household other than the inviter's ([`on_verified`]) or makes a first purchase at the
//! target merchant ([`on_purchase`]) — in the transaction of that binding or order — and at most
//! `daily_cap` of one inviter's invitations count per day. Counting locks the inviter's hold, so
//! rounds are decided one at a time and each round's reward is granted once (unique by task,
//! resident and round): points, balance, or a red packet through the payout outbox.

use serde_json::json;

use crate::codes::ErrorCode;
use crate::db::community::bindings::BindingRow;
use crate::db::community::orgs::OrgKind;
use crate::db::community::orgs::OrgRow;
use crate::db::tasks::{
    self as store, Figures, HoldRow, InvitationRow, MyTask, NewMessage, NewReward, QrRow, TaskFields, TaskFilter,
    TaskRow,
};
pub use crate::db::tasks::{TaskCategory, TaskMode, TaskReward, TaskState};
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::community::orgs::company_of;
use crate::domain::community::sessions::ResidentActor;
use crate::domain::loyalty::points::{self, Kind, Posting, Source};
use crate::domain::money::payouts::{self, Display, Payer, Queue, Wake};
use crate::domain::money::split::Channel;
use crate::domain::money::wallet::{self, Credit};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{operators::audit, required_text, DomainError, DomainResult};

const DAY_MS: i64 = 86_400_000;
/// The template kind task rewards are announced with (mapped to a template id when sent).
pub const REWARD_MESSAGE: &str = "task_reward";
/// Where a reward message opens the mini-program.
pub const TASKS_PAGE: &str = "pages/tasks/index";

/// A task's terms as an operator writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInput {
    pub theme: String,
    pub mode: TaskMode,
    pub category: TaskCategory,
    pub merchant_id: Option<i64>,
    pub target: i64,
    pub reward_kind: TaskReward,
    pub reward_amount: i64,
    pub reward_channel: Option<Channel>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub max_rounds: i64,
    pub daily_cap: i64,
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid(ErrorCode::InvalidTask, message)
}

impl TaskInput {
    fn validated(&self) -> DomainResult<TaskFields> {
        if self.category == TaskCategory::InviteBind && self.merchant_id.is_some() {
            return Err(invalid("merchant_id is only for invite_shop tasks"));
        }
        if !(1..=100).contains(&self.target) {
            return Err(invalid("target must be 1..=100 invitees"));
        }
        if !(1..=100).contains(&self.max_rounds) || !(1..=1000).contains(&self.daily_cap) {
            return Err(invalid("max_rounds must be 1..=100 and daily_cap 1..=1000"));
        }
        let channel = match (self.reward_kind, self.reward_channel) {
            (TaskReward::Points | TaskReward::Balance, None) if (1..=1_000_000).contains(&self.reward_amount) => None,
            (TaskReward::RedPacket, Some(c @ (Channel::CashRedPacket | Channel::Transfer))) => {
                let limits = c.limits();
                if !(limits.min_fen..=limits.max_fen).contains(&self.reward_amount) {
                    return Err(invalid(format!("a {c} reward is {}..={} fen", limits.min_fen, limits.max_fen)));
                }
                Some(c)
            }
            (TaskReward::RedPacket, None | Some(Channel::Balance)) => {
                return Err(invalid("a red_packet reward needs reward_channel cash_red_packet or transfer"))
            }
            (TaskReward::Points | TaskReward::Balance, Some(_)) => {
                return Err(invalid("reward_channel is only for red_packet rewards"))
            }
            (TaskReward::Points | TaskReward::Balance, None) => {
                return Err(invalid("reward_amount must be 1..=1000000"))
            }
        };
        if let Some(why) = crate::domain::window_refusal("starts_at", self.starts_at, "ends_at", self.ends_at) {
            return Err(invalid(why));
        }
        Ok(TaskFields {
            theme: required_text("theme", &self.theme, 64)?,
            mode: self.mode,
            category: self.category,
            merchant_id: self.merchant_id,
            target: self.target,
            reward_kind: self.reward_kind,
            reward_amount: self.reward_amount,
            reward_channel: channel,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            max_rounds: self.max_rounds,
            daily_cap: self.daily_cap,
        })
    }
}

async fn check_merchant(tx: &mut Tx, company_id: i64, f: &TaskFields) -> DomainResult<()> {
    if let Some(id) = f.merchant_id {
        let ok = db::community::orgs::get(&mut **tx, id).await?.is_some_and(|m| {
            m.kind == OrgKind::Merchant && m.archived_at.is_none() && company_of(&m) == Some(company_id)
        });
        if !ok {
            return Err(invalid(format!("org {id} is not an active merchant of this property company")));
        }
    }
    Ok(())
}

/// A red-packet reward on a channel the owner's merchant cannot pay is refused with the reason,
/// when the task is published or changed, not when a resident earns it.
async fn check_payable(tx: &mut Tx, payer: &Payer, owner_org_id: i64, f: &TaskFields) -> DomainResult<()> {
    match f.reward_channel {
        Some(channel) => payer.require_payable(tx, owner_org_id, channel, "the task's reward").await,
        None => Ok(()),
    }
}

pub async fn create(
    db: &Db,
    actor: &Actor,
    payer: &Payer,
    owner_org_id: i64,
    input: TaskInput,
) -> DomainResult<TaskRow> {
    let fields = input.validated()?;
    let mut tx = db.begin().await?;
    let (owner, company_id) =
        crate::domain::community::orgs::funding_owner(&mut tx, actor, owner_org_id, "tasks").await?;
    actor.require(Role::Operator)?;
    check_merchant(&mut tx, company_id, &fields).await?;
    check_payable(&mut tx, payer, owner.id, &fields).await?;
    let t = store::insert(&mut tx, owner.id, company_id, &fields, db::now_ms()).await?;
    audit::record(&mut tx, actor, &owner, "task.publish", ("task", t.id), (None::<&()>, Some(&t))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(t)
}

async fn task_in_reach(tx: &mut Tx, actor: &Actor, id: i64) -> DomainResult<(TaskRow, OrgRow)> {
    let t = store::get(&mut **tx, id).await?.ok_or(DomainError::NotFound("task"))?;
    let owner = db::community::orgs::get(&mut **tx, t.owner_org_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("task"))?;
    Ok((t, owner))
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<(TaskRow, Figures)> {
    let t = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("task"))?;
    scope_of(db, actor, Some(t.owner_org_id)).await.map_err(crate::domain::not_found_as("task"))?;
    Ok((t, store::figures(db.reader(), id).await?))
}

pub async fn list(
    db: &Db,
    actor: &Actor,
    mut filter: TaskFilter,
    page: PageRequest,
) -> DomainResult<Page<(TaskRow, Figures)>> {
    filter.scope_path = scope_of(db, actor, filter.owner_org_id).await?;
    let found = store::list(db.reader(), &filter, page).await?;
    let ids: Vec<i64> = found.items.iter().map(|t| t.id).collect();
    let mut figures = store::figures_of_many(db.reader(), &ids).await?;
    let items = found
        .items
        .into_iter()
        .map(|t| {
            let f = figures.remove(&t.id).unwrap_or_default();
            (t, f)
        })
        .collect();
    Ok(Page { items, total: found.total })
}

/// Rewrites a task. Once residents hold it, only the theme, a later end, more rounds and a
/// higher daily cap may change: residents are inviting on the other terms.
pub async fn update(db: &Db, actor: &Actor, payer: &Payer, id: i64, input: TaskInput) -> DomainResult<TaskRow> {
    let fields = input.validated()?;
    let mut tx = db.begin().await?;
    let (before, owner) = task_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.state != TaskState::Active {
        return Err(DomainError::conflict(ErrorCode::TaskEnded, "the task has ended"));
    }
    check_merchant(&mut tx, before.company_id, &fields).await?;
    check_payable(&mut tx, payer, owner.id, &fields).await?;
    let held = store::figures(&mut *tx, id).await?.accepted;
    if held > 0 {
        let locked = [
            ("mode", before.mode != fields.mode),
            ("category", before.category != fields.category),
            ("merchant_id", before.merchant_id != fields.merchant_id),
            ("target", before.target != fields.target),
            ("reward_kind", before.reward_kind != fields.reward_kind),
            ("reward_amount", before.reward_amount != fields.reward_amount),
            ("reward_channel", before.reward_channel != fields.reward_channel),
            ("starts_at", before.starts_at != fields.starts_at),
            ("ends_at", fields.ends_at < before.ends_at),
            ("max_rounds", fields.max_rounds < before.max_rounds),
            ("daily_cap", fields.daily_cap < before.daily_cap),
        ];
        let changed: Vec<&str> = locked.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect();
        if !changed.is_empty() {
            return Err(DomainError::conflict(
                ErrorCode::TaskTermsLocked,
                format!(
                    "{held} residents have taken this task, so these can no longer change: {}; only the theme, a \
                     later ends_at, more max_rounds and a higher daily_cap can",
                    changed.join(", ")
                ),
            ));
        }
    }
    let after = store::update(&mut tx, id, &fields, db::now_ms()).await?;
    audit::record(&mut tx, actor, &owner, "task.update", ("task", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

pub async fn delete(db: &Db, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = db.begin().await?;
    let (before, owner) = task_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if !store::delete_unheld(&mut tx, id).await? {
        return Err(DomainError::conflict(ErrorCode::TaskHeld, "residents have taken this task; end it instead"));
    }
    audit::record(&mut tx, actor, &owner, "task.delete", ("task", id), (Some(&before), None::<&()>)).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

/// Ends a task: nothing more counts; rewards already earned stay.
pub async fn end(db: &Db, actor: &Actor, id: i64) -> DomainResult<TaskRow> {
    let mut tx = db.begin().await?;
    let (before, owner) = task_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    let Some(after) = store::end(&mut tx, id, db::now_ms()).await? else { return Ok(before) };
    audit::record(&mut tx, actor, &owner, "task.end", ("task", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Assigns an `assigned` task to chosen residents and/or every verified resident of a community;
/// every one must be a verified resident under the task's owner. Answers how many were new.
pub async fn assign(
    db: &Db,
    actor: &Actor,
    id: i64,
    resident_ids: &[i64],
    community_id: Option<i64>,
) -> DomainResult<i64> {
    let mut tx = db.begin().await?;
    let (t, owner) = task_in_reach(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if t.mode != TaskMode::Assigned {
        return Err(DomainError::conflict(
            ErrorCode::TaskIsOpen,
            "an open task is accepted by residents, not assigned",
        ));
    }
    if t.state != TaskState::Active {
        return Err(DomainError::conflict(ErrorCode::TaskEnded, "the task has ended"));
    }
    if resident_ids.is_empty() && community_id.is_none() || resident_ids.len() > 1000 {
        return Err(invalid("name 1..=1000 resident_ids and/or a community_id"));
    }
    let mut who: Vec<i64> = Vec::new();
    for r in resident_ids {
        if db::community::bindings::verified_rooms_in_scope(&mut *tx, *r, &owner.path).await?.is_empty() {
            return Err(invalid(format!("resident {r} is not a verified resident under the task's owner")));
        }
        who.push(*r);
    }
    if let Some(c) = community_id {
        let community = db::community::orgs::get(&mut *tx, c)
            .await?
            .filter(|o| o.kind == OrgKind::Community && o.path.starts_with(&owner.path))
            .ok_or_else(|| invalid(format!("org {c} is not a community under the task's owner")))?;
        who.extend(store::verified_residents_of(&mut tx, community.id).await?);
    }
    who.sort_unstable();
    who.dedup();
    let now = db::now_ms();
    let mut new = 0;
    for r in &who {
        if store::hold(&mut tx, t.id, *r, "assigned", now).await? {
            new += 1;
        }
    }
    audit::record(
        &mut tx,
        actor,
        &owner,
        "task.assign",
        ("task", id),
        (None::<&()>, Some(&json!({ "residents": who }))),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(new)
}

// ----- residents ---------------------------------------------------------------------------

fn open_now(t: &TaskRow, now: i64) -> bool {
    t.state == TaskState::Active && t.starts_at <= now && now < t.ends_at
}

/// A task I can see: open tasks of the company, and those assigned to me.
#[derive(Clone, Debug)]
pub struct Available {
    pub task: TaskRow,
    pub hold: Option<HoldRow>,
}

pub async fn available(
    db: &Db,
    me: &ResidentActor,
    company_id: i64,
    page: PageRequest,
) -> DomainResult<Vec<Available>> {
    let now = db::now_ms();
    let mut out = Vec::new();
    for t in store::open_in_company(db.reader(), company_id, now).await? {
        let hold = store::hold_of(db.reader(), t.id, me.resident_id).await?;
        out.push(Available { task: t, hold });
    }
    for m in store::my_holds(db.reader(), me.resident_id).await? {
        if out.iter().any(|a| a.task.id == m.task_id) {
            continue;
        }
        if let Some(t) =
            store::get(db.reader(), m.task_id).await?.filter(|t| t.company_id == company_id && open_now(t, now))
        {
            let hold = store::hold_of(db.reader(), t.id, me.resident_id).await?;
            out.push(Available { task: t, hold });
        }
    }
    Ok(page.slice(out))
}

/// Accepts an open task (again: answers the hold I have). An assigned task is only its
/// assignees' and is not found for anyone else.
pub async fn accept(db: &Db, me: &ResidentActor, id: i64) -> DomainResult<HoldRow> {
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let t = store::get(&mut *tx, id).await?.ok_or(DomainError::NotFound("task"))?;
    if let Some(h) = store::hold_of(&mut *tx, id, me.resident_id).await? {
        return Ok(h);
    }
    if t.mode != TaskMode::Open {
        return Err(DomainError::NotFound("task"));
    }
    if !open_now(&t, now) {
        return Err(DomainError::conflict(ErrorCode::TaskClosed, "the task is not open now"));
    }
    store::hold(&mut tx, id, me.resident_id, "accepted", now).await?;
    let h = store::hold_of(&mut *tx, id, me.resident_id).await?.ok_or(DomainError::NotFound("task"))?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(h)
}

/// My tasks with progress.
pub async fn mine(db: &Db, me: &ResidentActor) -> DomainResult<Vec<(TaskRow, MyTask)>> {
    let mut out = Vec::new();
    for m in store::my_holds(db.reader(), me.resident_id).await? {
        if let Some(t) = store::get(db.reader(), m.task_id).await? {
            out.push((t, m));
        }
    }
    Ok(out)
}

/// The scene of my invitation for a task.
pub fn scene_of(task_id: i64, invite_code: &str) -> String {
    format!("t{task_id}_{invite_code}")
}

/// The task and invite code a scene carries (`t12_ABCDEFGH`, or `qrscene_t12_ABCDEFGH` as a
/// follow's event key carries it).
pub fn parse_scene(scene: &str) -> Option<(i64, &str)> {
    let scene = scene.strip_prefix("qrscene_").unwrap_or(scene);
    let (task, code) = scene.strip_prefix('t')?.split_once('_')?;
    let task: i64 = task.parse().ok().filter(|t| *t > 0)?;
    let prefixed = format!("{}{code}", crate::domain::community::residents::INVITE_SCENE_PREFIX);
    crate::domain::community::residents::invite_code_of_scene(&prefixed).is_some().then_some((task, code))
}

/// What I share to invite for a task.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub task: TaskRow,
    pub scene: String,
    pub qr: Option<QrRow>,
}

/// My invitation for a task I hold: the scene, and the stored QR code if it is still good for a
/// day (`None`: the caller asks WeChat for one and stores it with [`store_qr`]).
pub async fn invitation(db: &Db, me: &ResidentActor, id: i64) -> DomainResult<Invitation> {
    let t = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("task"))?;
    store::hold_of(db.reader(), id, me.resident_id).await?.ok_or(DomainError::NotFound("task"))?;
    let now = db::now_ms();
    if !open_now(&t, now) {
        return Err(DomainError::conflict(ErrorCode::TaskClosed, "the task is not open now"));
    }
    let me_row =
        db::community::residents::get(db.reader(), me.resident_id).await?.ok_or(DomainError::NotFound("resident"))?;
    let scene = scene_of(t.id, &me_row.invite_code);
    let qr = store::qrcode(db.reader(), id, me.resident_id)
        .await?
        .filter(|q| q.scene == scene && q.expires_at > now + DAY_MS);
    Ok(Invitation { task: t, scene, qr })
}

pub async fn store_qr(db: &Db, me: &ResidentActor, task_id: i64, qr: &QrRow) -> DomainResult<()> {
    let mut tx = db.begin().await?;
    store::put_qrcode(&mut tx, task_id, me.resident_id, qr).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

/// Why an invitation does not attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    InvalidScene,
    TaskClosed,
    SelfInvite,
    AlreadyBound,
    AlreadyCustomer,
    AlreadyAttributed,
}

impl Refusal {
    pub fn error(&self) -> DomainError {
        match self {
            Refusal::InvalidScene => DomainError::NotFound("invitation"),
            Refusal::TaskClosed => DomainError::conflict(ErrorCode::TaskClosed, "the task is not open now"),
            Refusal::SelfInvite => {
                DomainError::conflict(ErrorCode::SelfInvite, "you cannot accept your own invitation")
            }
            Refusal::AlreadyBound => DomainError::conflict(
                ErrorCode::AlreadyBound,
                "you are already a verified resident; only new neighbours count",
            ),
            Refusal::AlreadyCustomer => DomainError::conflict(
                ErrorCode::AlreadyCustomer,
                "you have shopped there before; only new customers count",
            ),
            Refusal::AlreadyAttributed => {
                DomainError::conflict(ErrorCode::AlreadyAttributed, "you have already been invited for this task")
            }
        }
    }
}

/// Attributes `invitee` to the inviter's task the scene names, in the caller's transaction.
pub async fn attribute(
    tx: &mut Tx,
    scene: &str,
    invitee_id: i64,
    via: &str,
    now: i64,
) -> DomainResult<Result<InvitationRow, Refusal>> {
    let Some((task_id, code)) = parse_scene(scene) else { return Ok(Err(Refusal::InvalidScene)) };
    let Some(t) = store::get(&mut **tx, task_id).await? else { return Ok(Err(Refusal::InvalidScene)) };
    let Some(inviter) = db::community::residents::by_invite_code(tx, code).await? else {
        return Ok(Err(Refusal::InvalidScene));
    };
    if store::hold_of(&mut **tx, task_id, inviter.id).await?.is_none() {
        return Ok(Err(Refusal::InvalidScene));
    }
    if !open_now(&t, now) {
        return Ok(Err(Refusal::TaskClosed));
    }
    if inviter.id == invitee_id {
        return Ok(Err(Refusal::SelfInvite));
    }
    if t.category == TaskCategory::InviteBind {
        if db::community::bindings::verified_ever(tx, invitee_id).await? > 0 {
            return Ok(Err(Refusal::AlreadyBound));
        }
    } else if store::orders_count(tx, invitee_id, t.merchant_id, t.company_id).await? > 0 {
        return Ok(Err(Refusal::AlreadyCustomer));
    }
    Ok(store::attribute(tx, task_id, inviter.id, invitee_id, via, now).await?.ok_or(Refusal::AlreadyAttributed))
}

/// An invitee opened the mini-program through an invitation link.
pub async fn claim_scene(db: &Db, me: &ResidentActor, scene: &str) -> DomainResult<(InvitationRow, TaskRow)> {
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let row = attribute(&mut tx, scene, me.resident_id, "mp_scene", now).await?.map_err(|r| r.error())?;
    let t = store::get(&mut *tx, row.task_id).await?.ok_or(DomainError::NotFound("task"))?;
    tx.commit().await.map_err(DbError::from)?;
    Ok((row, t))
}

/// A binding became verified: if it is the invitee's first, their bind-task attributions count
/// (unless it is the inviter's own household).
/// Answers the wake owed to the payout dispatcher once the caller has committed.
pub async fn on_verified(tx: &mut Tx, payer: &Payer, b: &BindingRow, now: i64) -> DomainResult<Wake> {
    let mut wake = Wake::default();
    for inv in store::waiting_for(tx, b.resident_id).await? {
        let Some(t) = store::get(&mut **tx, inv.task_id).await? else { continue };
        if t.category != TaskCategory::InviteBind {
            continue;
        }
        let inviter_rooms = db::community::bindings::verified_rooms_in_scope(&mut **tx, inv.inviter_id, "/").await?;
        let refusal = if !open_now(&t, now) {
            Some("outside_window")
        } else if inviter_rooms.contains(&b.room_id) {
            Some("same_household")
        } else {
            None
        };
        wake = wake.and(count(tx, payer, &t, &inv, refusal, now).await?);
    }
    Ok(wake)
}

/// An order was recorded: the resident's shop-task attributions for this merchant (or any
/// merchant of the company) count when it is their first purchase there. Answers the wake owed to
/// the payout dispatcher once the caller has committed.
pub async fn on_purchase(
    tx: &mut Tx,
    payer: &Payer,
    resident_id: i64,
    merchant_id: i64,
    company_id: i64,
    now: i64,
) -> DomainResult<Wake> {
    let mut wake = Wake::default();
    for inv in store::waiting_for(tx, resident_id).await? {
        let Some(t) = store::get(&mut **tx, inv.task_id).await? else { continue };
        let matches = t.category == TaskCategory::InviteShop
            && t.company_id == company_id
            && t.merchant_id.is_none_or(|m| m == merchant_id);
        if !matches {
            continue;
        }
        let first = store::orders_count(tx, resident_id, t.merchant_id, t.company_id).await? == 1;
        let refusal = if !open_now(&t, now) {
            Some("outside_window")
        } else if !first {
            Some("not_first_purchase")
        } else {
            None
        };
        wake = wake.and(count(tx, payer, &t, &inv, refusal, now).await?);
    }
    Ok(wake)
}

/// Settles one attribution: refused with a reason, refused over the daily cap, or counted — and
/// every `target` counted invitations earn the inviter one round's reward.
async fn count(
    tx: &mut Tx,
    payer: &Payer,
    t: &TaskRow,
    inv: &InvitationRow,
    refusal: Option<&str>,
    now: i64,
) -> DomainResult<Wake> {
    if let Some(reason) = refusal {
        store::settle(tx, inv.id, "rejected", Some(reason), now).await?;
        return Ok(Wake::default());
    }
    // Lock the inviter's hold first: counts for one inviter are decided one at a time.
    let hold = store::count_one(tx, t.id, inv.inviter_id, now).await?;
    if store::counted_since(tx, inv.inviter_id, crate::domain::beijing_day_start(now)).await? >= t.daily_cap {
        store::settle(tx, inv.id, "rejected", Some("daily_cap"), now).await?;
        store::uncount(tx, hold.id).await?;
        return Ok(Wake::default());
    }
    if !store::settle(tx, inv.id, "counted", None, now).await? {
        store::uncount(tx, hold.id).await?;
        return Ok(Wake::default());
    }
    let mut wake = Wake::default();
    if hold.counted % t.target == 0 {
        let round = hold.counted / t.target;
        if round <= t.max_rounds && round > hold.rounds {
            wake = reward(tx, payer, t, inv.inviter_id, round, now).await?;
            store::set_rounds(tx, hold.id, round).await?;
        }
    }
    Ok(wake)
}

/// Grants one round's reward, once. A red packet is paid through the payout outbox like any
/// other ([`payouts::queue`]), or credited to the balance when the resident has no identity of
/// the channel's app; answers the wake owed to the dispatcher.
async fn reward(tx: &mut Tx, payer: &Payer, t: &TaskRow, resident_id: i64, round: i64, now: i64) -> DomainResult<Wake> {
    let granted = NewReward {
        task_id: t.id,
        resident_id,
        round,
        kind: t.reward_kind.as_str(),
        amount: t.reward_amount,
        payout_id: None,
    };
    if !store::insert_reward(tx, &granted, now).await? {
        return Ok(Wake::default());
    }
    let reference = format!("task:{}:{}:{}", t.id, resident_id, round);
    let remark = format!("任务「{}」完成第 {round} 轮", t.theme);
    let identities = db::community::residents::identities_of(&mut **tx, resident_id).await?;
    let apps = payer.apps_for(tx, Some(t.owner_org_id)).await?;
    let mut told = format!("奖励 {} 积分", t.reward_amount);
    let mut wake = Wake::default();
    let to_balance = match (t.reward_kind, t.reward_channel) {
        (TaskReward::Points, _) => {
            let company =
                db::community::orgs::get(&mut **tx, t.company_id).await?.ok_or(DomainError::NotFound("company"))?;
            let programme = points::programme_for(tx, &company, now).await?;
            let posting = Posting {
                kind: Kind::Earn,
                source: Source::Task,
                reference: reference.clone(),
                amount: t.reward_amount,
                operator: None,
                remark: Some(remark.clone()),
            };
            points::post(tx, programme.id, resident_id, &posting, now).await?;
            false
        }
        (TaskReward::RedPacket, Some(channel)) => {
            told = format!("红包 {}", yuan(t.reward_amount));
            match payouts::payee(&apps, channel, &identities) {
                Ok(Some(payee)) => {
                    let display = Display {
                        send_name: t.theme.chars().take(32).collect(),
                        wishing: "感谢邀请新邻居".into(),
                        act_name: t.theme.chars().take(32).collect(),
                        remark: remark.clone(),
                        transfer_remark: "邀请邻居任务奖励".into(),
                        // The deployment's scene (`LINLI_PAY_TRANSFER_SCENE_ID`).
                        transfer_scene_id: String::new(),
                    };
                    let queue = Queue {
                        company_id: Some(t.company_id),
                        owner_org_id: Some(t.owner_org_id),
                        resident_id,
                        channel,
                        source: "task",
                        source_ref: &reference,
                        amount_fen: t.reward_amount,
                        payee,
                        display: &display,
                    };
                    let (rows, queued) = payouts::queue(tx, payer, &[queue], now).await?;
                    for p in rows {
                        store::set_reward_payout(tx, t.id, resident_id, round, p.id).await?;
                    }
                    wake = queued;
                    false
                }
                // No WeChat identity of the channel's app to pay: the amount goes to the balance.
                Ok(None) | Err(_) => true,
            }
        }
        (TaskReward::Balance, _) | (TaskReward::RedPacket, None) => {
            told = format!("余额 {}", yuan(t.reward_amount));
            true
        }
    };
    if to_balance {
        let credit = Credit {
            source: "task",
            reference: &reference,
            amount_fen: t.reward_amount,
            owner_org_id: Some(t.owner_org_id),
            remark: Some(&remark),
        };
        wallet::credit(tx, resident_id, &credit, now).await?;
    }
    let mp_appid = apps.mp_appid.as_deref();
    if let Some(mp) = identities
        .iter()
        .find(|i| i.app_kind == crate::db::community::residents::AppKind::Mp && mp_appid.is_none_or(|a| a == i.appid))
    {
        let theme: String = t.theme.chars().take(20).collect();
        let data = json!({
            "thing1": { "value": theme },
            "phrase2": { "value": "已完成" },
            "thing3": { "value": told.chars().take(20).collect::<String>() },
        });
        let message_ref = format!("task_reward:{}:{}:{}", t.id, resident_id, round);
        let data = data.to_string();
        let message = NewMessage {
            resident_id,
            appid: &mp.appid,
            openid: &mp.openid,
            template_id: REWARD_MESSAGE,
            page: Some(TASKS_PAGE),
            data: &data,
            reference: &message_ref,
        };
        store::queue_message(tx, &message, now).await?;
    }
    Ok(wake)
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02} 元", fen / 100, fen % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_round_trip() {
        assert_eq!(scene_of(12, "ABCDEFGH"), "t12_ABCDEFGH");
        assert_eq!(parse_scene("t12_ABCDEFGH"), Some((12, "ABCDEFGH")));
        assert_eq!(parse_scene("qrscene_t12_ABCDEFGH"), Some((12, "ABCDEFGH")));
        for bad in ["", "t_ABCDEFGH", "t0_ABCDEFGH", "tx_ABCDEFGH", "t12_abc", "t12ABCDEFGH", "inv_ABCDEFGH"] {
            assert_eq!(parse_scene(bad), None, "{bad}");
        }
    }
}
