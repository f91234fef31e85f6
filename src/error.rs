//! The one error type keyway answers with, its envelope, and the one place where every domain
//! error (a service's, an authenticator's, the store's) becomes an HTTP answer.
//!
//! Every error leaves as `{"error":{"requestId","code","message"}}` (the ASAPP envelope).
//! Messages are fixed per code: they never carry library error text, secrets, or whether an
//! account exists. Details belong in the log (written where the failure happens), not in the
//! body; nothing here logs.

use crate::converse::ConverseError;
use crate::exchange::ExchangeError;
use crate::hosted_email::HostedEmailError;
use crate::identity::AuthDenial;
use crate::store::StoreError;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use pingora::{ErrorSource, ErrorType};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Everything keyway can answer with instead of the upstream's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// 400-01: malformed or ambiguous request (path tricks, bad Host, bad framing).
    BadRequest,
    /// 400-02: a hosted-email `authtoken` that is missing, unknown, expired or used. The body
    /// also carries the seed's `HasErrors`/`Errors` sections (`ERROR_BAD_REQUEST`).
    InvalidAuthToken,
    /// 401-01: no acceptable credential, or one that does not verify.
    Unauthorized,
    /// 403-01: authenticated but not allowed.
    Forbidden,
    /// 404-01: no route.
    NotFound,
    /// 405-01: the route exists but not for this method.
    MethodNotAllowed { allow: HeaderValue },
    /// 408-01: the request head or body did not arrive in time.
    RequestTimeout,
    /// 413-01: request body over the route's `max_body_bytes`.
    PayloadTooLarge,
    /// 431-01: a request head larger than `server.max_header_bytes` or with more than
    /// `server.max_headers` headers.
    HeadersTooLarge,
    /// 422-01: well-formed JSON with a field of the wrong type or range.
    UnprocessableEntity,
    /// 429-01: too many failed attempts; try again after this many seconds.
    TooManyRequests { retry_after_seconds: u64 },
    /// 500-01: a bug or an unexpected internal failure.
    Internal,
    /// 502-01: the upstream refused, reset or spoke broken HTTP.
    BadGateway,
    /// 503-01: keyway or a dependency is not ready.
    ServiceUnavailable,
    /// 504-01: the upstream did not connect or answer in time.
    GatewayTimeout,
    /// `<status>-00`: an upstream error response whose body was not an envelope.
    Upstream(StatusCode),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest | GatewayError::InvalidAuthToken => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden => StatusCode::FORBIDDEN,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UnprocessableEntity => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::BadGateway => StatusCode::BAD_GATEWAY,
            GatewayError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Upstream(status) => *status,
        }
    }

    /// The catalogue code (`<status>-<NN>`), also the `code` label of the request metric.
    pub fn code(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            GatewayError::BadRequest => "400-01",
            GatewayError::InvalidAuthToken => "400-02",
            GatewayError::Unauthorized => "401-01",
            GatewayError::Forbidden => "403-01",
            GatewayError::NotFound => "404-01",
            GatewayError::MethodNotAllowed { .. } => "405-01",
            GatewayError::RequestTimeout => "408-01",
            GatewayError::HeadersTooLarge => "431-01",
            GatewayError::PayloadTooLarge => "413-01",
            GatewayError::UnprocessableEntity => "422-01",
            GatewayError::TooManyRequests { .. } => "429-01",
            GatewayError::Internal => "500-01",
            GatewayError::BadGateway => "502-01",
            GatewayError::ServiceUnavailable => "503-01",
            GatewayError::GatewayTimeout => "504-01",
            GatewayError::Upstream(status) => return Cow::Owned(format!("{}-00", status.as_u16())),
        })
    }

    /// The client-facing message; the seed's wording where the seed gives one.
    pub fn message(&self) -> &'static str {
        match self {
            GatewayError::BadRequest => "Bad request",
            GatewayError::InvalidAuthToken => {
                "Authentication token is invalid, missing or the user has already been authenticated"
            }
            GatewayError::Unauthorized => "Unauthorized",
            GatewayError::Forbidden => "Forbidden Response",
            GatewayError::NotFound => "Not Found",
            GatewayError::MethodNotAllowed { .. } => "Method Not Allowed",
            GatewayError::RequestTimeout => "Request Timeout",
            GatewayError::HeadersTooLarge => "Request Header Fields Too Large",
            GatewayError::PayloadTooLarge => "Payload Too Large",
            GatewayError::UnprocessableEntity => "Unprocessable Entity",
            GatewayError::TooManyRequests { .. } => "Too Many Requests",
            GatewayError::Internal => "Internal server error",
            GatewayError::BadGateway => "Bad Gateway",
            GatewayError::ServiceUnavailable => "Service Unavailable",
            GatewayError::GatewayTimeout => "Gateway Timeout",
            GatewayError::Upstream(status) => status.canonical_reason().unwrap_or("Upstream Error"),
        }
    }

    /// Extra response headers this error carries.
    pub fn extra_headers(&self) -> Option<(http::HeaderName, HeaderValue)> {
        match self {
            GatewayError::MethodNotAllowed { allow } => Some((http::header::ALLOW, allow.clone())),
            GatewayError::TooManyRequests {
                retry_after_seconds,
            } => Some((
                http::header::RETRY_AFTER,
                HeaderValue::from(*retry_after_seconds),
            )),
            _ => None,
        }
    }

    /// Classifies a Pingora failure. `None`: the client is gone, nothing can be answered.
    pub fn from_pingora(error: &pingora::Error) -> Option<GatewayError> {
        use ErrorType::*;
        let etype = error.etype();
        if let HTTPStatus(code) = etype {
            return Some(match StatusCode::from_u16(*code) {
                Ok(status) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                    GatewayError::PayloadTooLarge
                }
                Ok(status) if status.is_client_error() => GatewayError::BadRequest,
                _ => GatewayError::Internal,
            });
        }
        match error.esource() {
            ErrorSource::Upstream => Some(match etype {
                ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                    GatewayError::GatewayTimeout
                }
                _ => GatewayError::BadGateway,
            }),
            ErrorSource::Downstream => match etype {
                ReadError | WriteError | ConnectionClosed | WriteTimedout => None,
                ReadTimedout => Some(GatewayError::RequestTimeout),
                _ => Some(GatewayError::BadRequest),
            },
            ErrorSource::Internal | ErrorSource::Unset => Some(GatewayError::Internal),
        }
    }
}

/// A refused credential: unknown and invalid look alike; a dependency that is down is never
/// taken for "valid".
impl From<AuthDenial> for GatewayError {
    fn from(denial: AuthDenial) -> Self {
        match denial {
            AuthDenial::Invalid => GatewayError::Unauthorized,
            AuthDenial::Repeated => GatewayError::BadRequest,
            AuthDenial::Unavailable => GatewayError::ServiceUnavailable,
        }
    }
}

/// The store could not answer (logged by the store): 503, never "valid" nor "unknown".
impl From<StoreError> for GatewayError {
    fn from(_: StoreError) -> Self {
        GatewayError::ServiceUnavailable
    }
}

impl From<ConverseError> for GatewayError {
    fn from(error: ConverseError) -> Self {
        match error {
            ConverseError::WrongCredentials => GatewayError::Unauthorized,
            ConverseError::Locked {
                retry_after_seconds,
            } => GatewayError::TooManyRequests {
                retry_after_seconds,
            },
            ConverseError::UnknownToken => GatewayError::NotFound,
            ConverseError::NotAdmin => GatewayError::Forbidden,
            ConverseError::DirectoryUnavailable | ConverseError::Busy => {
                GatewayError::ServiceUnavailable
            }
            ConverseError::InvalidEmail => GatewayError::UnprocessableEntity,
            ConverseError::Store(error) => error.into(),
        }
    }
}

impl From<ExchangeError> for GatewayError {
    fn from(error: ExchangeError) -> Self {
        match error {
            ExchangeError::UnknownProvider => GatewayError::NotFound,
            ExchangeError::TokenRefused => GatewayError::Unauthorized,
            ExchangeError::KeysUnavailable => GatewayError::ServiceUnavailable,
            ExchangeError::NoRandomness => GatewayError::Internal,
            ExchangeError::Store(error) => error.into(),
        }
    }
}

/// The seed's rules: a bad `apiversion` is a bad request, an unknown passkey unauthorized, a
/// bad authtoken `ERROR_BAD_REQUEST` (400-02).
impl From<HostedEmailError> for GatewayError {
    fn from(error: HostedEmailError) -> Self {
        match error {
            HostedEmailError::BadApiVersion => GatewayError::BadRequest,
            HostedEmailError::UnknownPasskey => GatewayError::Unauthorized,
            HostedEmailError::InvalidRequest => GatewayError::UnprocessableEntity,
            HostedEmailError::RateLimited {
                retry_after_seconds,
            } => GatewayError::TooManyRequests {
                retry_after_seconds,
            },
            HostedEmailError::InvalidAuthToken => GatewayError::InvalidAuthToken,
            HostedEmailError::NotSent => GatewayError::ServiceUnavailable,
            HostedEmailError::Store(error) => error.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    error: EnvelopeBody<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeBody<'a> {
    request_id: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<Cow<'a, str>>,
    message: Cow<'a, str>,
}

/// The envelope plus the response sections of the hosted-email seed, for clients of that API.
#[derive(Serialize)]
struct EnvelopeWithSeedErrors<'a> {
    error: EnvelopeBody<'a>,
    #[serde(rename = "HasErrors")]
    has_errors: bool,
    #[serde(rename = "Errors")]
    errors: [SeedError<'a>; 1],
    #[serde(rename = "Form")]
    form: [(); 0],
    #[serde(rename = "Data")]
    data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct SeedError<'a> {
    #[serde(rename = "Code")]
    code: &'a str,
    #[serde(rename = "Message")]
    message: &'a str,
}

/// Renders the envelope body for `error` on request `request_id`.
pub fn render_envelope(request_id: &str, error: &GatewayError) -> Bytes {
    let body = EnvelopeBody {
        request_id: Cow::Borrowed(request_id),
        code: Some(error.code()),
        message: Cow::Borrowed(error.message()),
    };
    let rendered = match error {
        GatewayError::InvalidAuthToken => serde_json::to_vec(&EnvelopeWithSeedErrors {
            error: body,
            has_errors: true,
            errors: [SeedError {
                code: "ERROR_BAD_REQUEST",
                message: error.message(),
            }],
            form: [],
            data: serde_json::Map::new(),
        }),
        _ => serde_json::to_vec(&Envelope { error: body }),
    };
    Bytes::from(rendered.expect("the envelope always serialises"))
}

/// Whether an upstream body already is an envelope (and so passes through unchanged).
pub fn is_envelope(body: &[u8]) -> bool {
    serde_json::from_slice::<Envelope<'_>>(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let body = render_envelope("rid-1", &GatewayError::Unauthorized);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"error": {"requestId": "rid-1", "code": "401-01", "message": "Unauthorized"}})
        );
        assert!(is_envelope(&body));
    }

    #[test]
    fn an_invalid_authtoken_is_both_an_envelope_and_a_seed_error() {
        let body = render_envelope("rid-2", &GatewayError::InvalidAuthToken);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "400-02");
        assert_eq!(value["HasErrors"], true);
        assert_eq!(value["Errors"][0]["Code"], "ERROR_BAD_REQUEST");
        assert_eq!(value["Form"], serde_json::json!([]));
        assert_eq!(value["Data"], serde_json::json!({}));
        assert!(is_envelope(&body));
    }

    #[test]
    fn upstream_codes_use_00() {
        let error = GatewayError::Upstream(StatusCode::IM_A_TEAPOT);
        assert_eq!(error.code(), "418-00");
        assert_eq!(error.message(), "I'm a teapot");
    }

    #[test]
    fn envelope_detection() {
        assert!(is_envelope(br#"{"error":{"requestId":"x","message":"m"}}"#));
        assert!(!is_envelope(b"Internal Server Error"));
        assert!(!is_envelope(br#"{"error":"boom"}"#));
        assert!(!is_envelope(br#"{"error":{"message":"no request id"}}"#));
    }
}
