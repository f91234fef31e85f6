//! Built-in APIs that keyway answers itself: each parses the request, calls its service and
//! shapes the answer. They are routes too, matched like any other; a route holds its
//! [`Endpoint`] with the service behind it, resolved when the runtime is built.

mod converse;
mod exchange;
mod hosted_email;

use crate::converse::ConverseService;
use crate::error::GatewayError;
use crate::exchange::ExchangeService;
use crate::hosted_email::HostedEmailService;
use crate::identity::{EndpointKind, Principal};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// A built-in API and the service that answers it.
#[derive(Debug, Clone)]
pub enum Endpoint {
    ConverseVerifyUser(Arc<ConverseService>),
    ConverseVerifyToken(Arc<ConverseService>),
    ConverseDeleteToken(Arc<ConverseService>),
    ConverseDeleteUserTokens(Arc<ConverseService>),
    ExchangeAuthenticate(Arc<ExchangeService>),
    HostedEmailRequest(Arc<HostedEmailService>),
    HostedEmailAuthenticate(Arc<HostedEmailService>),
}

/// The services the built-in APIs may use; absent when not configured.
#[derive(Default, Clone)]
pub struct EndpointServices {
    pub converse: Option<Arc<ConverseService>>,
    pub exchange: Option<Arc<ExchangeService>>,
    pub hosted_email: Option<Arc<HostedEmailService>>,
}

impl Endpoint {
    /// The endpoint `kind` with its service; `None` when that service is not configured.
    pub fn resolve(kind: EndpointKind, services: &EndpointServices) -> Option<Endpoint> {
        let converse = || services.converse.clone();
        let hosted_email = || services.hosted_email.clone();
        Some(match kind {
            EndpointKind::ConverseVerifyUser => Endpoint::ConverseVerifyUser(converse()?),
            EndpointKind::ConverseVerifyToken => Endpoint::ConverseVerifyToken(converse()?),
            EndpointKind::ConverseDeleteToken => Endpoint::ConverseDeleteToken(converse()?),
            EndpointKind::ConverseDeleteUserTokens => {
                Endpoint::ConverseDeleteUserTokens(converse()?)
            }
            EndpointKind::ExchangeAuthenticate => {
                Endpoint::ExchangeAuthenticate(services.exchange.clone()?)
            }
            EndpointKind::HostedEmailRequest => Endpoint::HostedEmailRequest(hosted_email()?),
            EndpointKind::HostedEmailAuthenticate => {
                Endpoint::HostedEmailAuthenticate(hosted_email()?)
            }
        })
    }

    pub async fn serve(
        &self,
        request: EndpointRequest<'_>,
    ) -> Result<EndpointResponse, GatewayError> {
        match self {
            Endpoint::ConverseVerifyUser(service) => converse::verify_user(service, request).await,
            Endpoint::ConverseVerifyToken(service) => {
                converse::verify_token(service, request).await
            }
            Endpoint::ConverseDeleteToken(service) => {
                converse::delete_token(service, request).await
            }
            Endpoint::ConverseDeleteUserTokens(service) => {
                converse::delete_user_tokens(service, request).await
            }
            Endpoint::ExchangeAuthenticate(service) => {
                exchange::authenticate(service, request).await
            }
            Endpoint::HostedEmailRequest(service) => {
                hosted_email::request_email(service, request).await
            }
            Endpoint::HostedEmailAuthenticate(service) => {
                hosted_email::authenticate_user(service, request).await
            }
        }
    }
}

/// A request to a built-in API, body already read (within the route's limit).
pub struct EndpointRequest<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub principal: &'a Principal,
    pub client_ip: Option<IpAddr>,
}

/// Query, headers and body carry passwords, tokens and passkeys: `Debug` shows the path.
impl std::fmt::Debug for EndpointRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRequest")
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

/// Not JSON is 400; JSON that is not an object is 422.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(GatewayError::UnprocessableEntity),
        Err(_) => Err(GatewayError::BadRequest),
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, GatewayError> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or(GatewayError::UnprocessableEntity)
}
