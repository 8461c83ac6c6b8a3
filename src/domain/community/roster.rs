//! A community's resident roster: name, mobile phone, room and role, as the property company
//! knows them. Bindings (residents ↔ rooms) verify themselves against it.

use std::collections::HashMap;

use crate::codes::ErrorCode;
use crate::db::community::orgs::OrgRow;
use crate::db::community::rooms::{RoomAddress, RoomRow};
pub use crate::db::community::roster::ResidentRole;
use crate::db::community::roster::{self as store, RosterFields, RosterFilter, RosterRow};
use crate::db::{self, Db, DbError, Page, PageRequest};
use crate::domain::community::import::{too_many_rows, ImportReport, RawRow};
use crate::domain::community::orgs::load_community;
use crate::domain::community::rooms::{self, label};
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{not_found_as, operators::audit, required_text, DomainError, DomainResult};

/// Normalises a mainland China mobile number: spaces and dashes dropped, a `+86`/`0086`/`86`
/// country prefix removed; the rest must be 11 digits starting 13–19.
pub fn normalize_phone(raw: &str) -> DomainResult<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let national = digits
        .strip_prefix("+86")
        .or_else(|| digits.strip_prefix("0086"))
        .or_else(|| if digits.len() == 13 { digits.strip_prefix("86") } else { None })
        .unwrap_or(&digits);
    let b = national.as_bytes();
    let ok = b.len() == 11 && b.iter().all(u8::is_ascii_digit) && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    if ok {
        Ok(national.to_owned())
    } else {
        Err(DomainError::invalid(ErrorCode::InvalidPhone, format!("phone {raw:?} is not a mainland mobile number")))
    }
}

/// Parses a role, accepting the Chinese words of the usual spreadsheets.
pub fn parse_role(raw: &str) -> DomainResult<ResidentRole> {
    match raw.trim().to_lowercase().as_str() {
        "owner" | "业主" => Ok(ResidentRole::Owner),
        "family" | "家属" | "家庭成员" => Ok(ResidentRole::Family),
        "tenant" | "租户" | "租客" => Ok(ResidentRole::Tenant),
        other => Err(DomainError::invalid(
            ErrorCode::InvalidRole,
            format!("role {other:?} is not one of owner, family, tenant"),
        )),
    }
}

/// Validates a roster person.
pub fn fields(name: &str, phone: &str, role: ResidentRole) -> DomainResult<RosterFields> {
    Ok(RosterFields { name: required_text("name", name, 32)?, phone: normalize_phone(phone)?, role })
}

fn already_listed(phone: &str) -> DomainError {
    DomainError::conflict(ErrorCode::RosterEntryExists, format!("phone {phone} is already on the roster for this room"))
}

/// A room of the actor's subtree that entries can point at, with its community.
async fn writable_room(tx: &mut db::Tx, actor: &Actor, room_id: i64) -> DomainResult<(RoomRow, OrgRow)> {
    let room = db::community::rooms::get(&mut **tx, room_id).await?.ok_or(DomainError::NotFound("room"))?;
    let community = load_community(&mut **tx, actor, room.community_id).await.map_err(not_found_as("room"))?;
    Ok((room, community))
}

fn check_open(room: &RoomRow, community: &OrgRow) -> DomainResult<()> {
    if community.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the community is archived"));
    }
    if room.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::RoomArchived, "the room is archived"));
    }
    Ok(())
}

pub async fn create(db: &Db, actor: &Actor, room_id: i64, f: RosterFields) -> DomainResult<RosterRow> {
    let mut tx = db.begin().await?;
    let (room, community) = writable_room(&mut tx, actor, room_id).await?;
    actor.require(Role::Operator)?;
    check_open(&room, &community)?;
    let entry = match store::insert(&mut tx, community.id, room.id, &f, db::now_ms()).await {
        Err(DbError::UniqueViolation) => return Err(already_listed(&f.phone)),
        other => other?,
    };
    audit::record(
        &mut tx,
        actor,
        &community,
        "roster.create",
        ("roster_entry", entry.id),
        (None::<&RosterRow>, Some(&entry)),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(entry)
}

async fn load(tx: &mut db::Tx, actor: &Actor, id: i64) -> DomainResult<(RosterRow, OrgRow)> {
    let entry = store::get(&mut **tx, id).await?.ok_or(DomainError::NotFound("roster entry"))?;
    let community = load_community(&mut **tx, actor, entry.community_id).await.map_err(not_found_as("roster entry"))?;
    Ok((entry, community))
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<RosterRow> {
    let entry = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("roster entry"))?;
    scope_of(db, actor, Some(entry.community_id)).await.map_err(not_found_as("roster entry"))?;
    Ok(entry)
}

pub async fn list(
    db: &Db,
    actor: &Actor,
    mut filter: RosterFilter,
    page: PageRequest,
) -> DomainResult<Page<RosterRow>> {
    filter.scope_path = scope_of(db, actor, filter.community_id).await?;
    if let Some(phone) = filter.phone.take() {
        // An unparseable phone simply matches nothing.
        filter.phone = Some(normalize_phone(&phone).unwrap_or(phone));
    }
    Ok(store::list(db.reader(), &filter, page).await?)
}

/// A partial edit of an entry; `room_id` may move it to another room of the same community.
#[derive(Clone, Debug, Default)]
pub struct RosterPatch {
    pub room_id: Option<i64>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub role: Option<ResidentRole>,
}

pub async fn update(db: &Db, actor: &Actor, id: i64, patch: RosterPatch) -> DomainResult<RosterRow> {
    let mut tx = db.begin().await?;
    let (before, community) = load(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    let room_id = patch.room_id.unwrap_or(before.room_id);
    let (room, _) = writable_room(&mut tx, actor, room_id).await?;
    if room.community_id != before.community_id {
        return Err(DomainError::invalid(
            ErrorCode::RoomInOtherCommunity,
            "an entry can only move to a room of its own community",
        ));
    }
    check_open(&room, &community)?;
    let f = fields(
        patch.name.as_deref().unwrap_or(&before.name),
        patch.phone.as_deref().unwrap_or(&before.phone),
        patch.role.unwrap_or(before.role),
    )?;
    let after = match store::update(&mut tx, id, room_id, &f, db::now_ms()).await {
        Err(DbError::UniqueViolation) => return Err(already_listed(&f.phone)),
        other => other?,
    };
    audit::record(&mut tx, actor, &community, "roster.update", ("roster_entry", id), (Some(&before), Some(&after)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Removes an entry. The audit log keeps what it said.
pub async fn delete(db: &Db, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = db.begin().await?;
    let (before, community) = load(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    store::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        actor,
        &community,
        "roster.delete",
        ("roster_entry", id),
        (Some(&before), None::<&RosterRow>),
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

/// Imports a roster into a community in one transaction. Each row names its room by building,
/// unit and number; a person already listed for that room with the same name and role is
/// unchanged, with another name or role updated; a row whose room does not exist, or that is
/// invalid, is rejected with its reason.
pub async fn import(
    db: &Db,
    actor: &Actor,
    community_id: i64,
    rows: Vec<RawRow>,
    mut report: ImportReport,
    max_rows: usize,
) -> DomainResult<ImportReport> {
    if rows.len() + report.rejected.len() > max_rows {
        return Err(too_many_rows(max_rows));
    }
    report.received = rows.len() + report.rejected.len();
    let mut tx = db.begin().await?;
    let community = load_community(&mut *tx, actor, community_id).await?;
    actor.require(Role::Operator)?;
    if community.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the community is archived"));
    }
    let rooms: HashMap<RoomAddress, RoomRow> = db::community::rooms::all_in_community(&mut tx, community_id)
        .await?
        .into_iter()
        .map(|r| (RoomAddress { building: r.building.clone(), unit: r.unit.clone(), number: r.number.clone() }, r))
        .collect();
    let mut listed: HashMap<(i64, String), RosterRow> = store::all_in_community(&mut tx, community_id)
        .await?
        .into_iter()
        .map(|e| ((e.room_id, e.phone.clone()), e))
        .collect();
    // Which line of this file last wrote each (room, phone), to name conflicts within the file.
    let mut seen: HashMap<(i64, String), (usize, RosterFields)> = HashMap::new();
    let now = db::now_ms();
    for row in rows {
        let parsed = rooms::address(
            row.building.as_deref().unwrap_or(""),
            row.unit.as_deref().unwrap_or(""),
            row.number.as_deref().unwrap_or(""),
        )
        .and_then(|addr| {
            let role =
                row.role.as_deref().filter(|r| !r.trim().is_empty()).map_or(Ok(ResidentRole::Owner), parse_role)?;
            let f = fields(row.name.as_deref().unwrap_or(""), row.phone.as_deref().unwrap_or(""), role)?;
            Ok((addr, f))
        });
        let (addr, f) = match parsed {
            Ok(v) => v,
            Err(e) => {
                report.reject(row.line, e.to_string());
                continue;
            }
        };
        let Some(room) = rooms.get(&addr) else {
            report.reject(row.line, format!("room {} does not exist in this community", label(&addr)));
            continue;
        };
        if room.archived_at.is_some() {
            report.reject(row.line, format!("room {} is archived", label(&addr)));
            continue;
        }
        let key = (room.id, f.phone.clone());
        if let Some((line, earlier)) = seen.get(&key) {
            if *earlier != f {
                report.reject(row.line, format!("conflicts with line {line} for the same room and phone"));
            } else {
                report.unchanged += 1;
            }
            continue;
        }
        seen.insert(key.clone(), (row.line, f.clone()));
        match listed.get(&key) {
            Some(existing) if existing.name == f.name && existing.role == f.role => report.unchanged += 1,
            Some(existing) => {
                store::update(&mut tx, existing.id, room.id, &f, now).await?;
                report.updated += 1;
            }
            None => {
                if let Some(id) = store::insert_if_absent(&mut tx, community_id, room.id, &f, now).await? {
                    report.created += 1;
                    listed.insert(
                        key,
                        RosterRow {
                            id,
                            community_id,
                            room_id: room.id,
                            building: addr.building,
                            unit: addr.unit,
                            number: addr.number,
                            name: f.name,
                            phone: f.phone,
                            role: f.role,
                            created_at: now,
                            updated_at: now,
                        },
                    );
                } else {
                    report.unchanged += 1;
                }
            }
        }
    }
    report.rejected.sort_by_key(|r| r.line);
    if report.created + report.updated > 0 {
        let summary = serde_json::json!({
            "received": report.received,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected.len(),
        });
        audit::record(
            &mut tx,
            actor,
            &community,
            "roster.import",
            ("community", community_id),
            (None::<&()>, Some(&summary)),
        )
        .await?;
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised() {
        assert_eq!(normalize_phone("138 0013 8000").unwrap(), "13800138000");
        assert_eq!(normalize_phone("+86 138-0013-8000").unwrap(), "13800138000");
        assert_eq!(normalize_phone("8613800138000").unwrap(), "13800138000");
        assert_eq!(normalize_phone("008613800138000").unwrap(), "13800138000");
        for bad in ["", "12800138000", "1380013800", "138001380001", "1380013800x", "０１"] {
            assert!(normalize_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_accept_chinese() {
        assert_eq!(parse_role("业主").unwrap(), ResidentRole::Owner);
        assert_eq!(parse_role(" Tenant ").unwrap(), ResidentRole::Tenant);
        assert!(parse_role("landlord").is_err());
    }
}
