//! The README's walk-through, run as written: its shell blocks with bash and curl against
//! keyway on the shipped `config.toml` and the demo backend of `make run` (`demo/backend.py`).

use crate::support::keyway::repository_file;
use crate::support::{Keyway, closed_port};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment `make run` gives keyway (the Makefile's demo values).
const MAKE_RUN_ENV: [(&str, &str); 4] = [
    ("ASAPP_API_ID", "demo-asapp-api-id"),
    ("ASAPP_API_SECRET", "demo-asapp-api-secret"),
    (
        "HOSTED_EMAIL_KEY",
        "ZGVtby1rZXktbm90LWZvci1wcm9kdWN0aW9uLTAwMDE=",
    ),
    ("HOSTED_EMAIL_PASSKEY", "demo-reviews-passkey-0001"),
];

/// `demo/backend.py` on a free loopback port, stopped (by its PID) when dropped.
struct DemoBackend {
    child: Child,
    address: SocketAddr,
}

impl DemoBackend {
    fn start() -> DemoBackend {
        let address = closed_port();
        let child = Command::new("python3")
            .arg(repository_file("demo/backend.py"))
            .arg(address.to_string())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "demo/backend.py did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        DemoBackend { child, address }
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ```sh blocks of the walk-through (from "With `make run` going" to the next heading).
fn walkthrough_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repository_file("README.md")).unwrap();
    let start = readme
        .find("With `make run` going")
        .expect("the walk-through");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap()];
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

/// Runs one block with bash (`set -euo pipefail`) in keyway's directory, where the shipped
/// config's relative paths (`data/outbox`) resolve; `localhost:8080` and `localhost:9090` are
/// keyway's listeners (the hosted-email callback URL stays as configured).
fn run_block(block: &str, keyway: &Keyway) -> String {
    const CALLBACK: &str = "http://localhost:8080/confirm";
    let script = block
        .replace(CALLBACK, "\u{0}")
        .replace("localhost:8080", &keyway.proxy.to_string())
        .replace("localhost:9090", &keyway.admin.to_string())
        .replace('\u{0}', CALLBACK);
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(keyway.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the block failed:\n{block}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The status codes of the `HTTP/1.1 NNN` lines `curl -si` printed, in order.
fn statuses(output: &str) -> Vec<u16> {
    // A body without a final newline runs into the next status line: search, not split.
    output
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, prefix)| {
            output
                .get(at + prefix.len()..at + prefix.len() + 3)?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn the_walkthrough_runs_against_the_shipped_config() {
    let demo = DemoBackend::start();
    let keyway = Keyway::start(&crate::support::shipped_config(demo.address), &MAKE_RUN_ENV);
    std::os::unix::fs::symlink(repository_file("demo"), keyway.dir().join("demo")).unwrap();
    let blocks = walkthrough_blocks();
    assert_eq!(blocks.len(), 4, "one block per seed");
    let outputs: Vec<String> = blocks
        .iter()
        .map(|block| run_block(block, &keyway))
        .collect();
    let seen = |index: usize| outputs[index].to_ascii_lowercase();

    // Converse: call, verify, delete, refused after delete, 405 off the catch-all's methods.
    assert_eq!(
        statuses(&outputs[0]),
        [200, 200, 200, 401, 405],
        "{}",
        outputs[0]
    );
    assert!(
        seen(0).contains(r#""x-auth-email": "admin@example.com""#),
        "{}",
        outputs[0]
    );
    assert!(
        !seen(0).contains("forged"),
        "a forged secret reached the backend"
    );
    // `grep -c` printed last (after a body without a final newline): its trailing digits.
    let last = outputs[0].trim_end();
    let digits = last.len() - last.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let metric_lines: u32 = last[last.len() - digits..].parse().unwrap();
    assert!(
        metric_lines > 10,
        "{metric_lines} keyway_ lines in /metrics"
    );

    // ASAPP: 204 for a valid body, 400 for the seed's example, the partner's pair exchanged.
    assert_eq!(
        statuses(&outputs[1]),
        [204, 400, 200, 401],
        "{}",
        outputs[1]
    );
    assert!(
        seen(1).contains(r#""asapp-api-id": "demo-asapp-api-id""#),
        "{}",
        outputs[1]
    );
    assert!(seen(1).contains(r#""asapp-api-secret": "demo-asapp-api-secret""#));
    assert!(seen(1).contains(r#""x-auth-client": "demo-partner""#));
    assert!(
        !seen(1).contains("demo-partner-secret"),
        "the partner's secret went upstream"
    );

    // Puzzel: the chat starts once with the identity of the minted token.
    assert_eq!(statuses(&outputs[2]), [200, 401], "{}", outputs[2]);
    assert!(
        seen(2).contains(r#""x-auth-sub": "alice""#),
        "{}",
        outputs[2]
    );
    assert!(
        !seen(2).contains("codeverifier"),
        "the verifier went upstream"
    );

    // Hosted email: the email is asked for, and the submission carries the user's identity.
    assert_eq!(statuses(&outputs[3]), [202, 200], "{}", outputs[3]);
    assert!(
        seen(3).contains(r#""x-auth-email": "you@example.com""#),
        "{}",
        outputs[3]
    );
    assert!(seen(3).contains(r#""x-auth-client": "reviews-demo""#));
}
