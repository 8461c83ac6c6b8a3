//! `/admin/v1/tasks`: invite-neighbours tasks, their assignment and figures.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{ms, PageInfo};
use crate::api::auth::OperatorKey;
use crate::api::query::QueryParams;
use crate::api::views::tasks::{view, RewardKind, Task, TaskCategory, TaskMode, TaskStateView};
use crate::api::ApiTags;
use crate::db::money::payouts::PayoutChannel as StoredChannel;
use crate::db::tasks::{Figures, TaskFilter};
use crate::domain::tasks::{self, TaskInput};
use crate::error::ApiError;
use crate::state::AppState;

pub struct TasksApi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "RewardChannel", rename_all = "snake_case")]
pub enum RewardChannel {
    CashRedPacket,
    Transfer,
}

impl From<RewardChannel> for StoredChannel {
    fn from(c: RewardChannel) -> Self {
        match c {
            RewardChannel::CashRedPacket => StoredChannel::CashRedPacket,
            RewardChannel::Transfer => StoredChannel::Transfer,
        }
    }
}

/// A task's terms. `reward_channel` (`cash_red_packet` or `transfer`) is for `red_packet` rewards.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct TaskTerms {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub theme: String,
    pub mode: TaskMode,
    pub category: TaskCategory,
    /// `invite_shop`: the merchant to shop at; absent: any merchant of the owner's company.
    pub merchant_id: Option<i64>,
    /// Invitees that make one round.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub target: i64,
    pub reward_kind: RewardKind,
    /// Points, or fen (balance and red packets).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub reward_amount: i64,
    // No doc comment: a described enum `$ref` becomes `allOf`, which SDK generators reject. The
    // struct's doc says it is for `red_packet` rewards.
    pub reward_channel: Option<RewardChannel>,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    /// How many times one resident may complete it (default 1).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_rounds: Option<i64>,
    /// The most invitations of one inviter that count per day (default 20).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub daily_cap: Option<i64>,
}

impl TaskTerms {
    fn into_input(self) -> TaskInput {
        TaskInput {
            theme: self.theme,
            mode: self.mode.into(),
            category: self.category.into(),
            merchant_id: self.merchant_id,
            target: self.target,
            reward_kind: self.reward_kind.into(),
            reward_amount: self.reward_amount,
            reward_channel: self.reward_channel.map(Into::into),
            starts_at: ms(self.starts_at),
            ends_at: ms(self.ends_at),
            max_rounds: self.max_rounds.unwrap_or(1),
            daily_cap: self.daily_cap.unwrap_or(20),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PublishTask {
    /// A property company or a community the key reaches.
    pub owner_org_id: i64,
    pub terms: TaskTerms,
}

#[derive(Debug, Clone, Object)]
pub struct TaskList {
    pub items: Vec<Task>,
    pub page: PageInfo,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AssignTask {
    /// Verified residents under the task's owner.
    #[oai(default, validator(max_items = 1000))]
    pub resident_ids: Vec<i64>,
    /// Every verified resident of this community.
    pub community_id: Option<i64>,
}

#[derive(Debug, Clone, Object)]
pub struct Assigned {
    /// Residents newly assigned (those who had it already are not counted).
    pub assigned: i64,
}

#[derive(ApiResponse)]
pub enum TaskPublished {
    #[oai(status = 201)]
    Created(Json<Task>),
}

#[derive(ApiResponse)]
pub enum TaskDeleted {
    #[oai(status = 204)]
    Deleted,
}

list_query! {
    /// What `list_tasks` is narrowed by.
    pub struct ListTasks {
        pub owner_org_id: Option<i64>,
        #[oai(rename = "state")]
        pub task_state: Option<TaskStateView>,
        pub category: Option<TaskCategory>,
        pub mode: Option<TaskMode>,
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "ApiTags::AdminTasks")]
impl TasksApi {
    /// Publish a task: open for residents to accept, or for operators to assign.
    #[oai(path = "/tasks", method = "post", operation_id = "publish_task")]
    async fn publish_task(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        body: Json<PublishTask>,
    ) -> Result<TaskPublished, ApiError> {
        let b = body.0;
        let t = tasks::create(&state.db, &key.0, &state.payer, b.owner_org_id, b.terms.into_input()).await?;
        Ok(TaskPublished::Created(Json(view(t, Figures::default()))))
    }

    /// Tasks of the orgs the key reaches, newest first, with figures.
    #[oai(path = "/tasks", method = "get", operation_id = "list_tasks")]
    async fn list_tasks(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        QueryParams(query): QueryParams<ListTasks>,
    ) -> Result<Json<TaskList>, ApiError> {
        let req = query.page_request();
        let filter = TaskFilter {
            scope_path: String::new(),
            owner_org_id: query.owner_org_id,
            state: query.task_state.map(Into::into),
            category: query.category.map(Into::into),
            mode: query.mode.map(Into::into),
        };
        let found = tasks::list(&state.db, &key.0, filter, req).await?;
        Ok(Json(TaskList {
            items: found.items.into_iter().map(|(t, f)| view(t, f)).collect(),
            page: PageInfo::new(req, found.total),
        }))
    }

    #[oai(path = "/tasks/:task_id", method = "get", operation_id = "get_task")]
    async fn get_task(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        task_id: Path<i64>,
    ) -> Result<Json<Task>, ApiError> {
        let (t, f) = tasks::get(&state.db, &key.0, task_id.0).await?;
        Ok(Json(view(t, f)))
    }

    /// Rewrite a task. Once residents hold it only the theme, a later end, more rounds and a higher
    /// daily cap may change; the answer names what may not.
    #[oai(path = "/tasks/:task_id", method = "put", operation_id = "update_task")]
    async fn update_task(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        task_id: Path<i64>,
        body: Json<TaskTerms>,
    ) -> Result<Json<Task>, ApiError> {
        let t = tasks::update(&state.db, &key.0, &state.payer, task_id.0, body.0.into_input()).await?;
        let f = crate::db::tasks::figures(state.db.reader(), t.id).await?;
        Ok(Json(view(t, f)))
    }

    /// Delete a task nobody has taken.
    #[oai(path = "/tasks/:task_id", method = "delete", operation_id = "delete_task")]
    async fn delete_task(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        task_id: Path<i64>,
    ) -> Result<TaskDeleted, ApiError> {
        tasks::delete(&state.db, &key.0, task_id.0).await?;
        Ok(TaskDeleted::Deleted)
    }

    /// End a task: nothing more counts; rewards earned stay.
    #[oai(path = "/tasks/:task_id/end", method = "post", operation_id = "end_task")]
    async fn end_task(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        task_id: Path<i64>,
    ) -> Result<Json<Task>, ApiError> {
        let t = tasks::end(&state.db, &key.0, task_id.0).await?;
        let f = crate::db::tasks::figures(state.db.reader(), t.id).await?;
        Ok(Json(view(t, f)))
    }

    /// Assign an `assigned` task to chosen verified residents and/or all verified residents of a
    /// community under the task's owner.
    #[oai(path = "/tasks/:task_id/assignments", method = "post", operation_id = "assign_task")]
    async fn assign_task(
        &self,
        state: Data<&AppState>,
        key: OperatorKey,
        task_id: Path<i64>,
        body: Json<AssignTask>,
    ) -> Result<Json<Assigned>, ApiError> {
        let b = body.0;
        let n = tasks::assign(&state.db, &key.0, task_id.0, &b.resident_ids, b.community_id).await?;
        Ok(Json(Assigned { assigned: n }))
    }
}
