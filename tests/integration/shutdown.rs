//! SIGTERM: stop accepting, finish what is in flight, exit 0.

use crate::support::{API_ROUTE, Backend, Keyway, config};
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_a_slow_request_finish_and_exits_zero() {
    let backend = Backend::start();
    let mut keyway = Keyway::start(&config(backend.address, API_ROUTE), &[]);
    let url = keyway.url("/api/slow/1500");
    let in_flight = std::thread::spawn(move || {
        let response = reqwest::blocking::get(url).unwrap();
        (response.status().as_u16(), response.text().unwrap())
    });
    // Wait until the request is at the upstream, then ask keyway to stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while backend.received().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    keyway.signal("TERM");
    let (status, body) = in_flight.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "slow done"));
    let exit = keyway.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", keyway.logs());
}
