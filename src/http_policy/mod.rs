//! Wire rules keyway applies before anything else looks at a request: which request targets
//! are accepted, how header names compare, which headers keyway owns, and (in [`params`]) how a
//! query or form parameter is named and read. A leaf: plain bytes and `http` types only.
//!
//! keyway matches on exactly the bytes it forwards. Rather than normalising a path (and risking
//! that the upstream normalises it differently), any target whose meaning could change under
//! normalisation is refused with 400-01: dot segments, `//`, `;` parameters, backslashes,
//! control bytes, non-ASCII bytes, and percent-encodings of `/`, `\`, `%`, `;`, controls or
//! unreserved characters (`%2e`, `%61`, …). What remains decodes to the same segments it was
//! matched on, so a prefix route can be neither reached nor escaped by encoding tricks.

pub mod params;
pub mod strict_json;

/// Headers keyway must be able to set itself; a config may not claim them.
pub const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "x-request-id",
];

/// Lower case with `_` as `-`: the form under which two header names are "the same".
pub fn normalise_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Whether a header name (as `http` stores it: lower case) is `normalised` once `_` reads as
/// `-`. Allocation-free: it runs for every header of every request.
pub fn same_header(name: &str, normalised: &str) -> bool {
    name.len() == normalised.len()
        && name
            .bytes()
            .zip(normalised.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

/// Whether a request's body is `application/x-www-form-urlencoded`.
pub fn is_form_urlencoded(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Why a request target was refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRejection {
    /// Not origin-form (`/path?query`): absolute-form, authority-form or `*`.
    NotOriginForm,
    /// A byte that is not allowed unencoded (controls, space, `\`, non-ASCII, …).
    ForbiddenByte,
    /// `.` or `..` segment, or an empty segment (`//`).
    AmbiguousSegment,
    /// `;` path parameters, which some servers strip before routing.
    PathParameter,
    /// `%` not followed by two hex digits.
    MalformedEncoding,
    /// A percent-encoding that a server might decode into something that changes the match.
    DangerousEncoding,
}

/// Checks a raw request target and returns its path (the part before `?`).
pub fn check_request_target(target: &[u8]) -> Result<&str, TargetRejection> {
    if target.first() != Some(&b'/') {
        return Err(TargetRejection::NotOriginForm);
    }
    let path_len = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let (path, query) = target.split_at(path_len);
    check_path(path)?;
    if query.iter().any(|&b| !is_visible_ascii(b) || b == b'#') {
        return Err(TargetRejection::ForbiddenByte);
    }
    // Every byte was checked to be ASCII above.
    Ok(std::str::from_utf8(path).expect("checked ASCII"))
}

fn check_path(path: &[u8]) -> Result<(), TargetRejection> {
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let decoded = decode_hex_pair(path.get(i + 1..i + 3))?;
                if is_dangerous_when_decoded(decoded) {
                    return Err(TargetRejection::DangerousEncoding);
                }
                i += 3;
                continue;
            }
            b';' => return Err(TargetRejection::PathParameter),
            b if !is_path_byte(b) => return Err(TargetRejection::ForbiddenByte),
            _ => {}
        }
        i += 1;
    }
    let dot_segment = path.split(|&b| b == b'/').any(|s| s == b"." || s == b"..");
    if dot_segment || path.windows(2).any(|pair| pair == b"//") {
        return Err(TargetRejection::AmbiguousSegment);
    }
    Ok(())
}

fn decode_hex_pair(pair: Option<&[u8]>) -> Result<u8, TargetRejection> {
    let pair = pair.ok_or(TargetRejection::MalformedEncoding)?;
    let hex = |b: u8| {
        (b as char)
            .to_digit(16)
            .ok_or(TargetRejection::MalformedEncoding)
    };
    Ok((hex(pair[0])? * 16 + hex(pair[1])?) as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` without `%` (handled separately) and `;` (refused), plus `/`.
fn is_path_byte(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn is_visible_ascii(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

fn is_dangerous_when_decoded(b: u8) -> bool {
    is_unreserved(b)
        || b < 0x20
        || b == 0x7f
        || matches!(b, b'/' | b'\\' | b'%' | b';' | b'?' | b'#')
}

/// Checks a configured `path_prefix`: literal, canonical, starting with `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err("must start with \"/\"".to_owned());
    }
    if !prefix.bytes().all(|b| is_unreserved(b) || b == b'/') {
        return Err("may contain only letters, digits, \"-._~\" and \"/\"".to_owned());
    }
    let probe = if prefix.ends_with('/') && prefix.len() > 1 {
        format!("{prefix}x")
    } else {
        prefix.to_owned()
    };
    check_path(probe.as_bytes())
        .map_err(|_| "must not contain \".\" or \"..\" segments or \"//\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_targets() {
        assert_eq!(check_request_target(b"/api/x?a=1&b=%2F"), Ok("/api/x"));
        assert_eq!(check_request_target(b"/"), Ok("/"));
        assert_eq!(
            check_request_target(b"/api/caf%C3%A9/"),
            Ok("/api/caf%C3%A9/")
        );
        assert_eq!(check_request_target(b"/a/b.json"), Ok("/a/b.json"));
    }

    #[test]
    fn refuses_tricks() {
        use TargetRejection::*;
        let cases: &[(&[u8], TargetRejection)] = &[
            (b"/api/../admin", AmbiguousSegment),
            (b"/api/./x", AmbiguousSegment),
            (b"/api/..", AmbiguousSegment),
            (b"//admin", AmbiguousSegment),
            (b"/api//x", AmbiguousSegment),
            (b"/api/%2e%2e/admin", DangerousEncoding),
            (b"/api%2Fadmin", DangerousEncoding),
            (b"/%61dmin", DangerousEncoding),
            (b"/api/%252e", DangerousEncoding),
            (b"/api/%00", DangerousEncoding),
            (b"/api/%5c..", DangerousEncoding),
            (b"/api;x=1/", PathParameter),
            (b"/api\\..\\admin", ForbiddenByte),
            (b"/api/\x00", ForbiddenByte),
            (b"/api/\xc3\xa9", ForbiddenByte),
            (b"/api/%2", MalformedEncoding),
            (b"/api/%zz", MalformedEncoding),
            (b"http://evil/api", NotOriginForm),
            (b"*", NotOriginForm),
        ];
        for (target, expected) in cases {
            assert_eq!(
                check_request_target(target),
                Err(*expected),
                "{}",
                String::from_utf8_lossy(target)
            );
        }
    }

    #[test]
    fn same_header_reads_underscore_as_dash() {
        assert!(same_header("asapp_api_secret", "asapp-api-secret"));
        assert!(same_header("asapp-api-secret", "asapp-api-secret"));
        assert!(!same_header("asapp-api-secretx", "asapp-api-secret"));
        assert!(!same_header("asapp-api-id", "asapp-api-secret"));
    }

    #[test]
    fn prefix_validation() {
        assert!(validate_prefix("/api/").is_ok());
        assert!(validate_prefix("/").is_ok());
        assert!(validate_prefix("/api").is_ok());
        assert!(validate_prefix("api/").is_err());
        assert!(validate_prefix("/api/../x/").is_err());
        assert!(validate_prefix("/api//").is_err());
        assert!(validate_prefix("/a%2f/").is_err());
    }
}
