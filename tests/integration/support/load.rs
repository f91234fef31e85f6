//! Load on loopback: keep-alive connections (one client each), each sending one request after
//! another until told to stop. [`RecordedLoad`] tallies every answer by code (for tests that
//! inject faults); [`SteadyLoad`] asserts that every answer was a 200.

use reqwest::blocking::{Client, RequestBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub struct SteadyLoad(RecordedLoad);

impl SteadyLoad {
    /// `connections` workers; `request(client, worker, n)` builds worker's `n`th request.
    pub fn start<F>(connections: usize, request: F) -> SteadyLoad
    where
        F: Fn(&Client, usize, usize) -> RequestBuilder + Send + Sync + 'static,
    {
        SteadyLoad(RecordedLoad::start(connections, request))
    }

    /// Stops the load; asserts that every request was answered 200 and returns how many were
    /// sent.
    pub fn finish(self) -> usize {
        let tally = self.0.finish();
        let failed: Vec<_> = tally
            .codes
            .iter()
            .filter(|(code, _)| *code != "200")
            .collect();
        assert!(
            failed.is_empty() && tally.transport_errors.is_empty(),
            "failed requests: {failed:?} {:?}",
            tally.transport_errors
        );
        tally.sent
    }
}

/// What a [`RecordedLoad`] saw: every answer by code (the status of a 2xx, the envelope's code
/// of any other), the transport errors, the slowest answer, and the bodies of the 2xx.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub codes: std::collections::BTreeMap<String, usize>,
    pub transport_errors: Vec<String>,
    pub slowest: std::time::Duration,
    pub ok_bodies: Vec<bytes::Bytes>,
}

impl Tally {
    /// Answers that were not 2xx, by code.
    pub fn errors(&self) -> impl Iterator<Item = (&String, &usize)> {
        self.codes.iter().filter(|(code, _)| !code.starts_with('2'))
    }

    /// How many answers were 2xx.
    pub fn successes(&self) -> usize {
        self.ok_bodies.len()
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        for (code, count) in other.codes {
            *self.codes.entry(code).or_default() += count;
        }
        self.transport_errors.extend(other.transport_errors);
        self.slowest = self.slowest.max(other.slowest);
        self.ok_bodies.extend(other.ok_bodies);
    }

    fn record(
        &mut self,
        outcome: reqwest::Result<reqwest::blocking::Response>,
        took: std::time::Duration,
    ) {
        self.sent += 1;
        self.slowest = self.slowest.max(took);
        let response = match outcome {
            Ok(response) => response,
            Err(error) => return self.transport_errors.push(format!("{error:?}")),
        };
        let status = response.status().as_u16();
        let body = response.bytes().unwrap_or_default();
        let code = if (200..300).contains(&status) {
            self.ok_bodies.push(body);
            status.to_string()
        } else {
            envelope_code(&body).unwrap_or_else(|| format!("{status} without an envelope"))
        };
        *self.codes.entry(code).or_default() += 1;
    }
}

/// The `code` of an error envelope.
fn envelope_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value["error"]["code"].as_str()?.to_owned())
}

/// Like [`SteadyLoad`], but it records every answer instead of asserting success, for tests
/// that inject faults while it runs. Each request may take at most `REQUEST_LIMIT`.
pub struct RecordedLoad {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Tally>>,
}

/// A request still unanswered after this long counts as hung (a transport error).
const REQUEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

impl RecordedLoad {
    /// `connections` workers; `request(client, worker, n)` builds worker's `n`th request.
    pub fn start<F>(connections: usize, request: F) -> RecordedLoad
    where
        F: Fn(&Client, usize, usize) -> RequestBuilder + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let request = Arc::new(request);
        let workers = (0..connections)
            .map(|worker| {
                let (stop, request) = (stop.clone(), request.clone());
                std::thread::spawn(move || {
                    let client = Client::builder()
                        .pool_max_idle_per_host(1)
                        .timeout(REQUEST_LIMIT)
                        .build()
                        .unwrap();
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Acquire) {
                        let started = std::time::Instant::now();
                        let outcome = request(&client, worker, tally.sent).send();
                        tally.record(outcome, started.elapsed());
                    }
                    tally
                })
            })
            .collect();
        RecordedLoad { stop, workers }
    }

    /// Stops the load and returns what every worker saw.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Release);
        let mut total = Tally::default();
        for worker in self.workers {
            total.merge(worker.join().unwrap());
        }
        total
    }
}
