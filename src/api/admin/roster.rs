//! `/admin/v1/roster` and roster imports.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::{ts, ImportReportView, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::payload::Csv;
use crate::api::query::QueryParams;
use crate::api::views::community::ResidentRoleView;
use crate::api::ApiTags;
use crate::db::community::roster::{RosterFilter, RosterRow};
use crate::domain::community::import::{parse_csv, ImportReport, RawRow};
use crate::domain::community::roster::{self, RosterPatch};
use crate::domain::operators::access::{Actor, Role};
use crate::error::ApiError;
use crate::state::AppState;

pub struct RosterApi;

/// A person on a community's roster.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RosterEntry")]
pub struct RosterEntryView {
    pub id: i64,
    pub community_id: i64,
    pub room_id: i64,
    pub building: String,
    pub unit: String,
    pub number: String,
    pub name: String,
    /// The mobile number, 11 digits; masked (`138****8000`) for viewer keys.
    pub phone: String,
    pub role: ResidentRoleView,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

fn mask(phone: &str) -> String {
    if phone.len() == 11 && phone.is_ascii() {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "****".to_owned()
    }
}

fn view(e: RosterRow, actor: &Actor) -> RosterEntryView {
    let phone = if actor.role >= Role::Operator { e.phone } else { mask(&e.phone) };
    RosterEntryView {
        id: e.id,
        community_id: e.community_id,
        room_id: e.room_id,
        building: e.building,
        unit: e.unit,
        number: e.number,
        name: e.name,
        phone,
        role: e.role.into(),
        created_at: ts(e.created_at),
        updated_at: ts(e.updated_at),
    }
}

/// A new roster entry.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateRosterEntry {
    pub room_id: i64,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub name: String,
    /// A mainland mobile number; spaces, dashes and a +86 prefix are accepted.
    #[oai(validator(min_length = 11, max_length = 20))]
    pub phone: String,
    pub role: ResidentRoleView,
}

/// Changes to a roster entry; absent fields keep their value.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateRosterEntry {
    /// Move the entry to another room of the same community.
    pub room_id: Option<i64>,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub name: Option<String>,
    #[oai(validator(min_length = 11, max_length = 20))]
    pub phone: Option<String>,
    pub role: Option<ResidentRoleView>,
}

/// A page of roster entries.
#[derive(Debug, Clone, Object)]
pub struct RosterPage {
    pub items: Vec<RosterEntryView>,
    pub page: PageInfo,
}

/// One person of a roster import. Fields are checked row by row, so a bad row is reported, not
/// fatal. `role` defaults to owner.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RosterImportRow {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub building: Option<String>,
    pub unit: Option<String>,
    pub number: Option<String>,
    pub role: Option<String>,
}

/// A roster to import, as JSON.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RosterImport {
    pub rows: Vec<RosterImportRow>,
}

/// A roster to import: JSON, or a CSV file with the header `name,phone,building,unit,number,role`
/// (姓名,手机号,楼栋,单元,房号,身份 also work; `role` is optional).
#[derive(ApiRequest)]
pub enum RosterImportBody {
    Json(Json<RosterImport>),
    Csv(Csv),
}

#[derive(ApiResponse)]
pub enum RosterEntryCreated {
    /// The entry was created.
    #[oai(status = 201)]
    Created(Json<RosterEntryView>),
}

#[derive(ApiResponse)]
pub enum RosterEntryDeleted {
    /// The entry was removed.
    #[oai(status = 204)]
    Deleted,
}

list_query! {
    /// What `list_roster` is narrowed by.
    pub struct ListRoster {
        /// Only entries of this community.
        pub community_id: Option<i64>,
        /// Only entries of this room.
        pub room_id: Option<i64>,
        /// Only entries with this phone number.
        #[oai(validator(max_length = 20))]
        pub phone: Option<String>,
        /// Only entries whose name contains this text.
        #[oai(validator(max_length = 32))]
        pub q: Option<String>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Roster")]
impl RosterApi {
    /// Add a person to a room's roster. Operators and admins.
    #[oai(path = "/roster", method = "post", operation_id = "create_roster_entry")]
    async fn create_roster_entry(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateRosterEntry>,
    ) -> Result<RosterEntryCreated, ApiError> {
        let b = body.0;
        let f = roster::fields(&b.name, &b.phone, b.role.into())?;
        let entry = roster::create(&state.db, &key.0, b.room_id, f).await?;
        Ok(RosterEntryCreated::Created(Json(view(entry, &key.0))))
    }

    /// List roster entries the key reaches, filtered and paginated.
    #[oai(path = "/roster", method = "get", operation_id = "list_roster")]
    async fn list_roster(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListRoster>,
    ) -> Result<Json<RosterPage>, ApiError> {
        let req = query.page_request();
        let filter = RosterFilter {
            scope_path: String::new(),
            community_id: query.community_id,
            room_id: query.room_id,
            phone: query.phone.filter(|s| !s.is_empty()),
            name_contains: query.q.filter(|s| !s.is_empty()),
        };
        let found = roster::list(&state.db, &key.0, filter, req).await?;
        let items = found.items.into_iter().map(|e| view(e, &key.0)).collect();
        Ok(Json(RosterPage { items, page: PageInfo::new(req, found.total) }))
    }

    /// One roster entry.
    #[oai(path = "/roster/:entry_id", method = "get", operation_id = "get_roster_entry")]
    async fn get_roster_entry(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        entry_id: Path<i64>,
    ) -> Result<Json<RosterEntryView>, ApiError> {
        Ok(Json(view(roster::get(&state.db, &key.0, entry_id.0).await?, &key.0)))
    }

    /// Edit a roster entry. Operators and admins.
    #[oai(path = "/roster/:entry_id", method = "patch", operation_id = "update_roster_entry")]
    async fn update_roster_entry(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        entry_id: Path<i64>,
        body: Json<UpdateRosterEntry>,
    ) -> Result<Json<RosterEntryView>, ApiError> {
        let b = body.0;
        let p = RosterPatch { room_id: b.room_id, name: b.name, phone: b.phone, role: b.role.map(Into::into) };
        Ok(Json(view(roster::update(&state.db, &key.0, entry_id.0, p).await?, &key.0)))
    }

    /// Remove a roster entry (the audit log keeps what it said). Operators and admins.
    #[oai(path = "/roster/:entry_id", method = "delete", operation_id = "delete_roster_entry")]
    async fn delete_roster_entry(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        entry_id: Path<i64>,
    ) -> Result<RosterEntryDeleted, ApiError> {
        roster::delete(&state.db, &key.0, entry_id.0).await?;
        Ok(RosterEntryDeleted::Deleted)
    }

    /// Import a community's roster, as JSON or CSV. Each row names its room by building, unit
    /// and number; bad rows are reported with their reason and the rest imported; importing the
    /// same file twice changes nothing. Operators and admins.
    #[oai(path = "/communities/:community_id/roster/import", method = "post", operation_id = "import_roster")]
    async fn import_roster(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        community_id: Path<i64>,
        body: RosterImportBody,
    ) -> Result<Json<ImportReportView>, ApiError> {
        let max = state.settings.import_max_rows;
        let (rows, rejected) = match body {
            RosterImportBody::Json(json) => {
                let rows = json
                    .0
                    .rows
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| RawRow {
                        line: i + 1,
                        building: r.building,
                        unit: r.unit,
                        number: r.number,
                        name: r.name,
                        phone: r.phone,
                        role: r.role,
                    })
                    .collect();
                (rows, Vec::new())
            }
            RosterImportBody::Csv(csv) => parse_csv(&csv.0, &["name", "phone", "building", "number"], max)?,
        };
        let report = ImportReport { rejected, ..Default::default() };
        Ok(Json(roster::import(&state.db, &key.0, community_id.0, rows, report, max).await?.into()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn phones_are_masked_for_viewers() {
        assert_eq!(super::mask("13800138000"), "138****8000");
        assert_eq!(super::mask("x"), "****");
    }
}
