//! The server's error answers: a status and one JSON object naming what was wrong and where
//! (docs/SERVING.md, "Errors"):
//!
//! ```json
//! {"error": {"code": "unknown_feature", "field": "people[2].salary", "message": "..."}, "id": "r-7"}
//! ```

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Seconds a client is asked to wait (`Retry-After`) when the server is busy.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Machine-readable error codes (the `code` field); each is documented in docs/SERVING.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The body is not JSON (or not UTF-8).
    MalformedJson,
    /// A field has the wrong JSON type.
    WrongType,
    /// A key the request or a person may not have.
    UnknownField,
    /// A key that names no feature of the model (in a person, or in `forbid`, `min`, ...).
    UnknownFeature,
    /// A key given twice in one object.
    DuplicateField,
    /// A feature of the model missing from a person.
    MissingFeature,
    /// A person given as an array with the wrong number of values.
    WrongLength,
    /// A value that is not a finite 32-bit float.
    NotFinite,
    /// A binary feature that is not exactly 0 or 1.
    NotBinary,
    /// A value outside what the field accepts (a probability, a count, a direction).
    InvalidValue,
    /// Neither `person` nor `people`, or both.
    MissingPeople,
    /// More people than the batch limit.
    BatchTooLarge,
    /// A body over the size limit.
    BodyTooLarge,
    /// A `Content-Type` other than JSON.
    UnsupportedMediaType,
    /// No such endpoint.
    NotFound,
    /// The endpoint exists, not with this method.
    MethodNotAllowed,
    /// The body did not arrive within the request timeout.
    RequestTimeout,
    /// The answer was not ready within the request timeout.
    Timeout,
    /// Every request slot is taken.
    Overloaded,
    /// The server is shutting down.
    ShuttingDown,
    /// A reload was refused: the old model keeps serving.
    ReloadRefused,
    /// Reloading over HTTP is not enabled.
    ReloadDisabled,
    /// The core refused a person for a reason not listed above.
    Refused,
}

impl Code {
    /// Every code (the documentation test goes through them).
    #[cfg(test)]
    pub const ALL: [Code; 23] = [
        Code::MalformedJson,
        Code::WrongType,
        Code::UnknownField,
        Code::UnknownFeature,
        Code::DuplicateField,
        Code::MissingFeature,
        Code::WrongLength,
        Code::NotFinite,
        Code::NotBinary,
        Code::InvalidValue,
        Code::MissingPeople,
        Code::BatchTooLarge,
        Code::BodyTooLarge,
        Code::UnsupportedMediaType,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::RequestTimeout,
        Code::Timeout,
        Code::Overloaded,
        Code::ShuttingDown,
        Code::ReloadRefused,
        Code::ReloadDisabled,
        Code::Refused,
    ];

    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed_json",
            Code::WrongType => "wrong_type",
            Code::UnknownField => "unknown_field",
            Code::UnknownFeature => "unknown_feature",
            Code::DuplicateField => "duplicate_field",
            Code::MissingFeature => "missing_feature",
            Code::WrongLength => "wrong_length",
            Code::NotFinite => "not_finite",
            Code::NotBinary => "not_binary",
            Code::InvalidValue => "invalid_value",
            Code::MissingPeople => "missing_people",
            Code::BatchTooLarge => "batch_too_large",
            Code::BodyTooLarge => "body_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::RequestTimeout => "request_timeout",
            Code::Timeout => "timeout",
            Code::Overloaded => "overloaded",
            Code::ShuttingDown => "shutting_down",
            Code::ReloadRefused => "reload_refused",
            Code::ReloadDisabled => "reload_disabled",
            Code::Refused => "refused",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BatchTooLarge | Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::NotFound | Code::ReloadDisabled => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::Timeout | Code::Overloaded | Code::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::ReloadRefused | Code::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What went wrong.
    pub code: Code,
    /// Where, as a path into the request (`people[2].income`, `forbid[0]`), when it applies.
    pub field: Option<String>,
    /// In words.
    pub message: String,
    /// The request's `id`, as its JSON text, when it was read.
    pub id: Option<String>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            field: None,
            message: message.into(),
            id: None,
        }
    }

    /// An error at `field`.
    pub fn at(code: Code, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            field: Some(field.into()),
            message: message.into(),
            id: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.message.len());
        out.extend_from_slice(b"{\"error\":{\"code\":\"");
        out.extend_from_slice(self.code.as_str().as_bytes());
        out.extend_from_slice(b"\"");
        if let Some(f) = &self.field {
            out.extend_from_slice(b",\"field\":");
            json_string(&mut out, f);
        }
        out.extend_from_slice(b",\"message\":");
        json_string(&mut out, &self.message);
        out.push(b'}');
        if let Some(id) = &self.id {
            out.extend_from_slice(b",\"id\":");
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(b"}\n");
        out
    }
}

/// Append `s` as a JSON string.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/SERVING.md's table of errors lists every code with the status it is sent with.
    #[test]
    fn every_code_is_documented_with_its_status() {
        let doc = include_str!("../../../docs/SERVING.md");
        for code in Code::ALL {
            let cell = format!("| `{}` |", code.as_str());
            let line = doc
                .lines()
                .find(|l| l.contains(&cell))
                .unwrap_or_else(|| panic!("{} is not in docs/SERVING.md", code.as_str()));
            let status = code.status().as_u16().to_string();
            assert!(
                line.starts_with(&format!("| {status} |")),
                "{}: documented as `{line}`, sent as {status}",
                code.as_str()
            );
        }
    }

    /// An error body is one JSON object with the code, the field, the message and the id.
    #[test]
    fn error_body_is_json_with_code_field_message_and_id() {
        let mut e = ApiError::at(
            Code::UnknownFeature,
            "people[2].sal\"ary",
            "no \"sal\"ary\"",
        );
        e.id = Some("\"r-1\"".to_owned());
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "unknown_feature");
        assert_eq!(v["error"]["field"], "people[2].sal\"ary");
        assert_eq!(v["error"]["message"], "no \"sal\"ary\"");
        assert_eq!(v["id"], "r-1");
    }
}
