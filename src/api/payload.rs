//! A `text/csv` request payload, for bulk imports from spreadsheets.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::MetaSchemaRef;
use poem_openapi::types::Type;

/// A CSV file with a header row, UTF-8 (a byte-order mark is allowed).
#[derive(Debug, Clone)]
pub struct Csv(pub String);

impl Payload for Csv {
    const CONTENT_TYPE: &'static str = "text/csv";

    fn check_content_type(content_type: &str) -> bool {
        content_type.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"))
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }
}

impl ParsePayload for Csv {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = Vec::<u8>::from_request(request, body).await?;
        let text = String::from_utf8(bytes).map_err(|_| {
            poem::Error::from_string("the CSV file must be UTF-8 text", poem::http::StatusCode::BAD_REQUEST)
        })?;
        Ok(Csv(text))
    }
}
