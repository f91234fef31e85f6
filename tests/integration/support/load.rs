//! A steady load on loopback: keep-alive connections (one client each), each sending one
//! request after another until told to stop, counting every answer that is not a 200.

use reqwest::blocking::{Client, RequestBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<(usize, Vec<String>)>>,
}

impl SteadyLoad {
    /// `connections` workers; `request(client, worker, n)` builds worker's `n`th request.
    pub fn start<F>(connections: usize, request: F) -> SteadyLoad
    where
        F: Fn(&Client, usize, usize) -> RequestBuilder + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let request = Arc::new(request);
        let workers = (0..connections)
            .map(|worker| {
                let (stop, request) = (stop.clone(), request.clone());
                std::thread::spawn(move || {
                    let client = Client::builder().pool_max_idle_per_host(1).build().unwrap();
                    let (mut sent, mut failed) = (0usize, Vec::new());
                    while !stop.load(Ordering::Acquire) {
                        match request(&client, worker, sent).send() {
                            Ok(response) if response.status() == 200 => {}
                            Ok(response) => failed.push(format!("status {}", response.status())),
                            Err(error) => failed.push(format!("error {error:?}")),
                        }
                        sent += 1;
                    }
                    (sent, failed)
                })
            })
            .collect();
        SteadyLoad { stop, workers }
    }

    /// Stops the load; asserts that no request failed and returns how many were sent.
    pub fn finish(self) -> usize {
        self.stop.store(true, Ordering::Release);
        let mut total = 0;
        for worker in self.workers {
            let (sent, failed) = worker.join().unwrap();
            assert!(failed.is_empty(), "failed requests: {failed:?}");
            total += sent;
        }
        total
    }
}
