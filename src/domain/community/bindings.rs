//! Bindings: a resident's claim to a room, as owner, family or tenant.
//!
//! A request is verified at once when the community's roster lists the same name and phone for
//! the room in the same role; otherwise it waits for an operator's review. A room's verified owner
//! can invite family and tenants (the invitation verifies them) and end their bindings. Each
//! resident has at most one open binding (pending or verified) per room, and a room at most the
//! configured number of open bindings, under any concurrency.

use rand::Rng;

use crate::codes::ErrorCode;
use crate::db::community::bindings::{
    self as store, BindingFilter, BindingRow, BindingState, InvitationRow, NewBinding, Transition,
};
use crate::db::community::orgs::OrgKind;
use crate::db::community::orgs::OrgRow;
use crate::db::community::rooms::RoomAddress;
use crate::db::{self, Db, DbError, Page, PageRequest, Tx};
use crate::domain::community::rooms::{self, label};
use crate::domain::community::roster::{fields as roster_fields, ResidentRole};
use crate::domain::community::sessions::ResidentActor;
use crate::domain::money::payouts::{Payer, Wake};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{operators::audit, required_text, DomainError, DomainResult};

/// How long an owner's invitation stays usable.
pub const INVITATION_TTL_MS: i64 = 7 * 86_400_000;

/// What a resident asks to bind to.
#[derive(Clone, Debug)]
pub struct BindingRequest {
    pub community_id: i64,
    pub building: String,
    pub unit: String,
    pub number: String,
    pub role: ResidentRole,
    pub name: String,
    /// Absent: the phone number the resident confirmed through WeChat.
    pub phone: Option<String>,
}

fn room_full(cap: i64) -> DomainError {
    DomainError::conflict(ErrorCode::RoomFull, format!("this room already has {cap} open bindings"))
}

fn already_open() -> DomainError {
    DomainError::conflict(ErrorCode::BindingExists, "you already have an open request or binding for this room")
}

/// The phone a binding carries: the one given, or the one WeChat confirmed.
async fn phone_for(db: &Db, resident_id: i64, given: Option<&str>) -> DomainResult<String> {
    match given.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Ok(crate::domain::community::roster::normalize_phone(p)?),
        None => db::community::residents::phone_of(db.reader(), resident_id).await?.ok_or_else(|| {
            DomainError::invalid(ErrorCode::PhoneRequired, "give a phone number or confirm one through WeChat")
        }),
    }
}

/// Asks to bind to a room; verified at once on a roster match, pending otherwise.
pub async fn request(
    db: &Db,
    payer: &Payer,
    me: &ResidentActor,
    req: BindingRequest,
    cap: i64,
) -> DomainResult<BindingRow> {
    let phone = phone_for(db, me.resident_id, req.phone.as_deref()).await?;
    let person = roster_fields(&req.name, &phone, req.role)?;
    let addr = rooms::address(&req.building, &req.unit, &req.number)?;
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let community = open_community(&mut tx, req.community_id).await?;
    let room = db::community::rooms::find(&mut tx, community.id, &addr)
        .await?
        .filter(|r| r.archived_at.is_none())
        .ok_or(DomainError::NotFound("room"))?;
    if store::lock_room_and_count_open(&mut tx, room.id).await? >= cap {
        return Err(room_full(cap));
    }
    let listed = db::community::roster::all_in_room(&mut tx, room.id).await?;
    let matches = listed.iter().any(|e| e.phone == person.phone && e.name == person.name && e.role == person.role);
    let new = NewBinding {
        resident_id: me.resident_id,
        room_id: room.id,
        community_id: community.id,
        role: person.role,
        state: if matches { BindingState::Verified } else { BindingState::Pending },
        name: &person.name,
        phone: &person.phone,
        verified_by: matches.then_some("roster"),
        decided_by: matches.then_some("roster"),
        invited_by: None,
    };
    let binding = store::insert(&mut tx, &new, now).await?.ok_or_else(already_open)?;
    let wake = after_verified(&mut tx, payer, &binding, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    wake.send();
    Ok(binding)
}

/// Fires the first-home coupon rules and counts invite-to-bind tasks when this is the resident's
/// first verified binding ever. Answers the wake owed to the payout dispatcher (a task's red
/// packet), to send after the commit.
async fn after_verified(tx: &mut Tx, payer: &Payer, b: &BindingRow, now: i64) -> DomainResult<Wake> {
    if b.state != BindingState::Verified || store::verified_ever(tx, b.resident_id).await? != 1 {
        return Ok(Wake::default());
    }
    let company = db::community::orgs::get(&mut **tx, b.community_id).await?.and_then(|c| c.parent_id);
    if let Some(company_id) = company {
        let trigger = format!("resident:{}", b.resident_id);
        crate::domain::offers::coupon_rules::fire(
            tx,
            company_id,
            crate::domain::offers::coupon_rules::Trigger::FirstBinding,
            b.resident_id,
            &trigger,
            now,
        )
        .await?;
    }
    crate::domain::tasks::on_verified(tx, payer, b, now).await
}

/// A community residents may bind to: exists, is a community, is not archived.
async fn open_community(tx: &mut Tx, id: i64) -> DomainResult<OrgRow> {
    db::community::orgs::get(&mut **tx, id)
        .await?
        .filter(|o| o.kind == OrgKind::Community && o.archived_at.is_none())
        .ok_or(DomainError::NotFound("community"))
}

pub async fn mine(db: &Db, me: &ResidentActor) -> DomainResult<Vec<BindingRow>> {
    Ok(store::of_resident(db.reader(), me.resident_id).await?)
}

/// One of my bindings; anyone else's is "not found".
async fn my_binding(tx: &mut Tx, me: &ResidentActor, id: i64) -> DomainResult<BindingRow> {
    store::get(&mut **tx, id).await?.filter(|b| b.resident_id == me.resident_id).ok_or(DomainError::NotFound("binding"))
}

/// Ends my binding, or withdraws my pending request.
pub async fn end_mine(db: &Db, me: &ResidentActor, id: i64) -> DomainResult<BindingRow> {
    let mut tx = db.begin().await?;
    let b = my_binding(&mut tx, me, id).await?;
    let reason = if b.state == BindingState::Pending { "withdrawn by the resident" } else { "ended by the resident" };
    let ended = match b.state {
        BindingState::Pending | BindingState::Verified => {
            let d = Transition {
                from: b.state,
                to: BindingState::Ended,
                verified_by: None,
                reason: Some(reason),
                decided_by: "resident",
            };
            store::transition(&mut tx, id, &d, db::now_ms()).await?.ok_or_else(|| {
                DomainError::conflict(ErrorCode::BindingChanged, "the binding changed meanwhile; reload it")
            })?
        }
        BindingState::Rejected | BindingState::Ended => {
            return Err(DomainError::conflict(ErrorCode::BindingClosed, format!("the binding is already {}", b.state)))
        }
    };
    tx.commit().await.map_err(DbError::from)?;
    Ok(ended)
}

/// My verified owner binding, for acting on its room.
async fn my_ownership(tx: &mut Tx, me: &ResidentActor, id: i64) -> DomainResult<BindingRow> {
    let b = my_binding(tx, me, id).await?;
    if b.state != BindingState::Verified || b.role != ResidentRole::Owner {
        return Err(DomainError::Forbidden("only the room's verified owner can do this".into()));
    }
    Ok(b)
}

fn new_invitation_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..10).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// Invites family or a tenant to the room of my verified owner binding.
pub async fn invite(
    db: &Db,
    me: &ResidentActor,
    owner_binding: i64,
    role: ResidentRole,
) -> DomainResult<InvitationRow> {
    if role == ResidentRole::Owner {
        return Err(DomainError::invalid(ErrorCode::InvalidRole, "owners invite family or tenants"));
    }
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let owner = my_ownership(&mut tx, me, owner_binding).await?;
    for _ in 0..5 {
        if let Some(inv) = store::insert_invitation(
            &mut tx,
            &new_invitation_code(),
            owner.id,
            owner.room_id,
            role,
            now + INVITATION_TTL_MS,
            now,
        )
        .await?
        {
            tx.commit().await.map_err(DbError::from)?;
            return Ok(inv);
        }
    }
    Err(DbError::UniqueViolation.into())
}

/// Redeems an owner's invitation: a verified binding to the owner's room.
pub async fn redeem(
    db: &Db,
    payer: &Payer,
    me: &ResidentActor,
    code: &str,
    name: &str,
    phone: Option<&str>,
    cap: i64,
) -> DomainResult<BindingRow> {
    let phone = phone_for(db, me.resident_id, phone).await?;
    let name = required_text("name", name, 32)?;
    let invalid = || DomainError::NotFound("invitation");
    let now = db::now_ms();
    let mut tx = db.begin().await?;
    let inv = store::invitation_by_code(&mut tx, code.trim()).await?.ok_or_else(invalid)?;
    if inv.redeemed_by.is_some() || inv.expires_at <= now {
        return Err(DomainError::conflict(ErrorCode::InvitationUsed, "the invitation was already used or has expired"));
    }
    let owner = store::get(&mut *tx, inv.binding_id).await?.ok_or_else(invalid)?;
    if owner.state != BindingState::Verified {
        return Err(DomainError::conflict(
            ErrorCode::InvitationVoid,
            "the owner who invited you is no longer bound to the room",
        ));
    }
    if owner.resident_id == me.resident_id {
        return Err(DomainError::invalid(ErrorCode::SelfInvitation, "you cannot redeem your own invitation"));
    }
    if store::lock_room_and_count_open(&mut tx, inv.room_id).await? >= cap {
        return Err(room_full(cap));
    }
    let new = NewBinding {
        resident_id: me.resident_id,
        room_id: inv.room_id,
        community_id: owner.community_id,
        role: inv.role,
        state: BindingState::Verified,
        name: &name,
        phone: &phone,
        verified_by: Some("owner"),
        decided_by: Some(&format!("owner:{}", owner.id)),
        invited_by: Some(owner.id),
    };
    let binding = store::insert(&mut tx, &new, now).await?.ok_or_else(already_open)?;
    if !store::redeem_invitation(&mut tx, inv.id, binding.id).await? {
        return Err(DomainError::conflict(ErrorCode::InvitationUsed, "the invitation was already used or has expired"));
    }
    let wake = after_verified(&mut tx, payer, &binding, now).await?;
    tx.commit().await.map_err(DbError::from)?;
    wake.send();
    Ok(binding)
}

/// The open bindings of the room of my verified owner binding.
pub async fn room_members(db: &Db, me: &ResidentActor, owner_binding: i64) -> DomainResult<Vec<BindingRow>> {
    let mut tx = db.begin().await?;
    let owner = my_ownership(&mut tx, me, owner_binding).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(store::open_in_room(db.reader(), owner.room_id).await?)
}

/// Ends a family or tenant binding of the room of my verified owner binding.
pub async fn end_member(db: &Db, me: &ResidentActor, owner_binding: i64, member: i64) -> DomainResult<BindingRow> {
    let mut tx = db.begin().await?;
    let owner = my_ownership(&mut tx, me, owner_binding).await?;
    let m = store::get(&mut *tx, member)
        .await?
        .filter(|m| m.room_id == owner.room_id && m.state == BindingState::Verified)
        .ok_or(DomainError::NotFound("binding"))?;
    if m.role == ResidentRole::Owner {
        return Err(DomainError::Forbidden("an owner's binding is ended by that owner or an operator".into()));
    }
    let decided_by = format!("owner:{}", owner.id);
    let d = Transition {
        from: BindingState::Verified,
        to: BindingState::Ended,
        verified_by: None,
        reason: Some("ended by the room's owner"),
        decided_by: &decided_by,
    };
    let ended = store::transition(&mut tx, m.id, &d, db::now_ms())
        .await?
        .ok_or_else(|| DomainError::conflict(ErrorCode::BindingChanged, "the binding changed meanwhile; reload it"))?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(ended)
}

// ----- the operator side -------------------------------------------------------------------

pub async fn list(
    db: &Db,
    actor: &Actor,
    mut filter: BindingFilter,
    page: PageRequest,
) -> DomainResult<Page<BindingRow>> {
    filter.scope_path = scope_of(db, actor, filter.community_id).await?;
    Ok(store::list(db.reader(), &filter, page).await?)
}

/// A binding of a community the actor reaches, with that community.
async fn reachable(tx: &mut Tx, actor: &Actor, id: i64) -> DomainResult<(BindingRow, OrgRow)> {
    let b = store::get(&mut **tx, id).await?.ok_or(DomainError::NotFound("binding"))?;
    let community = db::community::orgs::get(&mut **tx, b.community_id)
        .await?
        .filter(|o| actor.reaches(&o.path))
        .ok_or(DomainError::NotFound("binding"))?;
    Ok((b, community))
}

/// An operator's decision on a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    End,
}

/// Approves or rejects a pending binding, or ends an open one, with a reason; audited.
/// Operators and admins of the community or above.
pub async fn decide(
    db: &Db,
    payer: &Payer,
    actor: &Actor,
    id: i64,
    decision: Decision,
    reason: Option<&str>,
) -> DomainResult<BindingRow> {
    let reason = crate::domain::optional_text("reason", reason, 200)?;
    if decision != Decision::Approve && reason.is_none() {
        return Err(DomainError::invalid(ErrorCode::ReasonRequired, "say why, for the resident"));
    }
    let mut tx = db.begin().await?;
    let (before, community) = reachable(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    let (from, to, verified_by, action) = match (decision, before.state) {
        (Decision::Approve, BindingState::Pending) => {
            (BindingState::Pending, BindingState::Verified, Some("operator"), "binding.approve")
        }
        (Decision::Reject, BindingState::Pending) => {
            (BindingState::Pending, BindingState::Rejected, None, "binding.reject")
        }
        (Decision::End, s @ (BindingState::Pending | BindingState::Verified)) => {
            (s, BindingState::Ended, None, "binding.end")
        }
        (_, state) => {
            return Err(DomainError::conflict(
                ErrorCode::BindingState,
                format!("the binding is {state}; that decision does not apply"),
            ))
        }
    };
    let d = Transition { from, to, verified_by, reason: reason.as_deref(), decided_by: &actor.label };
    let after = store::transition(&mut tx, id, &d, db::now_ms())
        .await?
        .ok_or_else(|| DomainError::conflict(ErrorCode::BindingChanged, "the binding changed meanwhile; reload it"))?;
    audit::record(&mut tx, actor, &community, action, ("binding", id), (Some(&before), Some(&after))).await?;
    let wake = after_verified(&mut tx, payer, &after, db::now_ms()).await?;
    tx.commit().await.map_err(DbError::from)?;
    wake.send();
    Ok(after)
}

/// A room's label as residents see it, e.g. `3-2-301`.
pub fn room_label(b: &BindingRow) -> String {
    label(&RoomAddress { building: b.building.clone(), unit: b.unit.clone(), number: b.number.clone() })
}
