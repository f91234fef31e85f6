//! Hosted email authentication APIs (seed 002, exact shapes):
//!
//! - `POST /api/hostedauthentication?apiversion=…&passkey=…` `{"email","callbackUrl"}` -> 202;
//! - `POST /data/authenticateuser.json?apiversion=…&passkey=…&authtoken=…` (the parameters
//!   may also come as a form body) -> 200 with `Authentication.User`, the user token.

use super::{EndpointRequest, EndpointResponse, json_object, string_field};
use crate::error::GatewayError;
use crate::headers::is_form_urlencoded;
use crate::hosted_email::HostedEmailService;
use http::StatusCode;
use serde_json::{Value, json};

pub const REQUEST_EMAIL_PATH: &str = "/api/hostedauthentication";
pub const AUTHENTICATE_USER_PATH: &str = "/data/authenticateuser.json";

pub async fn request_email(
    service: &HostedEmailService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, REQUEST_EMAIL_PATH)?;
    let params = Params::of(&request)?;
    let client = service
        .clients()
        .admit(params.get("apiversion"), params.get("passkey"))?;
    let body = json_object(&request.body)?;
    let email = string_field(&body, "email")?;
    let callback_url = string_field(&body, "callbackUrl")?;
    service.request_email(client, email, callback_url).await?;
    Ok(EndpointResponse {
        status: StatusCode::ACCEPTED,
        body: Some(seed_sections()),
    })
}

pub async fn authenticate_user(
    service: &HostedEmailService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, AUTHENTICATE_USER_PATH)?;
    let params = Params::of(&request)?;
    let client = service
        .clients()
        .admit(params.get("apiversion"), params.get("passkey"))?;
    let authenticated = service
        .authenticate_user(client, params.get("authtoken"))
        .await?;
    let mut body = seed_sections();
    body["Authentication"] =
        json!({"User": authenticated.user_token, "Email": authenticated.email});
    Ok(EndpointResponse {
        status: StatusCode::OK,
        body: Some(body),
    })
}

/// The seed's response sections of a call without errors.
fn seed_sections() -> Value {
    json!({"HasErrors": false, "Errors": [], "Form": [], "Data": {}})
}

fn exact_path(request: &EndpointRequest<'_>, path: &str) -> Result<(), GatewayError> {
    if request.path == path {
        Ok(())
    } else {
        Err(GatewayError::NotFound)
    }
}

/// The call's parameters: the query, plus a form body when there is one. Names are matched
/// without regard to case (`PassKey` is `passkey`); a name given twice is refused (400-01)
/// rather than guessed at.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn of(request: &EndpointRequest<'_>) -> Result<Params, GatewayError> {
        let mut pairs = decode_pairs(request.query.unwrap_or("").as_bytes());
        if is_form_urlencoded(request.headers) {
            pairs.extend(decode_pairs(&request.body));
        }
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        if !pairs.iter().all(|(name, _)| seen.insert(name.as_str())) {
            return Err(GatewayError::BadRequest);
        }
        Ok(Params { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn decode_pairs(encoded: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded)
        .map(|(name, value)| (name.to_ascii_lowercase(), value.into_owned()))
        .collect()
}
