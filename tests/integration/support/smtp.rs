//! A real SMTP server (Python's aiosmtpd, `smtp_server.py`) that records every message.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SmtpServer {
    pub port: u16,
    messages: Arc<Mutex<Vec<Value>>>,
    child: Child,
}

/// One received email.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    /// The whole message: headers and body.
    pub data: String,
    pub subject: String,
    /// The plain-text body, decoded.
    pub text: String,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let script = super::keyway::repository_file("tests/integration/support/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the SMTP server announces its port (is aiosmtpd installed? `make deps`)")
            .unwrap();
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        SmtpServer {
            port,
            messages,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|message| Mail {
                to: serde_json::from_value(message["to"].clone()).unwrap(),
                data: message["data"].as_str().unwrap().to_owned(),
                subject: message["subject"].as_str().unwrap().to_owned(),
                text: message["text"].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    /// Waits (up to 10 s) until `count` messages have arrived.
    pub fn wait_for(&self, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails();
            if mails.len() >= count || Instant::now() > deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The plain-text body of an `.eml` file, decoded by Python's email package.
pub fn eml_text(path: &std::path::Path) -> String {
    let script = "import email, email.policy, sys\n\
        message = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
        sys.stdout.write(message.get_body(('plain',)).get_content())";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
