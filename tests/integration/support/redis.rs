//! Real `redis-server` and `redis-sentinel` processes on free loopback ports, each in its own
//! directory, stopped by PID when dropped; and the store a test runs on (SQLite or Redis).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One `redis-server` (or `redis-sentinel`) process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    program: &'static str,
}

impl RedisServer {
    /// A primary with an append-only file synced on every write (`appendfsync always`).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (`--name value` pairs).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut args: Vec<String> = [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        .iter()
        .chain(extra)
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(["--bind", "127.0.0.1", "--protected-mode", "no"].map(String::from));
        RedisServer::spawn_new("redis-server", args)
    }

    /// A replica of `primary`.
    pub fn replica_of(primary: &RedisServer) -> RedisServer {
        let port = primary.port.to_string();
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &port])
    }

    /// A sentinel watching `primary` as `master_name` (quorum 2, down after 1 s).
    pub fn sentinel(primary: &RedisServer, master_name: &str) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "bind 127.0.0.1\nprotected-mode no\n\
                 sentinel monitor {master_name} 127.0.0.1 {port} 2\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 5000\n\
                 sentinel parallel-syncs {master_name} 1\n",
                port = primary.port
            ),
        )
        .unwrap();
        let args = vec![config.display().to_string()];
        let mut server = RedisServer::spawn_in(dir, "redis-sentinel", args);
        server.wait_answering();
        server
    }

    fn spawn_new(program: &'static str, args: Vec<String>) -> RedisServer {
        let mut server = RedisServer::spawn_in(tempfile::tempdir().unwrap(), program, args);
        server.wait_answering();
        server
    }

    fn spawn_in(dir: tempfile::TempDir, program: &'static str, args: Vec<String>) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
            args,
            program,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(self.program)
            .args(&self.args)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.program));
        self.child = Some(child);
    }

    /// Waits until the server answers PING.
    fn wait_answering(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.try_ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} on port {} never answered", self.program, self.port);
    }

    fn try_ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        // An error from the server (NOAUTH with `--requirepass`) is an answer too.
        match client.get_connection_with_timeout(Duration::from_millis(200)) {
            Ok(mut connection) => match redis::cmd("PING").query::<redis::Value>(&mut connection) {
                Ok(_) => true,
                Err(error) => error.code().is_some(),
            },
            Err(error) => error.code().is_some(),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh connection from the test itself.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// Runs one command and returns its answer.
    pub fn command<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut self.connection()).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, signal: &str) {
        super::send_signal(self.pid(), signal);
    }

    /// `kill -9`, and the process reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (its append-only file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_answering();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port free right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Which backend a store-backed test suite runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StoreKind {
    Sqlite,
    Redis,
}

/// The store of one test: a SQLite file in a temporary directory, or a Redis server of its own.
pub struct TestStore {
    dir: tempfile::TempDir,
    pub redis: Option<RedisServer>,
}

impl TestStore {
    pub fn new(kind: StoreKind) -> TestStore {
        TestStore {
            dir: tempfile::tempdir().unwrap(),
            redis: (kind == StoreKind::Redis).then(RedisServer::start),
        }
    }

    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir.path().join("keyway.db")
    }

    /// The `[store]` table for a keyway config.
    pub fn section(&self) -> String {
        self.section_with("")
    }

    /// The `[store]` table with extra keys.
    pub fn section_with(&self, extra: &str) -> String {
        match &self.redis {
            None => format!(
                "[store]\npath = \"{}\"\n{extra}\n",
                self.sqlite_path().display()
            ),
            // Tests run many keyway processes at once on two cores: a store call gets 2 s
            // unless the test sets its own bound.
            Some(redis) => {
                let timeout = if extra.contains("timeout_ms") {
                    ""
                } else {
                    "timeout_ms = 2000\n"
                };
                format!(
                    "[store]\nbackend = \"redis\"\nurl = \"{}\"\n{timeout}{extra}\n",
                    redis.url()
                )
            }
        }
    }

    /// How many records of `namespace` the store holds (expired ones that Redis has not yet
    /// removed are not counted: Redis never returns them).
    pub fn records(&self, namespace: &str) -> i64 {
        match &self.redis {
            None => {
                let database = rusqlite::Connection::open(self.sqlite_path()).unwrap();
                database
                    .query_row(
                        "SELECT COUNT(*) FROM records WHERE namespace = ?1",
                        [namespace],
                        |row| row.get(0),
                    )
                    .unwrap()
            }
            Some(redis) => {
                let pattern = format!("kw:rec:{namespace}:*");
                let keys: Vec<String> = redis.command(&["KEYS", &pattern]);
                keys.len() as i64
            }
        }
    }

    /// Every byte the store holds: the SQLite files, or every Redis key and value (`DUMP`),
    /// and the append-only file.
    pub fn raw_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut read_dir = |dir: &Path| {
            for entry in walk(dir) {
                bytes.extend(std::fs::read(entry).unwrap_or_default());
            }
        };
        match &self.redis {
            None => read_dir(self.dir.path()),
            Some(redis) => {
                read_dir(redis.dir());
                let keys: Vec<Vec<u8>> = redis.command(&["KEYS", "*"]);
                let mut connection = redis.connection();
                for key in keys {
                    let dump: Vec<u8> =
                        redis::cmd("DUMP").arg(&key).query(&mut connection).unwrap();
                    bytes.extend(key);
                    bytes.extend(dump);
                }
            }
        }
        bytes
    }

    /// Simulates a crash of the store's host, when it is a server: Redis is killed with
    /// `kill -9` and started again on its append-only file. SQLite lives in keyway's process.
    pub fn crash_and_restart(&mut self) {
        if let Some(redis) = self.redis.as_mut() {
            redis.restart();
        }
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
