//! An open-loop load generator for `bench/load.py`'s latency table: requests are scheduled at
//! a fixed rate whatever the server does (wrk, closed-loop, slows down with the server and so
//! hides queueing), and a request that waits for its connection (still busy with an earlier
//! one) has its latency measured from the moment it was due, not from when it was sent (the
//! coordinated-omission correction of wrk2 and oha). Each connection's requests are due at
//! `lane / rate`, `(lane + connections) / rate`, ….
//!
//!     cargo run --release --example open_loop -- URL RATE SECONDS CONNECTIONS ["Name: value" ...]
//!
//! Prints one JSON object: requests due and answered, non-2xx and failed requests, the achieved
//! rate and the p50/p99/p99.9 latency in microseconds.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

struct Plan {
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    rate: f64,
    total: u64,
    connections: u64,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    non_2xx: u64,
    failed: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, seconds, connections, headers @ ..] = args.as_slice() else {
        eprintln!("usage: open_loop URL RATE SECONDS CONNECTIONS [\"Name: value\" ...]");
        std::process::exit(2);
    };
    let url: hyper::Uri = url.parse().expect("a URL");
    let rate: f64 = rate.parse().expect("a rate");
    let seconds: f64 = seconds.parse().expect("seconds");
    let plan = Arc::new(Plan {
        host: url.authority().expect("host:port").to_string(),
        path: url.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        headers: headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect(),
        rate,
        total: (rate * seconds) as u64,
        connections: connections.parse().expect("connections"),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let tallies = runtime.block_on(run(plan.clone()));
    let elapsed = started.elapsed().as_secs_f64();
    report(&tallies, plan.total, elapsed);
}

async fn run(plan: Arc<Plan>) -> Vec<Tally> {
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = (0..plan.connections)
        .map(|lane| tokio::spawn(connection(plan.clone(), lane, start)))
        .collect();
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.unwrap());
    }
    tallies
}

/// One keep-alive connection sending requests `lane`, `lane + connections`, … each at its due
/// time (or at once, when the connection is still busy: the wait counts as latency).
async fn connection(plan: Arc<Plan>, lane: u64, start: tokio::time::Instant) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let mut index = lane;
    // When this connection finished its previous request.
    let mut free_at = start;
    while index < plan.total {
        let due = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(due).await;
        // Waiting for a busy connection is the server's doing and counts from `due`; the
        // timer waking late (1 ms granularity) is the generator's and does not count.
        let counted_from = if free_at > due {
            due
        } else {
            tokio::time::Instant::now()
        };
        if sender.is_none() {
            sender = connect(&plan.host).await;
        }
        let answered = match sender.as_mut() {
            Some(sender) => send(sender, &plan).await,
            None => None,
        };
        free_at = tokio::time::Instant::now();
        match answered {
            Some(status) => {
                tally
                    .latencies_us
                    .push((free_at - counted_from).as_micros() as u64);
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
            }
            None => {
                tally.failed += 1;
                sender = None;
            }
        }
        index += plan.connections;
    }
    tally
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(host: &str) -> Option<Sender> {
    let stream = TcpStream::connect(host).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// The response status once its whole body has arrived; `None` if the connection failed.
async fn send(sender: &mut Sender, plan: &Plan) -> Option<u16> {
    sender.ready().await.ok()?;
    let mut request = Request::get(plan.path.as_str()).header("host", plan.host.as_str());
    for (name, value) in &plan.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = sender
        .send_request(request.body(Empty::new()).ok()?)
        .await
        .ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

fn report(tallies: &[Tally], due: u64, elapsed: f64) {
    let mut latencies: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let rank = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies.get(rank - 1).copied().unwrap_or(0)
    };
    let answered = latencies.len();
    println!(
        "{{\"due\":{due},\"answered\":{answered},\"non_2xx\":{},\"failed\":{},\"achieved_rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
        tallies.iter().map(|t| t.non_2xx).sum::<u64>(),
        tallies.iter().map(|t| t.failed).sum::<u64>(),
        answered as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
    );
}
