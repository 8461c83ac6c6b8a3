//! The one error type of the HTTP surface and the one error body every 4xx/5xx carries:
//! `{code, message, request_id}`. Each domain error maps to one status here, and nowhere else.
//! Server-side causes are logged with the request id; the client sees an opaque message.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::{ApiResponse, Object};

use crate::codes::ErrorCode;
use crate::db::DbError;
use crate::domain::DomainError;

tokio::task_local! {
    /// The id of the request being served, set by the request middleware.
    pub static REQUEST_ID: String;
}

/// The current request's id, or an empty string outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The body of every error answer. `code` is stable and machine-readable (`not_found`,
/// `validation_failed`, `room_exists`, …: see `ErrorCode`).
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// What went wrong, for people; may change between versions.
    pub message: String,
    /// The request's id, also in the `X-Request-Id` header and in the server's logs.
    pub request_id: String,
}

/// The error answers every operation documents.
#[derive(ApiResponse)]
pub enum ErrorResponse {
    /// The request is malformed: bad JSON, a wrong type, an unknown field, a value out of range.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No valid credentials were given.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The credentials are valid but their role does not allow this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such thing within the caller's reach.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request clashes with the current state (a duplicate, an archived org, …).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request is well-formed but breaks a rule.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The request body did not arrive in time; the connection is closed.
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorBody>),
    /// The request body is larger than allowed.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is missing its `Content-Type` or has one the operation does not take.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// An unexpected failure on the server.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (the database) is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

/// What an API operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("a valid API key is required")]
    Unauthorized,
    /// Credentials other than an API key that do not check out (a session, a login code).
    #[error("{0}")]
    Unauthenticated(String),
    /// WeChat failed us; the client may retry.
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// A webhook whose signature, timestamp or encryption does not check out.
    #[error("{0}")]
    SignatureRejected(String),
    /// A plaintext push to an official account that takes encrypted (safe-mode) pushes only.
    #[error("{0}")]
    EncryptionRequired(&'static str),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound(what) => ApiError::NotFound(what),
            DomainError::Forbidden(msg) => ApiError::Forbidden(msg),
            DomainError::Conflict { code, message } => ApiError::Conflict { code, message },
            DomainError::Invalid { code, message } => ApiError::Unprocessable { code, message },
            DomainError::Unauthenticated(message) => ApiError::Unauthenticated(message),
            DomainError::RateLimited(secs) => ApiError::TooManyRequests { retry_after_secs: secs },
            DomainError::Upstream(message) => ApiError::Upstream(message),
            DomainError::Db(db) => db.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(_) => ApiError::Unavailable(err.into()),
            // A constraint the domain did not anticipate: still the caller's input, not a crash.
            DbError::UniqueViolation => ApiError::Conflict {
                code: ErrorCode::Conflict,
                message: "the change conflicts with existing data".into(),
            },
            DbError::ForeignKeyViolation => ApiError::Unprocessable {
                code: ErrorCode::InvalidReference,
                message: "the change refers to something that does not exist".into(),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl ApiError {
    fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. } => *code,
            ApiError::Unauthorized | ApiError::Unauthenticated(_) => ErrorCode::Unauthorized,
            ApiError::Upstream(_) => ErrorCode::UpstreamUnavailable,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict { code, .. } => *code,
            ApiError::Unprocessable { code, .. } => *code,
            ApiError::TooManyRequests { .. } => ErrorCode::TooManyRequests,
            ApiError::SignatureRejected(_) => ErrorCode::BadSignature,
            ApiError::EncryptionRequired(_) => ErrorCode::EncryptionRequired,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::NotConfigured(_) => ErrorCode::NotConfigured,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn into_error_response(self) -> ErrorResponse {
        let request_id = current_request_id();
        match &self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                tracing::error!(request_id = %request_id, error = %format!("{cause:#}"), "request failed");
            }
            _ => {}
        }
        let body = Json(ErrorBody { code: self.code(), message: self.to_string(), request_id });
        match self {
            ApiError::BadRequest { .. } => ErrorResponse::BadRequest(body),
            ApiError::Unauthorized
            | ApiError::Unauthenticated(_)
            | ApiError::SignatureRejected(_)
            | ApiError::EncryptionRequired(_) => ErrorResponse::Unauthorized(body),
            ApiError::Upstream(_) => ErrorResponse::Unavailable(body),
            ApiError::PayloadTooLarge => ErrorResponse::PayloadTooLarge(body),
            ApiError::RequestTimeout => ErrorResponse::RequestTimeout(body),
            ApiError::NotConfigured(_) => ErrorResponse::Unavailable(body),
            ApiError::Forbidden(_) => ErrorResponse::Forbidden(body),
            ApiError::NotFound(_) => ErrorResponse::NotFound(body),
            ApiError::Conflict { .. } => ErrorResponse::Conflict(body),
            ApiError::Unprocessable { .. } => ErrorResponse::Unprocessable(body),
            ApiError::TooManyRequests { retry_after_secs } => ErrorResponse::TooManyRequests(body, retry_after_secs),
            ApiError::Unavailable(_) => ErrorResponse::Unavailable(body),
            ApiError::Internal(_) => ErrorResponse::Internal(body),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The rest of a late body may still come: the connection cannot carry another request.
        let closes = matches!(self, ApiError::RequestTimeout);
        let mut resp = self.into_error_response().into_response();
        if closes {
            resp.headers_mut().insert(poem::http::header::CONNECTION, poem::http::HeaderValue::from_static("close"));
        }
        resp
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        ErrorResponse::meta()
    }
    fn register(registry: &mut Registry) {
        ErrorResponse::register(registry);
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

/// The JSON error answer for an error raised outside our handlers: poem's routing (404, 405),
/// poem-openapi's request parsing (400) and authentication (401), body limits (413).
pub fn framework_error_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let request_id = current_request_id();
    let (code, message) = match status {
        // A JSON body poem-openapi cannot parse into its type (not JSON, an unknown field, a
        // value its validators refuse): the same code as the strict schema check's refusals.
        StatusCode::BAD_REQUEST if err.is::<poem_openapi::error::ParseRequestPayloadError>() => {
            (ErrorCode::InvalidBody, err.to_string())
        }
        StatusCode::BAD_REQUEST => (ErrorCode::BadRequest, err.to_string()),
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthorized, "a valid API key is required".to_owned()),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, err.to_string()),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "method not allowed on this route".to_owned()),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "the request body is too large".to_owned()),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::RequestTimeout, "the request did not arrive in time".to_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorCode::UnsupportedMediaType, err.to_string()),
        s if s.is_server_error() => {
            tracing::error!(request_id = %request_id, error = %err, "request failed");
            (ErrorCode::Internal, "internal error".to_owned())
        }
        _ => (ErrorCode::BadRequest, err.to_string()),
    };
    let body = ErrorBody { code, message, request_id };
    (status, poem::web::Json(body)).into_response()
}
