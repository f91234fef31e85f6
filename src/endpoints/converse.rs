//! The Converse token API (seed 001): exact shapes, validation before any hashing.

use super::{EndpointRequest, EndpointResponse, json_object, string_field};
use crate::config::ConverseSettings;
use crate::converse::{ConverseService, Lifetime, Login};
use crate::error::GatewayError;
use crate::http_policy::params::Parameters;
use http::StatusCode;
use serde_json::{Map, Value};

/// `POST {prefix}/verify[?createToken=true]` `{"email","password","timeout","autoRenew"}`.
pub(super) async fn verify_user(
    service: &ConverseService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, "/verify", service)?;
    let create_token = create_token_flag(request.query)?;
    let body = json_object(&request.body)?;
    let email = string_field(&body, "email")?;
    let password = string_field(&body, "password")?;
    let lifetime = lifetime_field(&body, service.settings())?;
    let auto_renew = match body.get("autoRenew") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(GatewayError::UnprocessableEntity),
    };
    let login = Login {
        email,
        password,
        lifetime,
        auto_renew,
        create_token,
        client_ip: request.client_ip,
    };
    Ok(match service.login(login).await? {
        Some(token) => EndpointResponse {
            status: StatusCode::OK,
            body: Some(serde_json::json!({ "token": token.hyphenated().to_string() })),
        },
        None => EndpointResponse::empty(StatusCode::OK),
    })
}

/// `POST {prefix}/token/verify` `{"token"}`: 200 valid, 403 not (never renews it).
pub(super) async fn verify_token(
    service: &ConverseService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, "/token/verify", service)?;
    let body = json_object(&request.body)?;
    let token = string_field(&body, "token")?;
    if service.is_valid(token).await? {
        Ok(EndpointResponse::empty(StatusCode::OK))
    } else {
        Err(GatewayError::Forbidden)
    }
}

/// `DELETE {prefix}/token/{uuid}`: 200 once deleted, 404 unknown (or not the caller's).
pub(super) async fn delete_token(
    service: &ConverseService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    let token_prefix = format!("{}/token/", service.settings().api_prefix);
    let token = request
        .path
        .strip_prefix(&token_prefix)
        .filter(|token| !token.contains('/'))
        .ok_or(GatewayError::NotFound)?;
    service.revoke(token, request.principal).await?;
    Ok(EndpointResponse::empty(StatusCode::OK))
}

/// `DELETE {prefix}/tokens?email=`: every token of that user revoked, on every instance;
/// admins only. Answers `{"revoked": N}`.
pub(super) async fn delete_user_tokens(
    service: &ConverseService,
    request: EndpointRequest<'_>,
) -> Result<EndpointResponse, GatewayError> {
    exact_path(&request, "/tokens", service)?;
    let email = Parameters::new(request.query, &[])
        .single("email")
        .map_err(|_| GatewayError::BadRequest)?
        .filter(|email| !email.trim().is_empty())
        .ok_or(GatewayError::UnprocessableEntity)?;
    let revoked = service.revoke_all(&email, request.principal).await?;
    Ok(EndpointResponse {
        status: StatusCode::OK,
        body: Some(serde_json::json!({ "revoked": revoked })),
    })
}

fn exact_path(
    request: &EndpointRequest<'_>,
    suffix: &str,
    service: &ConverseService,
) -> Result<(), GatewayError> {
    let expected = request
        .path
        .strip_prefix(service.settings().api_prefix.as_str());
    if expected == Some(suffix) {
        Ok(())
    } else {
        Err(GatewayError::NotFound)
    }
}

/// `createToken=true|false` in the query (absent: false); anything else, or the parameter
/// given twice, is a bad request.
fn create_token_flag(query: Option<&str>) -> Result<bool, GatewayError> {
    let flag = Parameters::new(query, &[])
        .single("createToken")
        .map_err(|_| GatewayError::BadRequest)?;
    match flag.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(GatewayError::BadRequest),
    }
}

/// `timeout`: an integer >= 1 (at most `max_timeout_seconds`) or -1; absent means the default.
/// `0`, `-2`, `1.5`, `"10"` and numbers beyond i64 are 422: they never wrap to "never".
fn lifetime_field(
    body: &Map<String, Value>,
    settings: &ConverseSettings,
) -> Result<Lifetime, GatewayError> {
    let seconds = match body.get("timeout") {
        None | Some(Value::Null) => settings.default_timeout_seconds,
        Some(Value::Number(number)) => number.as_i64().ok_or(GatewayError::UnprocessableEntity)?,
        Some(_) => return Err(GatewayError::UnprocessableEntity),
    };
    match seconds {
        -1 if settings.allow_non_expiring => Ok(Lifetime::Never),
        1.. if seconds <= settings.max_timeout_seconds => Ok(Lifetime::Seconds(seconds)),
        _ => Err(GatewayError::UnprocessableEntity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_token_flag_values() {
        assert_eq!(create_token_flag(None), Ok(false));
        assert_eq!(create_token_flag(Some("createToken=true")), Ok(true));
        assert_eq!(create_token_flag(Some("a=1&createToken=false")), Ok(false));
        assert_eq!(
            create_token_flag(Some("createToken=yes")),
            Err(GatewayError::BadRequest)
        );
        assert_eq!(
            create_token_flag(Some("createToken=true&createToken=false")),
            Err(GatewayError::BadRequest),
            "given twice: refused, not guessed"
        );
    }

    fn settings(allow_non_expiring: bool) -> ConverseSettings {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [upstreams.u]\naddresses = [\"127.0.0.1:1\"]\n\
             [[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"u\"\nauth = [\"none\"]\n\
             [converse]\ndefault_timeout_seconds = 60\nmax_timeout_seconds = 3600\n\
             allow_non_expiring = {allow_non_expiring}\n"
        );
        let settings =
            crate::config::Settings::from_toml(&text, std::path::Path::new("."), &|_| None)
                .unwrap_or_else(|problems| panic!("{problems:?}"));
        settings.converse.unwrap()
    }

    fn lifetime(json: &str, allow_non_expiring: bool) -> Result<Lifetime, GatewayError> {
        lifetime_field(
            &json_object(json.as_bytes()).unwrap(),
            &settings(allow_non_expiring),
        )
    }

    #[test]
    fn timeouts() {
        assert_eq!(lifetime("{}", true), Ok(Lifetime::Seconds(60)));
        assert_eq!(lifetime(r#"{"timeout":1}"#, true), Ok(Lifetime::Seconds(1)));
        assert_eq!(
            lifetime(r#"{"timeout":3600}"#, true),
            Ok(Lifetime::Seconds(3600))
        );
        assert_eq!(lifetime(r#"{"timeout":-1}"#, true), Ok(Lifetime::Never));
        assert_eq!(
            lifetime(r#"{"timeout":-1}"#, false),
            Err(GatewayError::UnprocessableEntity)
        );
        for bad in [
            "0",
            "-2",
            "1.5",
            "\"10\"",
            "9223372036854775808",
            "3601",
            "true",
            "-9223372036854775808",
        ] {
            assert_eq!(
                lifetime(&format!(r#"{{"timeout":{bad}}}"#), true),
                Err(GatewayError::UnprocessableEntity),
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert_eq!(json_object(b"{").unwrap_err(), GatewayError::BadRequest);
        assert_eq!(
            json_object(b"[1]").unwrap_err(),
            GatewayError::UnprocessableEntity
        );
        assert!(json_object(br#"{"email":"a"}"#).is_ok());
    }
}
