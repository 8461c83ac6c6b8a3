//! `/mp/v1/tasks`: tasks I can take, my tasks with progress, my invitation (a scene for a
//! mini-program link and an official-account QR code), and accepting an invitation.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::ResidentSession;
use crate::api::common::{page_request, ts};
use crate::api::views::tasks::{view, Task};
use crate::api::ApiTags;
use crate::codes::ErrorCode;
use crate::db::tasks::{Figures, QrRow};
use crate::domain::tasks;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wechat::api::AppCredentials;

pub struct MpTasksApi;

/// The longest a QR code lives (WeChat's limit for temporary codes: 30 days).
const QR_MAX_SECS: i64 = 30 * 86_400;

#[derive(Debug, Clone, Object)]
pub struct AvailableTask {
    pub task: Task,
    /// Whether I have it (accepted, or assigned to me).
    pub mine: bool,
}

#[derive(Debug, Clone, Object)]
pub struct AvailableTaskList {
    pub items: Vec<AvailableTask>,
}

/// A task I hold and how far I am.
#[derive(Debug, Clone, Object)]
pub struct MyTask {
    pub task: Task,
    /// `accepted` or `assigned`.
    pub how: String,
    /// Invitees who counted so far.
    pub counted: i64,
    /// Invitees attributed to me, not yet counted.
    pub waiting: i64,
    /// Rounds completed (rewards earned).
    pub rounds: i64,
    /// Invitees still needed for the next reward (0 when every round is done).
    pub to_next_reward: i64,
    pub accepted_at: OffsetDateTime,
}

#[derive(Debug, Clone, Object)]
pub struct MyTaskList {
    pub items: Vec<MyTask>,
}

/// An official-account QR code: scanning it and following brings the invitee in through me.
#[derive(Debug, Clone, Object)]
pub struct QrCodeView {
    /// Show it with `https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=…`.
    pub ticket: String,
    /// What the code encodes, to draw it without WeChat's image.
    pub url: String,
    pub expires_at: OffsetDateTime,
}

/// What I share to invite neighbours for a task.
#[derive(Debug, Clone, Object)]
pub struct InvitationView {
    pub task_id: i64,
    /// The scene value: pass it as `scene` in a mini-program link or code.
    pub scene: String,
    /// The mini-program page to open with it.
    pub mp_path: String,
    /// Absent when the official account is not configured.
    #[oai(nullable)]
    pub qr_code: Option<QrCodeView>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The scene the mini-program was opened with.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub scene: String,
}

#[derive(Debug, Clone, Object)]
pub struct InvitationAccepted {
    pub task_id: i64,
    pub theme: String,
    /// What counts me for my inviter: binding my home, or a first purchase.
    pub category: String,
}

#[derive(ApiResponse)]
pub enum Attributed {
    #[oai(status = 201)]
    Created(Json<InvitationAccepted>),
}

fn qr_view(q: &QrRow) -> QrCodeView {
    QrCodeView { ticket: q.ticket.clone(), url: q.url.clone(), expires_at: ts(q.expires_at) }
}

#[OpenApi(prefix_path = "/mp/v1", tag = "ApiTags::MpTasks")]
impl MpTasksApi {
    /// Tasks of a property company I can take now, and those assigned to me.
    #[oai(path = "/tasks", method = "get", operation_id = "list_available_tasks")]
    async fn list_available_tasks(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// The property company; absent: the official account's.
        company_id: Query<Option<i64>>,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<AvailableTaskList>, ApiError> {
        let company = company_id.0.or(state.settings.wechat.oa_company_id).ok_or(ApiError::Unprocessable {
            code: ErrorCode::CompanyRequired,
            message: "name the property company".into(),
        })?;
        let items = tasks::available(&state.db, &me.0, company, page_request(page.0, page_size.0))
            .await?
            .into_iter()
            .map(|a| AvailableTask { mine: a.hold.is_some(), task: view(a.task, Figures::default()) })
            .collect();
        Ok(Json(AvailableTaskList { items }))
    }

    /// Take an open task (taking it again answers the same).
    #[oai(path = "/tasks/:task_id/accept", method = "post", operation_id = "accept_task")]
    async fn accept_task(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        task_id: Path<i64>,
    ) -> Result<Json<AvailableTask>, ApiError> {
        tasks::accept(&state.db, &me.0, task_id.0).await?;
        let t = crate::db::tasks::get(state.db.reader(), task_id.0).await?.ok_or(ApiError::NotFound("task"))?;
        Ok(Json(AvailableTask { task: view(t, Figures::default()), mine: true }))
    }

    /// My tasks with progress, newest first.
    #[oai(path = "/me/tasks", method = "get", operation_id = "list_my_tasks")]
    async fn list_my_tasks(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        /// Page number, from 1.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        page: Query<Option<u32>>,
        /// Items per page, 1–200 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        page_size: Query<Option<u32>>,
    ) -> Result<Json<MyTaskList>, ApiError> {
        let mine = tasks::mine(&state.db, &me.0).await?;
        let items = page_request(page.0, page_size.0)
            .slice(mine)
            .into_iter()
            .map(|(t, m)| {
                let done = m.rounds >= t.max_rounds;
                let to_next = if done { 0 } else { t.target - m.counted % t.target };
                MyTask {
                    how: m.how,
                    counted: m.counted,
                    waiting: m.attributed,
                    rounds: m.rounds,
                    to_next_reward: to_next,
                    accepted_at: ts(m.accepted_at),
                    task: view(t, Figures::default()),
                }
            })
            .collect();
        Ok(Json(MyTaskList { items }))
    }

    /// My invitation for a task I hold: the scene for a mini-program link, and an official-account
    /// QR code (made by WeChat on first ask, then kept until a day before it expires).
    #[oai(path = "/me/tasks/:task_id/invitation", method = "get", operation_id = "get_my_invitation")]
    async fn get_my_invitation(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        task_id: Path<i64>,
    ) -> Result<Json<InvitationView>, ApiError> {
        let inv = tasks::invitation(&state.db, &me.0, task_id.0).await?;
        let wechat = &state.settings.wechat;
        let qr = match (inv.qr, &wechat.oa_appid, &wechat.oa_secret) {
            (Some(q), _, _) => Some(q),
            (None, Some(appid), Some(secret)) => {
                let now = crate::db::now_ms();
                let lifetime = ((inv.task.ends_at - now) / 1000).clamp(60, QR_MAX_SECS);
                let app = AppCredentials { appid: appid.clone(), secret: secret.clone() };
                let code = state
                    .wechat
                    .create_qr_scene(&app, &inv.scene, lifetime)
                    .await
                    .map_err(|e| ApiError::Upstream(format!("WeChat did not make the QR code: {e}")))?;
                let row = QrRow {
                    scene: inv.scene.clone(),
                    ticket: code.ticket,
                    url: code.url,
                    expires_at: now + code.expire_seconds.unwrap_or(lifetime) * 1000,
                };
                tasks::store_qr(&state.db, &me.0, task_id.0, &row).await?;
                Some(row)
            }
            _ => None,
        };
        Ok(Json(InvitationView {
            task_id: inv.task.id,
            mp_path: format!("{}?scene={}", tasks::TASKS_PAGE, inv.scene),
            scene: inv.scene,
            qr_code: qr.as_ref().map(qr_view),
        }))
    }

    /// I opened the mini-program through a neighbour's invitation: attribute me to their task.
    /// Refused (409) for my own invitation, if I am already a verified resident (bind tasks) or a
    /// customer (shop tasks), or when I was invited for this task before.
    #[oai(path = "/invitations", method = "post", operation_id = "accept_invitation")]
    async fn accept_invitation(
        &self,
        state: Data<&AppState>,
        me: ResidentSession,
        body: Json<AcceptInvitation>,
    ) -> Result<Attributed, ApiError> {
        let (_, t) = tasks::claim_scene(&state.db, &me.0, &body.0.scene).await?;
        Ok(Attributed::Created(Json(InvitationAccepted {
            task_id: t.id,
            theme: t.theme,
            category: t.category.as_str().to_owned(),
        })))
    }
}
