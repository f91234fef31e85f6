//! `POST {prefix}/{customerId}[?providerId=N]` `{"codeChallenge", "accessToken" | "idToken"}`
//! -> `{"userInfoId"}` (seed 003, exact shapes).

use super::{EndpointRequest, EndpointResponse, json_object, string_field};
use crate::error::GatewayError;
use crate::exchange::{ExchangeRequest, ExchangeService, pkce};
use crate::http_policy::params::Parameters;
use http::StatusCode;
use serde_json::Value;

pub(super) async fn authenticate(
    service: &ExchangeService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    let prefix = format!("{}/", service.settings().api_prefix);
    let customer_id = request
        .path
        .strip_prefix(&prefix)
        .filter(|customer| (1..=25).contains(&customer.len()) && !customer.contains('/'))
        .ok_or(GatewayError::NotFound)?;
    let provider_id = provider_id(request.query)?;
    let body = json_object(&request.body)?;
    let code_challenge = string_field(&body, "codeChallenge")?;
    if !pkce::is_valid_challenge(code_challenge) {
        return Err(GatewayError::UnprocessableEntity);
    }
    // Exactly one of accessToken and idToken.
    let token = match (body.get("accessToken"), body.get("idToken")) {
        (Some(Value::String(token)), None) | (None, Some(Value::String(token))) => token,
        _ => return Err(GatewayError::UnprocessableEntity),
    };
    let exchange = ExchangeRequest {
        customer_id,
        provider_id,
        code_challenge,
        token,
    };
    let user_info_id = service.exchange(exchange).await?;
    Ok(EndpointResponse {
        status: StatusCode::OK,
        body: Some(serde_json::json!({ "userInfoId": user_info_id })),
    })
}

/// `providerId=N` in the query: an integer, or absent; given twice, a bad request.
fn provider_id(query: Option<&str>) -> Result<Option<i64>, GatewayError> {
    let value = Parameters::new(query, &[])
        .single("providerId")
        .map_err(|_| GatewayError::BadRequest)?;
    value
        .map(|value| value.parse().map_err(|_| GatewayError::UnprocessableEntity))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_id_query() {
        assert_eq!(provider_id(None), Ok(None));
        assert_eq!(provider_id(Some("providerId=456")), Ok(Some(456)));
        assert_eq!(provider_id(Some("a=b&providerId=7")), Ok(Some(7)));
        assert_eq!(
            provider_id(Some("providerId=x")),
            Err(GatewayError::UnprocessableEntity)
        );
        assert_eq!(
            provider_id(Some("providerId=1&providerid=2")),
            Err(GatewayError::BadRequest)
        );
    }
}
