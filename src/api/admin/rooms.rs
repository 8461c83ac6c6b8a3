//! `/admin/v1/rooms` and room imports.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::{ts, ImportReportView, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::payload::Csv;
use crate::api::query::QueryParams;
use crate::api::ApiTags;
use crate::db::community::rooms::{RoomFilter, RoomRow};
use crate::domain::community::import::{parse_csv, ImportReport, RawRow};
use crate::domain::community::rooms;
use crate::error::ApiError;
use crate::state::AppState;

pub struct RoomsApi;

/// A room: community → building → unit → number.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Room")]
pub struct RoomView {
    pub id: i64,
    pub community_id: i64,
    pub building: String,
    /// Empty when the building has no units.
    pub unit: String,
    pub number: String,
    #[oai(nullable)]
    pub archived_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<RoomRow> for RoomView {
    fn from(r: RoomRow) -> Self {
        Self {
            id: r.id,
            community_id: r.community_id,
            building: r.building,
            unit: r.unit,
            number: r.number,
            archived_at: r.archived_at.map(ts),
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

/// A new room. Its address is unique in the community.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateRoom {
    pub community_id: i64,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub building: String,
    /// Omit or leave empty when the building has no units.
    #[oai(default, validator(max_length = 32))]
    pub unit: String,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub number: String,
}

/// Changes to a room's address; absent fields keep their value.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateRoom {
    #[oai(validator(min_length = 1, max_length = 32))]
    pub building: Option<String>,
    #[oai(validator(max_length = 32))]
    pub unit: Option<String>,
    #[oai(validator(min_length = 1, max_length = 32))]
    pub number: Option<String>,
}

/// A page of rooms.
#[derive(Debug, Clone, Object)]
pub struct RoomPage {
    pub items: Vec<RoomView>,
    pub page: PageInfo,
}

/// One room of an import. Fields are checked row by row, so a bad row is reported, not fatal.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RoomImportRow {
    pub building: Option<String>,
    pub unit: Option<String>,
    pub number: Option<String>,
}

/// Rooms to import, as JSON.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RoomImport {
    pub rows: Vec<RoomImportRow>,
}

/// Rooms to import: JSON, or a CSV file with the header `building,unit,number` (楼栋,单元,房号
/// also work).
#[derive(ApiRequest)]
pub enum RoomImportBody {
    Json(Json<RoomImport>),
    Csv(Csv),
}

#[derive(ApiResponse)]
pub enum RoomCreated {
    /// The room was created.
    #[oai(status = 201)]
    Created(Json<RoomView>),
}

list_query! {
    /// What `list_rooms` is narrowed by.
    pub struct ListRooms {
        /// Only rooms of this community.
        pub community_id: Option<i64>,
        /// Only rooms of this building.
        #[oai(validator(max_length = 32))]
        pub building: Option<String>,
        /// Only rooms of this unit.
        #[oai(validator(max_length = 32))]
        pub unit: Option<String>,
        /// Only rooms whose number contains this text.
        #[oai(validator(max_length = 32))]
        pub q: Option<String>,
        /// Include archived rooms.
        #[oai(default)]
        pub include_archived: bool,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::Rooms")]
impl RoomsApi {
    /// Create a room in a community. Operators and admins.
    #[oai(path = "/rooms", method = "post", operation_id = "create_room")]
    async fn create_room(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<CreateRoom>,
    ) -> Result<RoomCreated, ApiError> {
        let b = body.0;
        let addr = rooms::address(&b.building, &b.unit, &b.number)?;
        let room = rooms::create(&state.db, &key.0, b.community_id, addr).await?;
        Ok(RoomCreated::Created(Json(room.into())))
    }

    /// List rooms the key reaches, filtered and paginated.
    #[oai(path = "/rooms", method = "get", operation_id = "list_rooms")]
    async fn list_rooms(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListRooms>,
    ) -> Result<Json<RoomPage>, ApiError> {
        let req = query.page_request();
        let filter = RoomFilter {
            scope_path: String::new(),
            community_id: query.community_id,
            building: query.building,
            unit: query.unit,
            number_contains: query.q.filter(|s| !s.is_empty()),
            include_archived: query.include_archived,
        };
        let found = rooms::list(&state.db, &key.0, filter, req).await?;
        Ok(Json(RoomPage {
            items: found.items.into_iter().map(Into::into).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    /// One room.
    #[oai(path = "/rooms/:room_id", method = "get", operation_id = "get_room")]
    async fn get_room(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        room_id: Path<i64>,
    ) -> Result<Json<RoomView>, ApiError> {
        Ok(Json(rooms::get(&state.db, &key.0, room_id.0).await?.into()))
    }

    /// Edit a room's address. Operators and admins.
    #[oai(path = "/rooms/:room_id", method = "patch", operation_id = "update_room")]
    async fn update_room(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        room_id: Path<i64>,
        body: Json<UpdateRoom>,
    ) -> Result<Json<RoomView>, ApiError> {
        let b = body.0;
        Ok(Json(rooms::update(&state.db, &key.0, room_id.0, b.building, b.unit, b.number).await?.into()))
    }

    /// Archive a room (kept for history; hidden from lists unless asked for). Operators and admins.
    #[oai(path = "/rooms/:room_id", method = "delete", operation_id = "archive_room")]
    async fn archive_room(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        room_id: Path<i64>,
    ) -> Result<Json<RoomView>, ApiError> {
        Ok(Json(rooms::archive(&state.db, &key.0, room_id.0).await?.into()))
    }

    /// Import rooms into a community, as JSON or CSV. Each bad row is reported with its reason
    /// and the rest are imported; rooms that exist are left unchanged, so importing the same
    /// file twice changes nothing. Operators and admins.
    #[oai(path = "/communities/:community_id/rooms/import", method = "post", operation_id = "import_rooms")]
    async fn import_rooms(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        community_id: Path<i64>,
        body: RoomImportBody,
    ) -> Result<Json<ImportReportView>, ApiError> {
        let max = state.settings.import_max_rows;
        let (rows, rejected) = match body {
            RoomImportBody::Json(json) => {
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
                        ..Default::default()
                    })
                    .collect();
                (rows, Vec::new())
            }
            RoomImportBody::Csv(csv) => parse_csv(&csv.0, &["building", "number"], max)?,
        };
        let report = ImportReport { rejected, ..Default::default() };
        Ok(Json(rooms::import(&state.db, &key.0, community_id.0, rows, report, max).await?.into()))
    }
}
