//! Extractors that turn bad input into our JSON errors: `ApiJson`, `ApiQuery`, and optional
//! JSON bodies.

use axum::{
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
};
use std::marker::PhantomData;

use serde::{
    Deserialize, Deserializer,
    de::{DeserializeOwned, MapAccess, Visitor, value::MapAccessDeserializer},
};

use crate::app::error::{AppError, ErrorCode};

/// The configured body limit, so rejections can state it.
#[derive(Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// `Json<T>` whose rejections are our JSON errors: 400 malformed, 413 too large,
/// 415 wrong content type, 422 a field with the wrong type or missing (named).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(value))) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection, limit)),
        }
    }
}

/// A body: a JSON object, as every body of the API is (serde alone would also take a struct
/// written as an array of its fields' values).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(Fields(PhantomData))
            .map(Object)
    }
}

/// A 422 naming the field serde's message names ("missing field `email` at line 1 column 2",
/// "unknown field `x`"); `body` when it names none (a value of the wrong type: serde_json
/// quotes the value, not the field).
fn invalid_field(detail: String) -> AppError {
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| detail.split_once(prefix))
        .and_then(|(_, rest)| rest.split('`').next());
    let field = named.unwrap_or("body").to_string();
    AppError::validation(field, detail)
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field, e.g. "missing field `email` at line 1 column 2".
            let detail = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            invalid_field(detail)
        }
        JsonRejection::JsonSyntaxError(e) => AppError::BadRequest {
            code: ErrorCode::InvalidJson,
            message: format!("the body is not valid JSON: {}", e.body_text()),
        },
        JsonRejection::MissingJsonContentType(_) => AppError::BadRequest {
            code: ErrorCode::UnsupportedMediaType,
            message: "send the body as JSON with Content-Type: application/json".into(),
        },
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge { limit }
        }
        other => AppError::BadRequest {
            code: ErrorCode::BadRequest,
            message: other.body_text(),
        },
    }
}

/// Parses an optional JSON body (empty or `null` means `None`), with the same errors as
/// [`ApiJson`].
pub fn parse_optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // `null` is no body too, as the description's optional bodies allow.
    let parsed = serde_json::from_slice::<Option<Object<T>>>(body);
    parsed.map(|o| o.map(|Object(value)| value)).map_err(|e| {
        if e.is_data() {
            invalid_field(e.to_string())
        } else {
            AppError::BadRequest {
                code: ErrorCode::InvalidJson,
                message: format!("the body is not valid JSON: {e}"),
            }
        }
    })
}

/// `Query<T>` whose rejections are 400/422 JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                // "Failed to deserialize query string: limit: invalid digit found in string", or
                // serde's "unknown field `x`".
                let detail = e.body_text();
                let path = detail
                    .split(": ")
                    .nth(1)
                    .filter(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                let field = path
                    .map(str::to_string)
                    .or_else(|| detail.split('`').nth(1).map(str::to_string))
                    .unwrap_or_else(|| "query".into());
                Err(AppError::validation(field, detail))
            }
            Err(other) => Err(AppError::BadRequest {
                code: ErrorCode::BadRequest,
                message: other.body_text(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        title: Option<String>,
        count: u32,
    }

    #[test]
    fn a_body_is_an_object_never_an_array_of_field_values() {
        let parsed: Option<Body> = parse_optional_json(br#"{"count": 2}"#).unwrap();
        assert_eq!(parsed.map(|b| (b.title, b.count)), Some((None, 2)));
        for empty in [&b""[..], b"  ", b"null"] {
            assert_eq!(parse_optional_json::<Body>(empty).unwrap(), None);
        }
        for not_an_object in [&br#"[null, 2]"#[..], b"[]", b"2", br#""x""#] {
            let e = parse_optional_json::<Body>(not_an_object).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ValidationFailed, "{e}");
            assert_eq!(e.body().error.field.as_deref(), Some("body"), "{e}");
        }
        let missing = parse_optional_json::<Body>(b"{}").unwrap_err();
        assert_eq!(missing.body().error.field.as_deref(), Some("count"));
        let unknown = parse_optional_json::<Body>(br#"{"count": 1, "x": 1}"#).unwrap_err();
        assert_eq!(unknown.body().error.field.as_deref(), Some("x"));
        let broken = parse_optional_json::<Body>(b"{").unwrap_err();
        assert_eq!(broken.code(), ErrorCode::InvalidJson);
    }
}
