//! Built-in APIs that keyway answers itself (they are routes too, matched like any other).

mod converse;

use crate::auth::Principal;
use crate::converse::ConverseService;
use crate::error::GatewayError;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
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
}

/// A request to a built-in API, body already read (within the route's limit).
#[derive(Debug)]
pub struct EndpointRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub principal: &'a Principal,
    pub client_ip: Option<IpAddr>,
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
}

impl Endpoints {
    pub async fn serve(
        &self,
        kind: EndpointKind,
        request: EndpointRequest<'_>,
    ) -> Result<EndpointResponse, GatewayError> {
        let converse = self.converse.as_deref().ok_or(GatewayError::Internal)?;
        match kind {
            EndpointKind::ConverseVerifyUser => converse::verify_user(converse, request).await,
            EndpointKind::ConverseVerifyToken => converse::verify_token(converse, request).await,
            EndpointKind::ConverseDeleteToken => converse::delete_token(converse, request).await,
        }
    }
}
