//! What every request goes through: a request id (taken from `X-Request-Id` when sane, made
//! otherwise, echoed in the answer), the abuse limits, the body size cap and read deadline, the
//! strict check of a JSON body against its operation's schema, one JSON error body for every error
//! (a 405 with its `Allow` header), a log line and the metrics.

use std::sync::Arc;
use std::time::Instant;

use poem::error::ReadBodyError;
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, Request, Response};
use poem_openapi::error::ParseRequestPayloadError;
use rand::RngCore;

use super::allow::AllowedMethods;
use super::request_bodies::RequestBodies;
use crate::codes::ErrorCode;
use crate::error::{framework_error_response, ApiError, REQUEST_ID};
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What an operation is given in place of a JSON body its schema refuses: not JSON at all.
const UNPARSEABLE_BODY: &[u8] = b"!";

#[derive(Clone)]
pub struct RequestContext {
    state: AppState,
    allowed: Arc<AllowedMethods>,
    bodies: Arc<RequestBodies>,
}

fn incoming_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    sane.then(|| v.to_owned())
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The metrics label of a route that is not an API operation.
fn system_route(path: &str, status: StatusCode) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        "/wechat/oa/callback" => "wechat_oa_callback",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        _ if status == StatusCode::NOT_FOUND => "unmatched",
        _ => "other",
    }
}

impl RequestContext {
    pub fn new(state: AppState, allowed: AllowedMethods, bodies: RequestBodies) -> Self {
        Self { state, allowed: Arc::new(allowed), bodies: Arc::new(bodies) }
    }

    pub async fn handle<E: Endpoint<Output = Response>>(&self, ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = incoming_request_id(&req).unwrap_or_else(new_request_id);
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        // What the schema check found wrong with the body, if anything.
        let mut refused = None;

        let result = REQUEST_ID
            .scope(request_id.clone(), async {
                if let Err(retry_after_secs) = self.state.limiter.check(&req, crate::db::now_ms()).await {
                    return Ok(poem::IntoResponse::into_response(crate::error::ApiError::TooManyRequests {
                        retry_after_secs,
                    }));
                }
                let body = self.limit_body(&mut req).await?;
                let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                if let Err(why) = self.bodies.check(req.method(), &path, content_type, body.as_ref()) {
                    // The operation still runs, so that it answers what comes before its body
                    // (its authentication: a stranger learns nothing of the body), but it gets a
                    // body it cannot parse, so it never acts on one its schema refuses.
                    req.set_body(UNPARSEABLE_BODY);
                    refused = Some(why);
                }
                ep.call(req).await
            })
            .await;
        let (operation, mut resp) = match result {
            Ok(resp) => (resp.data::<poem_openapi::OperationId>().map(|o| o.0), resp),
            Err(err) => {
                let op = err.data::<poem_openapi::OperationId>().map(|o| o.0);
                let resp = REQUEST_ID.sync_scope(request_id.clone(), || match refused {
                    // The operation could not parse the stand-in body: say what the check found.
                    Some(message) if err.is::<ParseRequestPayloadError>() => {
                        poem::IntoResponse::into_response(ApiError::BadRequest {
                            code: ErrorCode::InvalidBody,
                            message,
                        })
                    }
                    _ => framework_error_response(err),
                });
                (op, resp)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED && !resp.headers().contains_key(header::ALLOW) {
            if let Some(allow) = self.allowed.for_path(&path).and_then(|a| HeaderValue::from_str(a).ok()) {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
        }
        let status = resp.status();
        let route = operation.unwrap_or_else(|| system_route(&path, status));
        let elapsed = started.elapsed();
        self.state.metrics.observe(&method, route, status.as_u16(), elapsed);
        tracing::info!(
            request_id = %request_id, method = %method, path = %path, route, status = status.as_u16(),
            elapsed_ms = elapsed.as_millis() as u64, "request"
        );
        Ok(resp)
    }

    /// Reads the body up to the cap, so no handler can be made to buffer more; a declared or
    /// actual size over it is refused with 413 before any handler runs. A body that does not
    /// arrive within the read deadline is refused with 408, and the connection closed. Answers the
    /// body read.
    async fn limit_body(&self, req: &mut Request) -> poem::Result<impl AsRef<[u8]>> {
        let max = self.state.settings.max_body_bytes;
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(ReadBodyError::PayloadTooLarge.into());
        }
        let body = req.take_body().into_bytes_limit(max);
        let read = match self.state.settings.body_read_timeout {
            Some(deadline) => match tokio::time::timeout(deadline, body).await {
                Ok(read) => read,
                Err(_) => return Err(ApiError::RequestTimeout.into()),
            },
            None => body.await,
        };
        match read {
            Ok(bytes) => {
                req.set_body(bytes.clone());
                Ok(bytes)
            }
            Err(e @ ReadBodyError::PayloadTooLarge) => Err(e.into()),
            Err(e) => {
                Err(poem::Error::from_string(format!("cannot read the request body: {e}"), StatusCode::BAD_REQUEST))
            }
        }
    }
}
