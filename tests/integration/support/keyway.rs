//! Starts the real `keyway` binary on loopback port 0 and talks to it over TCP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Keyway {
    child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

/// `keyway` with `args`, the given config text and environment; returns the process output.
pub fn keyway_command(
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Command) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyway"));
    command
        .arg("--config")
        .arg(&path)
        .args(args)
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    (dir, command)
}

impl Keyway {
    /// Starts keyway and waits until `/readyz` is 200.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Keyway {
        let keyway = Keyway::launch(config, env);
        keyway.wait_ready();
        keyway
    }

    /// Starts keyway and returns once its listeners are known, ready or not.
    pub fn launch(config: &str, env: &[(&str, &str)]) -> Keyway {
        Keyway::launch_with(config, env, &[])
    }

    /// Starts `keyway run` with `run_args` (e.g. `--upgrade`) and returns once its listeners
    /// are known, ready or not.
    pub fn launch_with(config: &str, env: &[(&str, &str)], run_args: &[&str]) -> Keyway {
        let mut args = vec!["--log-format", "json", "run"];
        args.extend(run_args);
        let (dir, mut command) = keyway_command(config, &args, env);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (listening, addresses) = mpsc::channel();
        collect(child.stdout.take().unwrap(), logs.clone(), Some(listening));
        collect(child.stderr.take().unwrap(), logs.clone(), None);
        let (proxy, admin) = addresses.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "keyway did not report its listeners; output:\n{}",
                logs.lock().unwrap()
            )
        });
        Keyway {
            child,
            proxy,
            admin,
            logs,
            dir,
        }
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            let ready = client
                .get(self.admin_url("/readyz"))
                .send()
                .is_ok_and(|response| response.status() == 200);
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("keyway never became ready; output:\n{}", self.logs());
    }

    /// The directory holding the config file: relative paths in the config resolve here.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Everything keyway printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        super::send_signal(self.pid(), signal);
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "keyway did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Keyway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends a stream's lines to `logs`; reports the `listening` line's addresses once.
fn collect(
    stream: impl std::io::Read + Send + 'static,
    logs: Arc<Mutex<String>>,
    mut listening: Option<mpsc::Sender<(SocketAddr, SocketAddr)>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(sender) = listening.as_ref()
                && let Some(addresses) = listening_addresses(&line)
            {
                let _ = sender.send(addresses);
                listening = None;
            }
            let mut logs = logs.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
}

fn listening_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["message"] != "listening" {
        return None;
    }
    let proxy = event["proxy"].as_str()?.split(',').next()?.parse().ok()?;
    let admin = event["admin"].as_str()?.parse().ok()?;
    Some((proxy, admin))
}

/// The repository's own files (the shipped config.toml).
pub fn repository_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
}
