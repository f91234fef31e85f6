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

pub mod body_schema;
pub mod forwarded;
pub mod params;
pub mod strict_json;
pub mod template;

/// The largest body keyway reads before forwarding it (to check it against a schema or to
/// read credential parameters): Pingora replays such a body from its retry buffer, which
/// holds this much.
pub const MAX_HELD_BODY_BYTES: u64 = 64 * 1024;

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

/// Framing and hop-by-hop header names that contain `-`: a client spelling one with `_` hopes
/// that a server behind keyway folds it back (request smuggling on a shared connection).
const FRAMING_HEADERS: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether a header name (lower case) is a framing or hop-by-hop header in disguise
/// (`Transfer_Encoding`): such a request is refused, never forwarded.
pub fn is_disguised_framing_header(name: &str) -> bool {
    name.contains('_')
        && FRAMING_HEADERS
            .iter()
            .any(|framing| same_header(name, framing))
}

/// Why a `Host` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHost;

/// The host a request names, as routes match it: the port and one trailing dot removed
/// (`Admin.Test.:8080` is `Admin.Test`; compared without case). Refuses anything that is not
/// an ASCII host name, an IPv4 address or a bracketed IPv6 address (no IDNA, no `%`, no `_`
/// tricks beyond what DNS names use, no empty labels).
pub fn route_host(value: &str) -> Result<&str, InvalidHost> {
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (literal, after) = rest.split_once(']').ok_or(InvalidHost)?;
            literal
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| InvalidHost)?;
            (&value[..literal.len() + 2], after.strip_prefix(':'))
        }
        None => match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        },
    };
    if port.is_some_and(|port| port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit())) {
        return Err(InvalidHost);
    }
    if host.starts_with('[') {
        return Ok(host);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(InvalidHost);
    }
    Ok(name)
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
    /// Percent-encoded bytes that are not valid UTF-8 (overlong forms such as `%C0%AE`).
    InvalidUtf8,
    /// A character that some servers fold into `/`, `\`, `.` or another ASCII character
    /// (full-width `%EF%BC%8F`, other compatibility and look-alike forms).
    CompatibilityForm,
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
    let mut encodes_non_ascii = false;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let decoded = decode_hex_pair(path.get(i + 1..i + 3))?;
                if is_dangerous_when_decoded(decoded) {
                    return Err(TargetRejection::DangerousEncoding);
                }
                encodes_non_ascii |= !decoded.is_ascii();
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
    if encodes_non_ascii {
        check_encoded_text(path)?;
    }
    Ok(())
}

/// The decoded path must be UTF-8 without control characters (the C1 controls `U+0080` to
/// `U+009F`, such as NEL, encoded in UTF-8: found by `make fuzz`) and without characters a
/// server could fold into ASCII.
fn check_encoded_text(path: &[u8]) -> Result<(), TargetRejection> {
    let decoded: Vec<u8> = percent_encoding::percent_decode(path).collect();
    let text = std::str::from_utf8(&decoded).map_err(|_| TargetRejection::InvalidUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(TargetRejection::DangerousEncoding);
    }
    if text.chars().any(folds_into_ascii) {
        return Err(TargetRejection::CompatibilityForm);
    }
    Ok(())
}

/// Whether a non-ASCII character is a compatibility form of ASCII (NFKC maps it to ASCII:
/// full-width and small forms, `․`, …) or a look-alike of a slash, backslash or dot that
/// normalisation leaves alone.
fn folds_into_ascii(c: char) -> bool {
    use unicode_normalization::UnicodeNormalization;
    const LOOK_ALIKES: [char; 8] = [
        '\u{2215}', // ∕ division slash
        '\u{2044}', // ⁄ fraction slash
        '\u{29F8}', // ⧸ big solidus
        '\u{2216}', // ∖ set minus
        '\u{29F5}', // ⧵ reverse solidus operator
        '\u{29F9}', // ⧹ big reverse solidus
        '\u{3002}', // 。 ideographic full stop
        '\u{FF61}', // ｡ half-width ideographic full stop
    ];
    if c.is_ascii() {
        return false;
    }
    LOOK_ALIKES.contains(&c) || std::iter::once(c).nfkc().any(|part| part.is_ascii())
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
            (b"/api/%C0%AE%C0%AE/admin", InvalidUtf8),
            (b"/api/%C0%AFadmin", InvalidUtf8),
            (b"/api/%E0%80%AF", InvalidUtf8),
            (b"/api/%C3", InvalidUtf8),
            (b"/api/%C2%85next", DangerousEncoding),
            (b"/%C2%88", DangerousEncoding),
            (b"/api%EF%BC%8Fadmin", CompatibilityForm),
            (b"/api/%EF%BC%8E%EF%BC%8E/admin", CompatibilityForm),
            (b"/api/%EF%BC%BCadmin", CompatibilityForm),
            (b"/api/%E2%88%95admin", CompatibilityForm),
            (b"/api/%EF%BC%A1", CompatibilityForm),
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
    fn hosts_match_without_port_trailing_dot_or_case_and_bad_ones_are_refused() {
        assert_eq!(route_host("admin.test"), Ok("admin.test"));
        assert_eq!(route_host("ADMIN.test.:8080"), Ok("ADMIN.test"));
        assert_eq!(route_host("admin.test."), Ok("admin.test"));
        assert_eq!(route_host("127.0.0.1:80"), Ok("127.0.0.1"));
        assert_eq!(route_host("[::1]:8080"), Ok("[::1]"));
        assert_eq!(route_host("[::1]"), Ok("[::1]"));
        for bad in [
            "",
            ".",
            "admin..test",
            ".admin.test",
            "admin.test..",
            "admin.test:",
            "admin.test:80x",
            "adm%69n.test",
            "admin.tést",
            "admin test",
            "[::1",
            "[not-v6]:80",
            "a:b:c",
        ] {
            assert_eq!(route_host(bad), Err(InvalidHost), "{bad:?}");
        }
    }

    #[test]
    fn framing_headers_in_disguise() {
        for disguised in [
            "transfer_encoding",
            "content_length",
            "keep_alive",
            "proxy_connection",
        ] {
            assert!(is_disguised_framing_header(disguised), "{disguised}");
        }
        for fine in [
            "transfer-encoding",
            "x_custom",
            "content-type",
            "x-request_id",
        ] {
            assert!(!is_disguised_framing_header(fine), "{fine}");
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
