//! Liveness, readiness and metrics for load balancers and Prometheus.

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{handler, IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[handler]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: the database answers.
#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable", "reason": "database" })),
            )
                .into_response()
        }
    }
}

/// Prometheus text format.
#[handler]
pub async fn metrics(state: Data<&AppState>) -> Response {
    let mut body = state.metrics.render(&state.db.pool_stats());
    body.push_str(
        "# HELP linli_instances_live Instances sharing the database that the rate limits are divided among.\n",
    );
    body.push_str("# TYPE linli_instances_live gauge\n");
    body.push_str(&format!("linli_instances_live {}\n", state.limiter.live_instances()));
    Response::builder().content_type("text/plain; version=0.0.4").body(body)
}

/// `GET /sandbox`: where the sandbox's fake WeChat is, for the walkthrough; 404 outside the
/// sandbox. Not part of the API spec.
#[handler]
pub async fn describe(state: Data<&AppState>) -> Response {
    match &state.settings.sandbox_mock_url {
        Some(url) => Json(serde_json::json!({
            "mock_url": url,
            "oa_company_id": state.settings.wechat.oa_company_id,
            "second_company_id": state.settings.sandbox_second_company_id,
        }))
        .into_response(),
        None => ApiError::NotFound("sandbox").into_response(),
    }
}
