//! Fault injection under load: while a steady load runs, a fault proxy (or the dependency
//! itself) breaks the upstream, the JWKS server, SMTP, Redis or the SQLite filesystem for a
//! short while. For each fault: every answer is a 200 or an envelope with the code the fault
//! documents, no request outlives its timeouts, no acknowledged token is lost, keyway recovers
//! without a restart once the fault ends, and its memory returns to where it was. Each test
//! writes its rows of the README's fault table to `target/tmp/faults/`.

use crate::support::converse::{USER, config_on, verify_token};
use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::jose::{JwksServer, Reply, mint};
use crate::support::load::{RecordedLoad, Tally};
use crate::support::smtp::SmtpServer;
use crate::support::{Backend, Keyway, StoreKind, TestStore, redis::RedisServer};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Load before each fault, the fault itself, and load after recovery.
const BEFORE: Duration = Duration::from_millis(300);
const DURING: Duration = Duration::from_millis(800);
const AFTER: Duration = Duration::from_millis(300);
/// Recovery must come within this long after the fault ends.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// How much keyway's resident memory may grow over a whole test.
const MEMORY_SLACK_KIB: u64 = 8 * 1024;
/// mimalloc gives freed memory back to the OS at once, so resident memory shows live memory.
/// By default it keeps freed pages 10 ms for reuse and a thread that goes idle keeps them:
/// two readings then differed by whole argon2id buffers (19 MiB each, one per password check
/// thread), more than a leak of every faulted request would show.
const LIVE_MEMORY: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "0");

/// One fault of the table and what the load saw.
struct Row {
    component: &'static str,
    fault: &'static str,
    tally: Tally,
    /// Acknowledged tokens the store lost, where the load created any.
    lost: Option<usize>,
    recovery: Duration,
}

/// What a fault may do to the answers.
struct Expect {
    /// Envelope codes the fault may cause.
    codes: &'static [&'static str],
    /// Whether the fault must show (at least one of `codes`) or must not show at all.
    shows: bool,
    /// The slowest answer allowed.
    slowest: Duration,
}

/// The slowest answer allowed under any fault: each fault here meets a timeout of at most
/// 500 ms (and an upstream request may be retried once), with room for a loaded machine.
const SLOWEST: Duration = Duration::from_secs(3);

impl Expect {
    /// The fault must show, as some of `codes` and nothing else.
    fn shows(codes: &'static [&'static str]) -> Expect {
        Expect {
            codes,
            shows: true,
            slowest: SLOWEST,
        }
    }

    /// The fault must not show in any answer.
    fn hidden() -> Expect {
        Expect {
            codes: &[],
            shows: false,
            slowest: SLOWEST,
        }
    }
}

/// One fault at a time under one load: `inject`, wait, `clear`, then `probe` until it
/// succeeds (the recovery time). Asserts `expect` on what the load saw.
fn under_fault(
    load: RecordedLoad,
    inject: impl FnOnce(),
    clear: impl FnOnce(),
    probe: impl Fn() -> bool,
    expect: &Expect,
    (component, fault): (&'static str, &'static str),
) -> Row {
    std::thread::sleep(BEFORE);
    inject();
    std::thread::sleep(DURING);
    clear();
    let cleared = Instant::now();
    while !probe() {
        assert!(
            cleared.elapsed() < RECOVERY_LIMIT,
            "{component} {fault}: no recovery"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let recovery = cleared.elapsed();
    std::thread::sleep(AFTER);
    let tally = load.finish();
    check(&tally, expect, &format!("{component} {fault}"));
    Row {
        component,
        fault,
        tally,
        lost: None,
        recovery,
    }
}

/// [`under_fault`] with `fault` set on `proxy`, and cleared.
fn proxied_fault(
    load: RecordedLoad,
    proxy: &FaultProxy,
    fault: Fault,
    probe: impl Fn() -> bool,
    expect: &Expect,
    label: (&'static str, &'static str),
) -> Row {
    let (inject, clear) = (|| proxy.set(fault), || proxy.set(Fault::None));
    under_fault(load, inject, clear, probe, expect, label)
}

fn check(tally: &Tally, expect: &Expect, what: &str) {
    assert!(
        tally.transport_errors.is_empty(),
        "{what}: requests failed without an answer: {:?}",
        tally.transport_errors
    );
    for (code, count) in tally.errors() {
        assert!(
            expect.codes.contains(&code.as_str()),
            "{what}: {count} answers with {code}; allowed: {:?}",
            expect.codes
        );
    }
    let shown = tally.errors().next().is_some();
    assert_eq!(shown, expect.shows, "{what}: answers {:?}", tally.codes);
    assert!(tally.successes() > 0, "{what}: nothing succeeded");
    assert!(
        tally.slowest <= expect.slowest,
        "{what}: an answer took {:?}",
        tally.slowest
    );
}

/// keyway on `config`, with its allocator set to show live memory ([`LIVE_MEMORY`]).
fn start_keyway(config: &str, env: &[(&str, &str)]) -> Keyway {
    let env: Vec<(&str, &str)> = env.iter().copied().chain([LIVE_MEMORY]).collect();
    Keyway::start(config, &env)
}

/// keyway's resident set size in KiB.
fn resident_kib(keyway: &Keyway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", keyway.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Asserts memory came back, and writes the test's rows of the fault table.
fn report(name: &str, keyway: &Keyway, baseline_kib: u64, rows: &[Row]) {
    let end_kib = resident_kib(keyway);
    assert!(
        end_kib <= baseline_kib + MEMORY_SLACK_KIB,
        "{name}: resident memory {baseline_kib} KiB before the faults, {end_kib} KiB after"
    );
    let mut table = String::new();
    for row in rows {
        let errors: Vec<String> = row
            .tally
            .errors()
            .map(|(code, count)| format!("{count} × {code}"))
            .collect();
        let errors = if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        };
        table.push_str(&format!(
            "| {} | {} | {} | {errors} | {} | {} ms | {} ms | {} → {} MiB |\n",
            row.component,
            row.fault,
            row.tally.sent,
            row.lost.map_or("—".to_owned(), |lost| lost.to_string()),
            row.recovery.as_millis(),
            row.tally.slowest.as_millis(),
            baseline_kib / 1024,
            end_kib / 1024,
        ));
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.md")), &table).unwrap();
    println!("{table}");
}

/// Warms keyway up under `load` and returns its resident memory after.
fn warm_up(keyway: &Keyway, load: RecordedLoad) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    let tally = load.finish();
    assert!(
        tally.errors().next().is_none(),
        "warm-up: {:?}",
        tally.codes
    );
    resident_kib(keyway)
}

/// A fault to inject, by name.
type Injection<'a> = Box<dyn Fn() + 'a>;

fn upstream_config(proxy: std::net::SocketAddr, backend: std::net::SocketAddr) -> String {
    crate::support::config(
        backend,
        &format!(
            r#"
[upstreams.faulty]
addresses = ["{proxy}"]
connect_timeout_ms = 300
read_timeout_ms = 400

[[routes]]
name = "faulty"
path_prefix = "/api/"
upstream = "faulty"
auth = ["none"]
"#
        ),
    )
}

#[test]
fn upstream_resets_stalls_slowness_and_half_closes() {
    let backend = Backend::start();
    let proxy = FaultProxy::start(backend.address);
    let keyway = start_keyway(&upstream_config(proxy.address, backend.address), &[]);
    let url = keyway.url("/api/load");
    let load = || {
        let url = url.clone();
        RecordedLoad::start(3, move |client, _, _| client.get(&url))
    };
    let baseline = warm_up(&keyway, load());
    let probe_client = Client::new();
    let probe = || {
        probe_client
            .get(keyway.url("/api/probe"))
            .send()
            .is_ok_and(|response| response.status() == 200)
    };
    let faults = [
        ("reset", Fault::Reset, Expect::shows(&["502-01"])),
        (
            "stall past the read timeout",
            Fault::Stall,
            Expect::shows(&["504-01"]),
        ),
        (
            "slow (150 ms a chunk)",
            Fault::Slow(Duration::from_millis(150)),
            Expect::hidden(),
        ),
        ("half-close", Fault::HalfClose, Expect::shows(&["502-01"])),
    ];
    let rows: Vec<Row> = faults
        .into_iter()
        .map(|(name, fault, expect)| {
            proxied_fault(load(), &proxy, fault, probe, &expect, ("upstream", name))
        })
        .collect();
    report("upstream", &keyway, baseline, &rows);
}

#[test]
fn jwks_errors_garbage_resets_and_stalls_keep_known_keys_and_rotation_recovers() {
    // Five keys: the load signs with the first; each fault rotates in the next one.
    let keys: Vec<Value> = (0..5)
        .map(|n| json!({"kid": format!("k{n}"), "kty": "EC", "crv": "P-256"}))
        .collect();
    let tokens: Vec<Value> = (1..5)
        .map(|n| json!({"name": format!("t{n}"), "key": format!("k{n}"), "alg": "ES256", "claims": crate::jwt::claims(json!({}))}))
        .chain((0..6).map(|n| json!({"name": format!("load{n}"), "key": "k0", "alg": "ES256", "claims": crate::jwt::claims(json!({"sub": format!("user-{n}")}))})))
        .collect();
    let minted = mint(&json!({ "keys": keys, "tokens": tokens }));
    let published = |count: usize| {
        json!({"keys": minted.jwks["keys"].as_array().unwrap().iter().filter(|key| {
            key["kid"].as_str().unwrap()[1..].parse::<usize>().unwrap() < count
        }).collect::<Vec<_>>()})
    };
    let jwks = JwksServer::start(&published(1));
    let proxy = FaultProxy::start(jwks.address);
    let backend = Backend::start();
    let timing = "refresh_seconds = 1\nmin_refresh_seconds = 1\nrefetch_cooldown_seconds = 1\nfetch_timeout_ms = 300";
    let jwks_url = format!("http://{}/jwks.json", proxy.address);
    let keyway = start_keyway(
        &crate::jwt::jwt_config(backend.address, &jwks_url, timing),
        &[],
    );
    let load_tokens: Vec<String> = (0..6)
        .map(|n| minted.token(&format!("load{n}")).to_owned())
        .collect();
    let url = keyway.url("/api/chat/load");
    let load = || {
        let (url, tokens) = (url.clone(), load_tokens.clone());
        RecordedLoad::start(2, move |client, worker, n| {
            client
                .get(&url)
                .bearer_auth(&tokens[(worker + n) % tokens.len()])
        })
    };
    let baseline = warm_up(&keyway, load());
    let call = |token: &str| {
        Client::new()
            .get(keyway.url("/api/chat/rotated"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let reply = |status: u16, body: &str| Reply {
        status,
        body: body.to_owned(),
        cache_control: None,
    };
    let faults: Vec<(&str, Injection)> = vec![
        ("answers 500", Box::new(|| jwks.set(reply(500, "down")))),
        (
            "answers garbage",
            Box::new(|| jwks.set(reply(200, "<html>maintenance</html>"))),
        ),
        ("resets connections", Box::new(|| proxy.set(Fault::Reset))),
        (
            "stalls past fetch_timeout_ms",
            Box::new(|| proxy.set(Fault::Stall)),
        ),
    ];
    let expect = Expect::hidden();
    let rows: Vec<Row> = faults
        .into_iter()
        .enumerate()
        .map(|(index, (name, inject))| {
            let rotated = minted.token(&format!("t{}", index + 1)).to_owned();
            under_fault(
                load(),
                || {
                    inject();
                    // A key the provider rotated in while its JWKS is broken cannot be had.
                    std::thread::sleep(Duration::from_millis(1100));
                    assert_eq!(call(&rotated), 401, "{name}: a key nobody could fetch");
                },
                || {
                    proxy.set(Fault::None);
                    jwks.serve_keys(&published(index + 2));
                },
                || call(&rotated) == 200,
                &expect,
                ("JWKS", name),
            )
        })
        .collect();
    report("jwks", &keyway, baseline, &rows);
}

#[test]
fn smtp_refusal_stall_and_half_close_are_503_and_keep_no_authtoken() {
    use crate::hosted_email::{
        CALLBACK, ENV, OLD_KEY, PASSKEY_A, hosted_config, stored_authtokens,
    };
    let backend = Backend::start();
    let smtp = SmtpServer::start();
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", smtp.port).parse().unwrap());
    let store = TestStore::new(StoreKind::Sqlite);
    let delivery = format!(
        "smtp_url = \"smtp://{}\"\nsmtp_timeout_ms = 500",
        proxy.address
    );
    let generous = "emails_per_address_per_hour = 1000\nemails_per_client_per_minute = 100000";
    let config = hosted_config(&backend, &store, &delivery, generous, OLD_KEY);
    let keyway = start_keyway(&config, &ENV);
    let url = keyway.url(&format!(
        "/api/hostedauthentication?apiversion=5.4&passkey={PASSKEY_A}"
    ));
    let load = |round: usize| {
        let url = url.clone();
        RecordedLoad::start(2, move |client, worker, n| {
            let email = format!("r{round}-w{worker}-{n}@example.com");
            client
                .post(&url)
                .json(&json!({"email": email, "callbackUrl": CALLBACK}))
        })
    };
    let baseline = warm_up(&keyway, load(0));
    let kept_before = stored_authtokens(&store) as usize;
    let mailed_before = smtp.wait_for(kept_before).len();
    let probe = || {
        Client::new()
            .post(&url)
            .json(&json!({"email": "probe@example.com", "callbackUrl": CALLBACK}))
            .send()
            .is_ok_and(|response| response.status() == 202)
    };
    let faults = [
        ("refuses (reset)", Fault::Reset),
        ("stalls past smtp_timeout_ms", Fault::Stall),
        ("half-closes", Fault::HalfClose),
    ];
    let expect = Expect::shows(&["503-01"]);
    let rows: Vec<Row> = faults
        .into_iter()
        .enumerate()
        .map(|(round, (name, fault))| {
            proxied_fault(
                load(round + 1),
                &proxy,
                fault,
                probe,
                &expect,
                ("SMTP", name),
            )
        })
        .collect();
    // Every 202 stands for an authtoken keyway kept and an email the server took; no 503
    // left an authtoken behind. Each round's successful probe is one more 202.
    let answered = rows.len() + rows.iter().map(|row| row.tally.successes()).sum::<usize>();
    let kept = stored_authtokens(&store) as usize - kept_before;
    assert_eq!(
        kept, answered,
        "authtokens kept for the 202s, and only for them"
    );
    let mailed = smtp.wait_for(mailed_before + kept).len() - mailed_before;
    assert!(
        mailed >= kept,
        "{kept} authtokens kept, {mailed} emails received"
    );
    report("smtp", &keyway, baseline, &rows);
}

/// A load that creates converse tokens that never expire; the 200s' bodies hold them.
fn token_storm(keyway: &Keyway) -> RecordedLoad {
    let url = keyway.url("/api/user/verify?createToken=true");
    RecordedLoad::start(2, move |client, _, _| {
        client.post(&url).json(
            &json!({"email": USER, "password": crate::support::converse::PASSWORD, "timeout": -1}),
        )
    })
}

/// The tokens a storm was answered with.
fn tokens_of(tally: &Tally) -> Vec<String> {
    tally
        .ok_bodies
        .iter()
        .map(|body| {
            let answer: Value = serde_json::from_slice(body).unwrap();
            answer["token"].as_str().expect("a token").to_owned()
        })
        .collect()
}

/// Verifies every token; returns how many of them the store lost.
fn lost_tokens(keyway: &Keyway, tokens: &[String]) -> usize {
    let client = Client::new();
    let caller = &tokens[0];
    tokens
        .iter()
        .filter(|token| verify_token(&client, keyway, token, caller).status() != 200)
        .count()
}

/// One token creation, for the probe.
fn creates_a_token(keyway: &Keyway) -> bool {
    Client::new()
        .post(keyway.url("/api/user/verify?createToken=true"))
        .json(&json!({"email": USER, "password": crate::support::converse::PASSWORD}))
        .send()
        .is_ok_and(|response| response.status() == 200)
}

#[test]
fn redis_stalls_and_restarts_are_503_and_lose_no_acknowledged_token() {
    let backend = Backend::start();
    let mut redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.address().parse().unwrap());
    let store = format!(
        "[store]\nbackend = \"redis\"\nurl = \"redis://{}/\"\ntimeout_ms = 300\n",
        proxy.address
    );
    let keyway = start_keyway(&config_on(backend.address, &store, ""), &[]);
    let baseline = warm_up(&keyway, token_storm(&keyway));
    let expect = Expect::shows(&["503-01"]);
    let probe = || creates_a_token(&keyway);
    let stall = proxied_fault(
        token_storm(&keyway),
        &proxy,
        Fault::Stall,
        probe,
        &expect,
        ("Redis", "stalls past timeout_ms"),
    );
    let redis = std::cell::RefCell::new(&mut redis);
    let restart = under_fault(
        token_storm(&keyway),
        || redis.borrow_mut().kill(),
        || redis.borrow_mut().restart(),
        probe,
        &expect,
        ("Redis", "killed (-9), restarted on its AOF"),
    );
    let mut rows = [stall, restart];
    for row in &mut rows {
        let lost = lost_tokens(&keyway, &tokens_of(&row.tally));
        assert_eq!(lost, 0, "{}: acknowledged tokens lost", row.fault);
        row.lost = Some(lost);
    }
    report("redis", &keyway, baseline, &rows);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: &str) -> SmallFilesystem {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallFilesystem { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the filesystem to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while filler.write_all(&block).is_ok() {}
        while filler.write_all(&block[..512]).is_ok() {}
        while filler.write_all(&block[..1]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn sqlite_on_a_full_filesystem_is_503_and_loses_no_acknowledged_token() {
    let backend = Backend::start();
    let filesystem = SmallFilesystem::mount("8m");
    let store = format!(
        "[store]\npath = \"{}\"\n",
        filesystem.path().join("keyway.db").display()
    );
    let keyway = start_keyway(&config_on(backend.address, &store, ""), &[]);
    let baseline = warm_up(&keyway, token_storm(&keyway));
    let expect = Expect::shows(&["503-01"]);
    let mut row = under_fault(
        token_storm(&keyway),
        || filesystem.fill(),
        || filesystem.free(),
        || creates_a_token(&keyway),
        &expect,
        ("SQLite", "filesystem full"),
    );
    let lost = lost_tokens(&keyway, &tokens_of(&row.tally));
    assert_eq!(lost, 0, "acknowledged tokens lost");
    row.lost = Some(lost);
    report("sqlite", &keyway, baseline, &[row]);
}
