//! Community views more than one surface shows: residents' roles in their rooms, bindings.

use poem_openapi::{Enum, Object};
use time::OffsetDateTime;

use crate::api::common::ts;
use crate::db::community::bindings::{BindingRow, BindingState};
use crate::db::community::roster::ResidentRole;

/// A person's relation to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "ResidentRole", rename_all = "lowercase")]
pub enum ResidentRoleView {
    /// 业主
    Owner,
    /// 家属
    Family,
    /// 租户
    Tenant,
}

one_to_one!(ResidentRoleView <=> ResidentRole { Owner, Family, Tenant });

/// Where a binding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "BindingState", rename_all = "lowercase")]
pub enum BindingStateView {
    /// Waiting for an operator's review.
    Pending,
    /// The resident is bound to the room.
    Verified,
    /// An operator refused it (see `reason`).
    Rejected,
    /// It was ended or withdrawn (see `reason`).
    Ended,
}

one_to_one!(BindingStateView <=> BindingState { Pending, Verified, Rejected, Ended });

/// A resident's binding to a room.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Binding")]
pub struct BindingView {
    pub id: i64,
    pub resident_id: i64,
    pub community_id: i64,
    pub community_name: String,
    pub room_id: i64,
    pub building: String,
    pub unit: String,
    pub number: String,
    /// The room as residents write it, e.g. `3-2-301`.
    pub room_label: String,
    pub role: ResidentRoleView,
    pub state: BindingStateView,
    pub name: String,
    pub phone: String,
    /// How it was verified: `roster`, `owner` (an invitation) or `operator`.
    #[oai(nullable)]
    pub verified_by: Option<String>,
    /// Why it was rejected or ended.
    #[oai(nullable)]
    pub reason: Option<String>,
    /// Who decided: an operator key, the room's owner, the resident, or the roster.
    #[oai(nullable)]
    pub decided_by: Option<String>,
    #[oai(nullable)]
    pub decided_at: Option<OffsetDateTime>,
    /// The owner binding whose invitation this came from.
    #[oai(nullable)]
    pub invited_by: Option<i64>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<BindingRow> for BindingView {
    fn from(b: BindingRow) -> Self {
        Self {
            room_label: crate::domain::community::bindings::room_label(&b),
            id: b.id,
            resident_id: b.resident_id,
            community_id: b.community_id,
            community_name: b.community_name,
            room_id: b.room_id,
            building: b.building,
            unit: b.unit,
            number: b.number,
            role: b.role.into(),
            state: b.state.into(),
            name: b.name,
            phone: b.phone,
            verified_by: b.verified_by,
            reason: b.reason,
            decided_by: b.decided_by,
            decided_at: b.decided_at.map(ts),
            invited_by: b.invited_by,
            created_at: ts(b.created_at),
            updated_at: ts(b.updated_at),
        }
    }
}
