//! Built-in APIs that keyway answers itself (they are routes too, matched like any other).

mod converse;
mod exchange;
pub mod hosted_email;

use crate::auth::Principal;
use crate::converse::ConverseService;
use crate::error::GatewayError;
use crate::exchange::ExchangeService;
use crate::hosted_email::HostedEmailService;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// Which built-in API a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// `POST {api_prefix}/verify[?createToken=true]`
    ConverseVerifyUser,
    /// `POST {api_prefix}/token/verify`
    ConverseVerifyToken,
    /// `DELETE {api_prefix}/token/{uuid}`
    ConverseDeleteToken,
    /// `POST {exchange.api_prefix}/{customerId}[?providerId=N]`
    ExchangeAuthenticate,
    /// `POST /api/hostedauthentication`
    HostedEmailRequest,
    /// `POST /data/authenticateuser.json`
    HostedEmailAuthenticate,
}

/// A request to a built-in API, body already read (within the route's limit).
pub struct EndpointRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub principal: &'a Principal,
    pub client_ip: Option<IpAddr>,
}

/// Query, headers and body carry passwords, tokens and passkeys: `Debug` shows the route.
impl std::fmt::Debug for EndpointRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRequest")
            .field("method", self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A successful answer: status and an optional JSON body.
#[derive(Debug, PartialEq)]
pub struct EndpointResponse {
    pub status: StatusCode,
    pub body: Option<serde_json::Value>,
}

impl EndpointResponse {
    pub fn empty(status: StatusCode) -> Self {
        EndpointResponse { status, body: None }
    }
}

/// The services behind the built-in APIs; absent when not configured.
#[derive(Default, Clone)]
pub struct Endpoints {
    pub converse: Option<Arc<ConverseService>>,
    pub exchange: Option<Arc<ExchangeService>>,
    pub hosted_email: Option<Arc<HostedEmailService>>,
}

impl Endpoints {
    pub async fn serve(
        &self,
        kind: EndpointKind,
        request: EndpointRequest<'_>,
    ) -> Result<EndpointResponse, GatewayError> {
        match kind {
            EndpointKind::ConverseVerifyUser => {
                converse::verify_user(self.converse()?, request).await
            }
            EndpointKind::ConverseVerifyToken => {
                converse::verify_token(self.converse()?, request).await
            }
            EndpointKind::ConverseDeleteToken => {
                converse::delete_token(self.converse()?, request).await
            }
            EndpointKind::ExchangeAuthenticate => {
                exchange::authenticate(self.exchange()?, request).await
            }
            EndpointKind::HostedEmailRequest => {
                hosted_email::request_email(self.hosted_email()?, request).await
            }
            EndpointKind::HostedEmailAuthenticate => {
                hosted_email::authenticate_user(self.hosted_email()?, request).await
            }
        }
    }

    /// Config validation only creates endpoint routes for configured services.
    fn converse(&self) -> Result<&ConverseService, GatewayError> {
        self.converse.as_deref().ok_or(GatewayError::Internal)
    }

    fn exchange(&self) -> Result<&ExchangeService, GatewayError> {
        self.exchange.as_deref().ok_or(GatewayError::Internal)
    }

    fn hosted_email(&self) -> Result<&HostedEmailService, GatewayError> {
        self.hosted_email.as_deref().ok_or(GatewayError::Internal)
    }
}

/// Not JSON is 400; JSON that is not an object is 422.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(GatewayError::UnprocessableEntity),
        Err(_) => Err(GatewayError::BadRequest),
    }
}

pub(crate) fn string_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, GatewayError> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or(GatewayError::UnprocessableEntity)
}
