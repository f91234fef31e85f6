//! Sending the authentication email: SMTP through lettre, or `.eml` files in an outbox
//! directory (the default that needs no mail server).

use crate::config::hosted_email::MailDelivery;
use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

pub(super) enum Mailer {
    /// lettre's own timeout bounds only the connect (lettre issue #1027): `timeout` bounds the
    /// whole conversation, so a server that stalls mid-way cannot hold the request.
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        timeout: Duration,
    },
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP URL may hold credentials: never printed.
        f.write_str(match self {
            Mailer::Smtp { .. } => "Mailer::Smtp",
            Mailer::Outbox(_) => "Mailer::Outbox",
        })
    }
}

/// One authentication email.
pub(super) struct Email<'a> {
    pub from: &'a Mailbox,
    pub to: Mailbox,
    pub subject: &'a str,
    pub link: &'a str,
}

impl Mailer {
    /// The transport for `delivery`; the outbox directory is created if missing.
    pub(super) fn new(delivery: &MailDelivery) -> Result<Mailer, String> {
        match delivery {
            MailDelivery::Smtp { url, timeout } => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|_| "hosted_email.smtp_url: not a usable SMTP URL".to_owned())?;
                Ok(Mailer::Smtp {
                    transport: builder.timeout(Some(*timeout)).build(),
                    timeout: *timeout,
                })
            }
            MailDelivery::Outbox { dir } => {
                std::fs::create_dir_all(dir).map_err(|error| {
                    format!(
                        "hosted_email.outbox_dir: cannot create {}: {error}",
                        dir.display()
                    )
                })?;
                Ok(Mailer::Outbox(AsyncFileTransport::new(dir)))
            }
        }
    }

    /// Sends (or files) the email; the error text is for the log only.
    pub(super) async fn send(&self, email: Email<'_>) -> Result<(), String> {
        let message = Message::builder()
            .from(email.from.clone())
            .to(email.to)
            .subject(email.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "To confirm your email address, open this link:\r\n\r\n{}\r\n\r\n\
                 If you did not ask for this, ignore this email.\r\n",
                email.link
            ))
            .map_err(|error| format!("building the email: {error}"))?;
        match self {
            Mailer::Smtp { transport, timeout } => {
                match tokio::time::timeout(*timeout, transport.send(message)).await {
                    Ok(sent) => sent
                        .map(drop)
                        .map_err(|error| format!("SMTP delivery failed: {error}")),
                    Err(_) => Err(format!(
                        "SMTP delivery failed: no answer within {} ms",
                        timeout.as_millis()
                    )),
                }
            }
            Mailer::Outbox(transport) => transport
                .send(message)
                .await
                .map(drop)
                .map_err(|error| format!("writing to the outbox failed: {error}")),
        }
    }
}
