//! Hosted email authentication APIs (seed 002, exact shapes):
//!
//! - `POST /api/hostedauthentication?apiversion=…&passkey=…` `{"email","callbackUrl"}` -> 202;
//! - `POST /data/authenticateuser.json?apiversion=…&passkey=…&authtoken=…` (the parameters
//!   may also come as a form body) -> 200 with `Authentication.User`, the user token.

use super::{EndpointRequest, EndpointResponse, json_object, string_field};
use crate::error::GatewayError;
use crate::hosted_email::HostedEmailService;
use crate::http_policy::is_form_urlencoded;
use crate::http_policy::params::{Parameters, pairs};
use crate::identity::{
    AUTHTOKEN_PARAM, HOSTED_EMAIL_AUTHENTICATE_PATH, HOSTED_EMAIL_REQUEST_PATH, PASSKEY_PARAM,
};
use http::StatusCode;
use serde_json::{Value, json};

pub(super) async fn request_email(
    service: &HostedEmailService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, HOSTED_EMAIL_REQUEST_PATH)?;
    let params = Params::of(&request)?;
    let client = service.clients().admit(
        params.get("apiversion").as_deref(),
        params.get(PASSKEY_PARAM).as_deref(),
    )?;
    let body = json_object(&request.body)?;
    let email = string_field(&body, "email")?;
    let callback_url = string_field(&body, "callbackUrl")?;
    service.request_email(client, email, callback_url).await?;
    Ok(EndpointResponse {
        status: StatusCode::ACCEPTED,
        body: Some(seed_sections()),
    })
}

pub(super) async fn authenticate_user(
    service: &HostedEmailService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, HOSTED_EMAIL_AUTHENTICATE_PATH)?;
    let params = Params::of(&request)?;
    let client = service.clients().admit(
        params.get("apiversion").as_deref(),
        params.get(PASSKEY_PARAM).as_deref(),
    )?;
    let authenticated = service
        .authenticate_user(client, params.get(AUTHTOKEN_PARAM).as_deref())
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

/// The call's parameters: the query, plus a form body when there is one, read under the one
/// parameter rule (`PassKey` is `passkey`). A name given twice is refused (400-01) rather than
/// guessed at.
struct Params<'a> {
    query: Option<&'a str>,
    form: Vec<(String, String)>,
}

impl<'a> Params<'a> {
    fn of(request: &EndpointRequest<'a>) -> Result<Params<'a>, GatewayError> {
        let form = if is_form_urlencoded(request.headers) {
            pairs(&request.body)
        } else {
            Vec::new()
        };
        let params = Params {
            query: request.query,
            form,
        };
        if params.all().any_repeated() {
            return Err(GatewayError::BadRequest);
        }
        Ok(params)
    }

    fn all(&self) -> Parameters<'_> {
        Parameters::new(self.query, &self.form)
    }

    fn get(&self, name: &'static str) -> Option<String> {
        self.all()
            .single(name)
            .ok()
            .flatten()
            .map(|value| value.into_owned())
    }
}
