//! Liveness, readiness and metrics for load balancers and Prometheus.

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{handler, IntoResponse, Response};

use crate::app::AppState;

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
    let body = state.metrics.render(&state.db.pool_stats());
    Response::builder().content_type("text/plain; version=0.0.4").body(body)
}
