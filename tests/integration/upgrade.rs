//! Graceful binary upgrade with Pingora's listener hand-over: a `run --upgrade` process takes
//! the listening sockets from the running one, which (on SIGQUIT) stops accepting, drains and
//! exits 0, while clients keep sending.

use crate::support::converse::{USER, config, get_with, token_for, verify_token};
use crate::support::load::SteadyLoad;
use crate::support::{API_ROUTE, Backend, Keyway, StoreKind, TestStore};
use reqwest::blocking::Client;
use std::time::Duration;

fn free_port() -> u16 {
    crate::support::closed_port().port()
}

/// A converse config on fixed ports, with its PID file and upgrade socket in `shared`.
fn fixed_port_config(backend: &Backend, store: &TestStore, shared: &std::path::Path) -> String {
    let (proxy, admin) = (free_port(), free_port());
    let server = format!(
        "listen = [\"127.0.0.1:{proxy}\"]\npid_file = \"{}\"\nupgrade_sock = \"{}\"",
        shared.join("keyway.pid").display(),
        shared.join("upgrade.sock").display()
    );
    let text = config(backend.address, store, "") + API_ROUTE;
    text.replace("listen = [\"127.0.0.1:0\"]", &server).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{admin}\""),
    )
}

#[test]
fn three_upgrades_under_load_fail_no_request_and_keep_every_token() {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let shared = tempfile::tempdir().unwrap();
    let config = fixed_port_config(&backend, &store, shared.path());
    let mut running = Keyway::start(&config, &[]);
    let pid_file = shared.path().join("keyway.pid");
    let client = Client::new();
    let token = token_for(&client, &running, USER, -1, false);

    let load = {
        let (pass, chat) = (running.url("/api/x"), running.url("/api/chat/x"));
        let token = token.clone();
        SteadyLoad::start(64, move |client, worker, n| {
            if (worker + n) % 2 == 0 {
                client.get(&pass)
            } else {
                client.get(&chat).header("X-CONVERSE-TOKEN", &token)
            }
        })
    };

    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        let next_config = config.clone();
        let next =
            std::thread::spawn(move || Keyway::launch_with(&next_config, &[], &["--upgrade"]));
        // The new process waits on the upgrade socket; then the old one is asked to hand over.
        std::thread::sleep(Duration::from_millis(500));
        running.signal("QUIT");
        let next = next.join().unwrap();
        next.wait_ready();
        let status = running.wait_exit(Duration::from_secs(40));
        assert!(
            status.success(),
            "round {round}: the old process exited with {status}"
        );
        let logs = running.logs();
        assert!(logs.contains("drained; exiting"), "round {round}:\n{logs}");
        assert_eq!(
            crate::support::read_pid(&pid_file),
            Some(next.pid()),
            "round {round}: the PID file names the new process"
        );
        running = next;
        assert_eq!(
            verify_token(&client, &running, &token, &token).status(),
            200
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let total = load.finish();
    println!("{total} requests on 64 connections through 3 upgrades, none failed");
    assert!(total > 1000, "the load ran ({total} requests)");
    assert_eq!(
        get_with(&client, &running, "/api/chat/x", &token).status(),
        200
    );
}
