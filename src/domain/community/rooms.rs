//! Rooms of a community (building → unit → room number): created one by one or imported in bulk,
//! archived rather than deleted once residents may be bound to them.

use std::collections::HashMap;

use crate::codes::ErrorCode;
use crate::db::community::orgs::OrgRow;
use crate::db::community::rooms::{self as store, RoomAddress, RoomFilter, RoomRow};
use crate::db::{self, Db, DbError, Page, PageRequest};
use crate::domain::community::import::{too_many_rows, ImportReport, RawRow};
use crate::domain::community::orgs::load_community;
use crate::domain::operators::access::{scope_of, Actor, Role};
use crate::domain::{not_found_as, operators::audit, required_text, DomainError, DomainResult};

const PART_MAX: usize = 32;

/// Validates a room's address: building and number required, unit optional (blank when the
/// building has no units), each at most 32 characters.
pub fn address(building: &str, unit: &str, number: &str) -> DomainResult<RoomAddress> {
    Ok(RoomAddress {
        building: required_text("building", building, PART_MAX)?,
        unit: crate::domain::optional_text("unit", Some(unit), PART_MAX)?.unwrap_or_default(),
        number: required_text("number", number, PART_MAX)?,
    })
}

/// How a room is shown in messages: `3-2-301`, or `3-301` without a unit.
pub fn label(addr: &RoomAddress) -> String {
    if addr.unit.is_empty() {
        format!("{}-{}", addr.building, addr.number)
    } else {
        format!("{}-{}-{}", addr.building, addr.unit, addr.number)
    }
}

fn room_exists(addr: &RoomAddress) -> DomainError {
    DomainError::conflict(ErrorCode::RoomExists, format!("room {} already exists in this community", label(addr)))
}

fn writable(community: &OrgRow) -> DomainResult<()> {
    if community.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::OrgArchived, "the community is archived"));
    }
    Ok(())
}

pub async fn create(db: &Db, actor: &Actor, community_id: i64, addr: RoomAddress) -> DomainResult<RoomRow> {
    let mut tx = db.begin().await?;
    let community = load_community(&mut *tx, actor, community_id).await?;
    actor.require(Role::Operator)?;
    writable(&community)?;
    let room = match store::insert(&mut tx, community_id, &addr, db::now_ms()).await {
        Err(DbError::UniqueViolation) => return Err(room_exists(&addr)),
        other => other?,
    };
    audit::record(&mut tx, actor, &community, "room.create", ("room", room.id), (None::<&RoomRow>, Some(&room)))
        .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(room)
}

/// Loads a room the actor reaches, with its community.
async fn load(tx: &mut db::Tx, actor: &Actor, id: i64) -> DomainResult<(RoomRow, OrgRow)> {
    let room = store::get(&mut **tx, id).await?.ok_or(DomainError::NotFound("room"))?;
    let community = load_community(&mut **tx, actor, room.community_id).await.map_err(not_found_as("room"))?;
    Ok((room, community))
}

pub async fn get(db: &Db, actor: &Actor, id: i64) -> DomainResult<RoomRow> {
    let room = store::get(db.reader(), id).await?.ok_or(DomainError::NotFound("room"))?;
    scope_of(db, actor, Some(room.community_id)).await.map_err(not_found_as("room"))?;
    Ok(room)
}

pub async fn list(db: &Db, actor: &Actor, mut filter: RoomFilter, page: PageRequest) -> DomainResult<Page<RoomRow>> {
    filter.scope_path = scope_of(db, actor, filter.community_id).await?;
    Ok(store::list(db.reader(), &filter, page).await?)
}

/// Edits a room's address (fields left `None` keep their value).
pub async fn update(
    db: &Db,
    actor: &Actor,
    id: i64,
    building: Option<String>,
    unit: Option<String>,
    number: Option<String>,
) -> DomainResult<RoomRow> {
    let mut tx = db.begin().await?;
    let (before, community) = load(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    writable(&community)?;
    if before.archived_at.is_some() {
        return Err(DomainError::conflict(ErrorCode::RoomArchived, "the room is archived"));
    }
    let addr = address(
        building.as_deref().unwrap_or(&before.building),
        unit.as_deref().unwrap_or(&before.unit),
        number.as_deref().unwrap_or(&before.number),
    )?;
    let after = match store::update(&mut tx, id, &addr, db::now_ms()).await {
        Err(DbError::UniqueViolation) => return Err(room_exists(&addr)),
        other => other?,
    };
    audit::record(&mut tx, actor, &community, "room.update", ("room", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Archives a room; twice answers the archived room.
pub async fn archive(db: &Db, actor: &Actor, id: i64) -> DomainResult<RoomRow> {
    let mut tx = db.begin().await?;
    let (before, community) = load(&mut tx, actor, id).await?;
    actor.require(Role::Operator)?;
    if before.archived_at.is_some() {
        return Ok(before);
    }
    let after = store::archive(&mut tx, id, db::now_ms()).await?;
    audit::record(&mut tx, actor, &community, "room.archive", ("room", id), (Some(&before), Some(&after))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(after)
}

/// Imports rooms into a community in one transaction. Rows naming a room that exists are
/// unchanged (or rejected when it is archived); invalid rows are rejected with their reason.
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
    writable(&community)?;
    let mut known: HashMap<RoomAddress, bool> = store::all_in_community(&mut tx, community_id)
        .await?
        .into_iter()
        .map(|r| {
            let archived = r.archived_at.is_some();
            (RoomAddress { building: r.building, unit: r.unit, number: r.number }, archived)
        })
        .collect();
    let now = db::now_ms();
    for row in rows {
        let addr = match address(
            row.building.as_deref().unwrap_or(""),
            row.unit.as_deref().unwrap_or(""),
            row.number.as_deref().unwrap_or(""),
        ) {
            Ok(a) => a,
            Err(e) => {
                report.reject(row.line, e.to_string());
                continue;
            }
        };
        match known.get(&addr) {
            Some(true) => report.reject(row.line, format!("room {} is archived", label(&addr))),
            Some(false) => report.unchanged += 1,
            None => {
                if store::insert_if_absent(&mut tx, community_id, &addr, now).await?.is_some() {
                    report.created += 1;
                } else {
                    report.unchanged += 1;
                }
                known.insert(addr, false);
            }
        }
    }
    report.rejected.sort_by_key(|r| r.line);
    let summary = serde_json::json!({
        "received": report.received,
        "created": report.created,
        "unchanged": report.unchanged,
        "rejected": report.rejected.len(),
    });
    if report.created > 0 {
        audit::record(
            &mut tx,
            actor,
            &community,
            "room.import",
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
    fn addresses_are_trimmed_and_checked() {
        let a = address(" 3 ", " ", "301").unwrap();
        assert_eq!((a.building.as_str(), a.unit.as_str(), a.number.as_str()), ("3", "", "301"));
        assert_eq!(label(&a), "3-301");
        assert!(address("", "1", "101").is_err());
        assert!(address("1", "1", &"9".repeat(33)).is_err());
        assert_eq!(label(&address("3", "2", "301").unwrap()), "3-2-301");
    }
}
