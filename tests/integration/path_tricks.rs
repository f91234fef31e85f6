//! Path tricks never reach a route they should not: refused, or matched exactly as forwarded.

use crate::support::{Backend, Keyway, config, envelope, raw_http};

/// Where a raw target may end up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 400 (or 404) and the upstream never sees it.
    Refused,
    /// 200 through this route, forwarded byte for byte as `forwarded`.
    Reaches(&'static str, &'static str),
}

const ROUTES: &str = r#"
[credentials.public]
"x-which" = "public"
[credentials.admin]
"x-which" = "admin"

[[routes]]
name = "public"
path_prefix = "/public/"
upstream = "backend"
auth = ["none"]
credentials = "public"

[[routes]]
name = "admin"
path_prefix = "/admin/"
upstream = "backend"
auth = ["none"]
credentials = "admin"
"#;

#[test]
fn path_tricks_table() {
    use Expect::*;
    let cases: &[(&[u8], Expect)] = &[
        (b"/public/ok", Reaches("public", "/public/ok")),
        (
            b"/public/caf%C3%A9?q=%2F..",
            Reaches("public", "/public/caf%C3%A9?q=%2F.."),
        ),
        (b"/admin/x", Reaches("admin", "/admin/x")),
        (b"/public/x#/../../admin/x", Reaches("public", "/public/x")),
        (b"/public/a b", Reaches("public", "/public/a%20b")),
        (b"/public/../admin/x", Refused),
        (b"/public/./x", Refused),
        (b"/public/..", Refused),
        (b"/public/%2e%2e/admin/x", Refused),
        (b"/public/%2E%2E/admin/x", Refused),
        (b"/public/.%2e/admin/x", Refused),
        (b"/public%2f..%2fadmin/x", Refused),
        (b"/public/..%2Fadmin/x", Refused),
        (b"/public/%252e%252e/admin/x", Refused),
        (b"/public/%5c..%5cadmin/x", Refused),
        (b"/public\\..\\admin/x", Refused),
        (b"//admin/x", Refused),
        (b"/public//admin/x", Refused),
        (b"/public/;/../admin/x", Refused),
        (b"/admin;jsessionid=1/x", Refused),
        (b"/public/x;.css", Refused),
        (b"/public/%00/x", Refused),
        (b"/public/\x00/x", Refused),
        (b"/%61dmin/x", Refused),
        (b"/public/%zz", Refused),
        (b"/public/\xc3\xa9", Refused),
        (b"/ADMIN/x", Refused),
        (b"/public", Refused),
        (b"http://gateway.test/admin/x", Refused),
        (b"*", Refused),
        // Overlong UTF-8 and compatibility forms of `.` and `/` (issue 12, finding 10).
        (b"/public/%C0%AE%C0%AE/admin/x", Refused),
        // A C1 control (NEL) encoded in UTF-8 (found by make fuzz).
        (b"/public/%C2%85admin/x", Refused),
        (b"/public/%C0%AFadmin/x", Refused),
        (b"/public/%E0%80%AF/x", Refused),
        (b"/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin/x", Refused),
        (b"/public%EF%BC%8F..%EF%BC%8Fadmin/x", Refused),
        (b"/public/%E2%88%95admin", Refused),
    ];
    let backend = Backend::start();
    let keyway = Keyway::start(&config(backend.address, ROUTES), &[]);
    for (target, expect) in cases {
        let label = String::from_utf8_lossy(target).to_string();
        let before = backend.received().len();
        let response = raw_http::get(keyway.proxy, target);
        let after = backend.received();
        match expect {
            Refused => {
                assert!(
                    matches!(response.status, 400 | 404),
                    "{label}: status {} {:?}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
                assert_eq!(
                    after.len(),
                    before,
                    "{label} reached the upstream: {:?}",
                    after.last()
                );
                if response.status == 400 && !response.body.is_empty() {
                    assert_eq!(envelope(&response.body).1, "400-01", "{label}");
                }
            }
            Reaches(route, forwarded) => {
                assert_eq!(response.status, 200, "{label}: {response:?}");
                assert_eq!(after.len(), before + 1, "{label}");
                let seen = after.last().unwrap();
                assert_eq!(seen.target, *forwarded, "{label}");
                assert_eq!(seen.values("x-which"), vec![route.to_string()], "{label}");
            }
        }
    }
}
