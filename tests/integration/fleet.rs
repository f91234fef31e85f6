//! A fleet: several keyway processes on one real Redis (standalone or under real Sentinels).
//! What one instance writes, every instance honours: tokens, revocations (within 100 ms,
//! measured), single-use redemptions (one winner) and the shared counters; a Redis that stops,
//! dies or fails over is a `503-01` for as long as it lasts, never a hang or a stale "valid".

use crate::support::converse::{
    ADMIN, PASSWORD, USER, config, delete_token, get_with, login, token_for, verify_token,
};
use crate::support::redis::RedisServer;
use crate::support::{Backend, Keyway, StoreKind, TestStore, envelope, metric, race_posts};
use reqwest::blocking::{Client, Response};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Instances of one converse config on one Redis.
struct Fleet {
    _backend: Backend,
    store: TestStore,
    instances: Vec<Keyway>,
}

fn converse_fleet(count: usize, converse_extra: &str, store_extra: &str) -> Fleet {
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Redis);
    let text = config(backend.address, &store, converse_extra)
        .replace(&store.section(), &store.section_with(store_extra));
    let instances = (0..count).map(|_| Keyway::start(&text, &[])).collect();
    Fleet {
        _backend: backend,
        store,
        instances,
    }
}

impl Fleet {
    fn redis(&self) -> &RedisServer {
        self.store.redis.as_ref().expect("a redis store")
    }

    /// The Redis keys of converse tokens now.
    fn token_keys(&self) -> BTreeSet<String> {
        let keys: Vec<String> = self.redis().command(&["KEYS", "kw:rec:converse_token:*"]);
        keys.into_iter().collect()
    }

    /// A fresh token of `USER` made on instance 0, and its Redis key.
    fn new_token(&self, client: &Client) -> (String, String) {
        let before = self.token_keys();
        let token = token_for(client, &self.instances[0], USER, 600, false);
        let mut created: Vec<String> = self.token_keys().difference(&before).cloned().collect();
        assert_eq!(created.len(), 1, "one record per token");
        (token, created.remove(0))
    }
}

fn chat(client: &Client, keyway: &Keyway, token: &str) -> u16 {
    get_with(client, keyway, "/api/chat/x", token)
        .status()
        .as_u16()
}

const CONVERSE_HITS: &str = r#"keyway_cache_requests_total{cache="converse_token",result="hit"}"#;

/// Uses `token` (made on A) on `watcher` until the watcher answers it from its cache, so that a
/// refusal afterwards can only come from an invalidation. The first use fills the cache; a fill
/// is dropped when an invalidation of another token arrives during it (the cache's rule), so a
/// few more uses are allowed.
fn served_from_cache(client: &Client, watcher: &Keyway, token: &str) {
    for _ in 0..5 {
        let hits = metric(watcher, CONVERSE_HITS);
        assert_eq!(
            chat(client, watcher, token),
            200,
            "made on A, valid on B, C"
        );
        if metric(watcher, CONVERSE_HITS) > hits {
            return;
        }
    }
    panic!("five uses of a valid token and none answered from the watcher's cache");
}

/// How long after now each of `watchers` first refuses `token` (polled; bounded at 2 s).
fn refusal_delays(client: &Client, watchers: &[Keyway], token: &str) -> Vec<Duration> {
    let started = Instant::now();
    let mut delays: Vec<Option<Duration>> = vec![None; watchers.len()];
    while delays.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(2) {
        for (watcher, delay) in watchers.iter().zip(delays.iter_mut()) {
            if delay.is_none() && chat(client, watcher, token) == 401 {
                *delay = Some(started.elapsed());
            }
        }
    }
    delays
        .into_iter()
        .map(|delay| delay.expect("a revoked token was still accepted after 2 s"))
        .collect()
}

/// The `q` quantile of `samples` (nearest rank).
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// How a token stops being valid in a revocation trial.
#[derive(Clone, Copy, Debug)]
enum Revocation {
    DeleteOnFirstInstance,
    LogOutEverywhereOnFirstInstance,
    DelInRedis,
}

const TRIALS: usize = 30;

#[test]
fn revocations_reach_every_instance_within_100_ms() {
    let fleet = converse_fleet(3, "", "");
    let client = Client::new();
    let admin = token_for(&client, &fleet.instances[0], ADMIN, 600, false);
    let watchers = &fleet.instances[1..];
    for revocation in [
        Revocation::DeleteOnFirstInstance,
        Revocation::LogOutEverywhereOnFirstInstance,
        Revocation::DelInRedis,
    ] {
        let mut delays = Vec::new();
        for _ in 0..TRIALS {
            let (token, redis_key) = fleet.new_token(&client);
            for watcher in watchers {
                served_from_cache(&client, watcher, &token);
            }
            revoke(&fleet, &client, revocation, &token, &admin, &redis_key);
            delays.extend(refusal_delays(&client, watchers, &token));
        }
        let (p50, p99) = (quantile(&mut delays, 0.5), quantile(&mut delays, 0.99));
        println!(
            "{revocation:?}: refused by the other instances after p50 {:.2} ms, p99 {:.2} ms \
             ({} samples)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            delays.len()
        );
        assert!(
            p99 <= Duration::from_millis(100),
            "{revocation:?}: p99 {p99:?}"
        );
    }
    for watcher in watchers {
        let hits = metric(watcher, CONVERSE_HITS);
        assert!(
            hits >= (3 * TRIALS) as f64,
            "the watchers answered from their caches"
        );
        let heard = metric(
            watcher,
            r#"keyway_cache_invalidations_total{reason="remote"}"#,
        );
        assert!(
            heard >= (3 * TRIALS) as f64,
            "each revocation was pushed: {heard}"
        );
    }
}

fn revoke(
    fleet: &Fleet,
    client: &Client,
    revocation: Revocation,
    token: &str,
    admin: &str,
    redis_key: &str,
) {
    let first = &fleet.instances[0];
    match revocation {
        Revocation::DeleteOnFirstInstance => {
            assert_eq!(delete_token(client, first, token, token).status(), 200);
        }
        Revocation::LogOutEverywhereOnFirstInstance => {
            let url = first.url(&format!("/api/user/tokens?email={USER}"));
            let response = client
                .delete(url)
                .header("X-CONVERSE-TOKEN", admin)
                .send()
                .unwrap();
            assert_eq!(
                response.json::<serde_json::Value>().unwrap(),
                json!({"revoked": 1})
            );
        }
        Revocation::DelInRedis => {
            let removed: i64 = fleet.redis().command(&["DEL", redis_key]);
            assert_eq!(removed, 1);
        }
    }
}

#[test]
fn pubsub_invalidation_also_reaches_every_instance() {
    let fleet = converse_fleet(2, "", "invalidation = \"pubsub\"");
    let client = Client::new();
    let mut delays = Vec::new();
    for _ in 0..10 {
        let (token, _) = fleet.new_token(&client);
        assert_eq!(chat(&client, &fleet.instances[1], &token), 200);
        assert_eq!(chat(&client, &fleet.instances[1], &token), 200);
        assert_eq!(
            delete_token(&client, &fleet.instances[0], &token, &token).status(),
            200
        );
        delays.extend(refusal_delays(&client, &fleet.instances[1..], &token));
    }
    let p99 = quantile(&mut delays, 0.99);
    assert!(p99 <= Duration::from_millis(100), "p99 {p99:?}");
    let heard = metric(
        &fleet.instances[1],
        r#"keyway_cache_invalidations_total{reason="remote"}"#,
    );
    assert!(heard >= 10.0, "published invalidations were heard: {heard}");
}

#[test]
fn login_failures_spread_over_three_instances_lock_at_the_same_count_as_on_one() {
    let fleet = converse_fleet(
        3,
        "[converse.lockout]\nmax_failures = 3\nip_max_failures = 5\nbase_seconds = 30",
        "",
    );
    let client = Client::new();
    let wrong = json!({"email": USER, "password": "guess"});
    for keyway in &fleet.instances {
        assert_eq!(login(&client, keyway, &wrong).status(), 401);
    }
    for keyway in &fleet.instances {
        let locked = login(&client, keyway, &wrong);
        assert_eq!(locked.status(), 429, "the 4th failure anywhere is locked");
        assert_eq!(envelope(&locked.bytes().unwrap()).1, "429-01");
    }
    // The client's own count (5) is shared too: two more accounts, on two instances.
    for (n, keyway) in fleet.instances[..2].iter().enumerate() {
        let other = json!({"email": format!("nobody{n}@example.com"), "password": "guess"});
        assert_eq!(login(&client, keyway, &other).status(), 401);
    }
    let right = json!({"email": ADMIN, "password": PASSWORD});
    assert_eq!(
        login(&client, &fleet.instances[2], &right).status(),
        429,
        "the client is locked fleet-wide"
    );
}

#[test]
fn one_user_info_id_redeemed_on_two_instances_has_exactly_one_winner() {
    use crate::exchange::{VERIFIER, exchange_config, start_on, user_info_id};
    let setup = start_on(StoreKind::Redis);
    let second = Keyway::start(
        &exchange_config(&setup.backend, &setup.jwks, &setup.store),
        &[],
    );
    for round in 0..10 {
        let id = user_info_id(&setup, &setup.tokens["ES256"]);
        let path =
            format!("/api/conversation/c{round}/route/q?userInfoId={id}&codeVerifier={VERIFIER}");
        let statuses = race_posts(&[setup.keyway.url(&path), second.url(&path)]);
        assert_eq!(statuses, vec![200, 401], "round {round}");
    }
}

#[test]
fn one_hosted_email_authtoken_redeemed_on_two_instances_has_exactly_one_winner() {
    use crate::hosted_email::{
        CALLBACK, ENV, OLD_KEY, PASSKEY_A, hosted_config, link_authtoken, request_email,
    };
    let (backend, smtp) = (Backend::start(), crate::support::smtp::SmtpServer::start());
    let store = TestStore::new(StoreKind::Redis);
    let delivery = format!("smtp_url = \"{}\"", smtp.url());
    let text = hosted_config(
        &backend,
        &store,
        &delivery,
        "emails_per_address_per_hour = 2",
        OLD_KEY,
    );
    let fleet: Vec<Keyway> = (0..3).map(|_| Keyway::start(&text, &ENV)).collect();
    let query = format!("?apiversion=5.4&passkey={PASSKEY_A}");
    for round in 0..10 {
        let body = json!({"email": format!("r{round}@example.com"), "callbackUrl": CALLBACK});
        assert_eq!(request_email(&fleet[0], &query, &body).status(), 202);
        let mails = smtp.wait_for(round + 1);
        let authtoken = link_authtoken(&mails[round].text, &format!("{CALLBACK}?authtoken="));
        let path = format!("/data/authenticateuser.json{query}&authtoken={authtoken}");
        let statuses = race_posts(&[fleet[1].url(&path), fleet[2].url(&path)]);
        assert_eq!(statuses, vec![200, 400], "round {round}");
    }
    // The email limit (2 per address per hour) is one count for the fleet.
    let body = json!({"email": "limit@example.com", "callbackUrl": CALLBACK});
    assert_eq!(request_email(&fleet[0], &query, &body).status(), 202);
    assert_eq!(request_email(&fleet[1], &query, &body).status(), 202);
    let third = request_email(&fleet[2], &query, &body);
    assert_eq!(third.status(), 429, "the third email anywhere is refused");
    assert_eq!(envelope(&third.bytes().unwrap()).1, "429-01");
}

/// Repeats `call` until `done(answer)` (bounded); every call must answer within `each`.
fn until<T>(
    what: &str,
    within: Duration,
    each: Duration,
    call: impl Fn() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let started = Instant::now();
    loop {
        let asked = Instant::now();
        let answer = call();
        assert!(
            asked.elapsed() <= each,
            "{what}: one call took {:?}",
            asked.elapsed()
        );
        if done(&answer) {
            return answer;
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/readyz`'s status; 0 while the admin listener is not accepting yet.
fn ready(keyway: &Keyway) -> u16 {
    reqwest::blocking::get(keyway.admin_url("/readyz"))
        .map_or(0, |response| response.status().as_u16())
}

/// What a request with `token` answered: status and envelope code, if any.
fn answer(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = response.bytes().unwrap();
    let code = if status == 200 {
        String::new()
    } else {
        envelope(&bytes).1
    };
    (status, code)
}

/// The slowest a request may be while Redis is away: `timeout_ms` (200) plus a margin for a
/// debug build on a shared machine.
const BOUNDED: Duration = Duration::from_millis(200 + 400);

#[test]
fn a_stopped_or_killed_redis_is_503_at_once_and_recovery_needs_no_restart() {
    // The bound under test: every store call within 200 ms.
    let mut fleet = converse_fleet(1, "", "timeout_ms = 200");
    let keyway = &fleet.instances[0];
    let client = Client::new();
    let (token, _) = fleet.new_token(&client);
    assert_eq!(chat(&client, keyway, &token), 200);
    assert_eq!(metric(keyway, "keyway_cache_trusted"), 1.0);

    fleet.redis().signal("STOP");
    let stopped = Instant::now();
    let refused = until(
        "a cached token refused while redis is stopped",
        Duration::from_secs(3),
        BOUNDED,
        || answer(get_with(&client, keyway, "/api/chat/x", &token)),
        |(status, _)| *status != 200,
    );
    assert_eq!(
        refused,
        (503, "503-01".to_owned()),
        "never a 401 that logs users out"
    );
    println!("cache distrusted {:?} after SIGSTOP", stopped.elapsed());
    assert_eq!(ready(keyway), 503);
    assert_eq!(metric(keyway, "keyway_cache_trusted"), 0.0);
    let started = Instant::now();
    let body = json!({"email": USER, "password": PASSWORD});
    let login_answer = answer(login(&client, keyway, &body));
    assert_eq!(login_answer, (503, "503-01".to_owned()));
    assert!(
        started.elapsed() <= BOUNDED,
        "login took {:?}",
        started.elapsed()
    );

    fleet.redis().signal("CONT");
    until(
        "recovery after SIGCONT",
        Duration::from_secs(5),
        BOUNDED,
        || chat(&client, keyway, &token),
        |status| *status == 200,
    );
    until(
        "ready again",
        Duration::from_secs(5),
        BOUNDED,
        || ready(keyway),
        |s| *s == 200,
    );

    let redis = fleet.store.redis.as_mut().unwrap();
    redis.kill();
    let keyway = &fleet.instances[0];
    until(
        "503 while redis is dead",
        Duration::from_secs(3),
        BOUNDED,
        || answer(get_with(&client, keyway, "/api/chat/x", &token)),
        |(status, code)| *status == 503 && code == "503-01",
    );
    fleet.store.redis.as_mut().unwrap().restart();
    let keyway = &fleet.instances[0];
    until(
        "the acknowledged token valid again after redis restarted on its append-only file",
        Duration::from_secs(10),
        BOUNDED,
        || chat(&client, keyway, &token),
        |status| *status == 200,
    );
    assert_eq!(ready(keyway), 200);
}

#[test]
fn a_killed_invalidation_connection_drops_the_caches_and_deletes_meanwhile_are_enforced() {
    let fleet = converse_fleet(1, "", "");
    let keyway = &fleet.instances[0];
    let client = Client::new();
    let (token, redis_key) = fleet.new_token(&client);
    assert_eq!(chat(&client, keyway, &token), 200);
    assert_eq!(chat(&client, keyway, &token), 200);
    let dropped = r#"keyway_cache_invalidations_total{reason="untrusted"}"#;
    let before = metric(keyway, dropped);

    // The tracking connection is killed and, in the same breath, the record deleted: nobody
    // is left to be told.
    let clients: String = fleet.redis().command(&["CLIENT", "LIST"]);
    let tracking = clients
        .lines()
        .find(|line| {
            line.split(' ')
                .any(|field| field.starts_with("flags=") && field.contains('t'))
        })
        .unwrap_or_else(|| panic!("no tracking connection in:\n{clients}"));
    let id = tracking
        .split(' ')
        .find_map(|field| field.strip_prefix("id="))
        .unwrap();
    let mut connection = fleet.redis().connection();
    let (killed, removed): (i64, i64) = redis::pipe()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .cmd("DEL")
        .arg(&redis_key)
        .query(&mut connection)
        .unwrap();
    assert_eq!((killed, removed), (1, 1));

    until(
        "the caches dropped",
        Duration::from_secs(2),
        BOUNDED,
        || metric(keyway, dropped),
        |count| *count > before,
    );
    assert_eq!(chat(&client, keyway, &token), 401, "the delete is enforced");
    until(
        "tracking back",
        Duration::from_secs(5),
        BOUNDED,
        || metric(keyway, "keyway_cache_trusted"),
        |trusted| *trusted == 1.0,
    );
    let (other, _) = fleet.new_token(&client);
    assert_eq!(chat(&client, keyway, &other), 200);
}

#[test]
fn a_sentinel_failover_keeps_every_acknowledged_token_and_keyway_follows_the_new_primary() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::replica_of(&primary);
    let sentinels: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::sentinel(&primary, "kw"))
        .collect();
    let addresses: Vec<String> = sentinels
        .iter()
        .map(|sentinel| format!("\"{}\"", sentinel.address()))
        .collect();
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let section = format!(
        "[store]\nbackend = \"redis\"\nsentinels = [{}]\nmaster_name = \"kw\"\nwait_replicas = 1\ntimeout_ms = 2000\n",
        addresses.join(", ")
    );
    let text = config(backend.address, &store, "").replace(&store.section(), &section);
    let keyway = Keyway::start(&text, &[]);
    let client = Client::new();
    until(
        "the replica in sync",
        Duration::from_secs(10),
        Duration::from_secs(5),
        || replica.command::<String>(&["INFO", "replication"]),
        |info| info.contains("master_link_status:up"),
    );
    let tokens: Vec<String> = (0..5)
        .map(|_| token_for(&client, &keyway, USER, -1, false))
        .collect();

    primary.kill();
    let failed_over = Instant::now();
    until(
        "keyway on the new primary",
        Duration::from_secs(30),
        Duration::from_secs(5),
        || {
            verify_token(&client, &keyway, &tokens[0], &tokens[0])
                .status()
                .as_u16()
        },
        |status| *status == 200,
    );
    println!(
        "keyway followed the failover in {:?}",
        failed_over.elapsed()
    );
    let role: Vec<redis::Value> = replica.command(&["ROLE"]);
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    for token in &tokens {
        assert_eq!(
            verify_token(&client, &keyway, token, &tokens[0]).status(),
            200,
            "an acknowledged token was lost in the failover"
        );
    }
    // No replica left to acknowledge: a new token is refused rather than promised.
    let body = json!({"email": USER, "password": PASSWORD, "timeout": 600});
    let unacknowledged = answer(login(&client, &keyway, &body));
    assert_eq!(unacknowledged, (503, "503-01".to_owned()));

    // The old primary comes back; the sentinels make it a replica, and writes succeed again.
    primary.restart();
    until(
        "writes acknowledged again",
        Duration::from_secs(30),
        Duration::from_secs(5),
        || login(&client, &keyway, &body).status().as_u16(),
        |status| *status == 200,
    );
}

#[test]
fn a_redis_password_comes_from_the_environment_and_is_never_shown() {
    const PASSWORD_OF_REDIS: &str = "redis-secret-4e1c2b";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD_OF_REDIS]);
    let backend = Backend::start();
    let store = TestStore::new(StoreKind::Sqlite);
    let with_url = |url: String| {
        let section = format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\ntimeout_ms = 2000\n");
        config(backend.address, &store, "").replace(&store.section(), &section)
    };
    let url = format!("redis://:${{REDIS_PASSWORD}}@{}/", redis.address());
    let keyway = Keyway::start(
        &with_url(url.clone()),
        &[("REDIS_PASSWORD", PASSWORD_OF_REDIS)],
    );
    let client = Client::new();
    let token = token_for(&client, &keyway, USER, 600, false);
    assert_eq!(chat(&client, &keyway, &token), 200);

    let wrong = Keyway::launch(&with_url(url), &[("REDIS_PASSWORD", "not-the-password-77")]);
    until(
        "a wrong password is not ready and says why",
        Duration::from_secs(5),
        BOUNDED,
        || wrong.logs(),
        |logs| logs.contains("cannot connect to redis"),
    );
    until(
        "serving, unready",
        Duration::from_secs(5),
        BOUNDED,
        || ready(&wrong),
        |s| *s != 0,
    );
    assert_eq!(ready(&wrong), 503);
    let body = json!({"email": USER, "password": PASSWORD, "timeout": 600});
    assert_eq!(
        answer(login(&client, &wrong, &body)),
        (503, "503-01".to_owned())
    );
    for keyway in [&keyway, &wrong] {
        let metrics = reqwest::blocking::get(keyway.admin_url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        let shown = format!("{}\n{metrics}", keyway.logs());
        for secret in [PASSWORD_OF_REDIS, "not-the-password-77"] {
            assert!(
                !shown.contains(secret),
                "the redis password was shown:\n{shown}"
            );
        }
    }
}
