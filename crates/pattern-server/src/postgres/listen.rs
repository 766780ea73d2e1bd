//! `LISTEN`/`NOTIFY` as a stream of notifications, on a connection of its
//! own that comes back by itself.

use std::future::poll_fn;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use pattern_error::{Error, Kind};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::task::AbortOnDropHandle;

use super::Database;

/// Notifications buffered for a slow reader; beyond, the connection is no
/// longer read (PostgreSQL buffers on its side) until the reader catches
/// up.
const BUFFER: usize = 1024;

/// What a [`Listener`] receives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenEvent {
    /// A `NOTIFY` on one of the channels.
    Notification {
        /// The channel.
        channel: String,
        /// The payload (empty when none was given).
        payload: String,
        /// The notifying backend's process id.
        process_id: i32,
    },
    /// The connection was lost and is listening again: notifications sent
    /// meanwhile are lost, so re-read whatever they would have announced.
    Reconnected,
}

/// Notifications from [`Database::listen`]; dropping it stops listening.
#[derive(Debug)]
pub struct Listener {
    events: mpsc::Receiver<ListenEvent>,
    _task: AbortOnDropHandle<()>,
}

impl Listener {
    /// The next notification (or reconnection); `None` never comes while
    /// the listener lives.
    pub async fn recv(&mut self) -> Option<ListenEvent> {
        self.events.recv().await
    }
}

impl Database {
    /// Listens on `channels` (`LISTEN`) on a connection of its own, outside
    /// the pool, reconnecting with backoff (100 ms to 5 s, jittered) when
    /// it is lost and saying so ([`ListenEvent::Reconnected`]). An error
    /// when a channel name is empty or longer than PostgreSQL's 63 bytes.
    pub fn listen<I, S>(&self, channels: I) -> Result<Listener, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let channels: Vec<String> = channels.into_iter().map(Into::into).collect();
        if channels.is_empty() || channels.iter().any(|c| c.is_empty() || c.len() > 63) {
            return Err(Error::new(
                Kind::InvalidInput,
                "LISTEN needs one or more channel names of 1 to 63 bytes",
            ));
        }
        let mut config: tokio_postgres::Config = self
            .settings
            .url
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| Error::with_source(Kind::InvalidInput, "invalid PostgreSQL URL", e))?;
        if let Some(mode) = self.settings.ssl_mode {
            config.ssl_mode(match mode {
                deadpool_postgres::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                deadpool_postgres::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
        }
        let listen: String = channels
            .iter()
            .map(|c| format!("LISTEN \"{}\";", c.replace('"', "\"\"")))
            .collect();
        let (tx, events) = mpsc::channel(BUFFER);
        let task = tokio::spawn(listen_forever(config, self.tls.clone(), listen, tx));
        Ok(Listener {
            events,
            _task: AbortOnDropHandle::new(task),
        })
    }
}

async fn listen_forever(
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    listen: String,
    tx: mpsc::Sender<ListenEvent>,
) {
    let backoff = || {
        ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    let mut listened_before = false;
    while !tx.is_closed() {
        let connected = match &tls {
            Some(tls) => config
                .connect(tls.clone())
                .await
                .map(|(client, connection)| (client, Reader::Tls(Box::new(connection)))),
            None => config
                .connect(NoTls)
                .await
                .map(|(client, connection)| (client, Reader::Plain(Box::new(connection)))),
        };
        match connected {
            Ok((client, mut connection)) => {
                // The connection is read here, its notifications passed on;
                // it ends when the connection is lost or nobody listens.
                let forward = tx.clone();
                let reader = tokio::spawn(async move {
                    while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                let event = ListenEvent::Notification {
                                    channel: n.channel().to_owned(),
                                    payload: n.payload().to_owned(),
                                    process_id: n.process_id(),
                                };
                                if forward.send(event).await.is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(err) => {
                                tracing::warn!(%err, "LISTEN connection lost");
                                return;
                            }
                        }
                    }
                });
                let reader = AbortOnDropHandle::new(reader);
                match client.batch_execute(&listen).await {
                    Ok(()) => {
                        if listened_before && tx.send(ListenEvent::Reconnected).await.is_err() {
                            return;
                        }
                        listened_before = true;
                        delays = backoff();
                        let _ = reader.await;
                    }
                    Err(err) => tracing::warn!(%err, "LISTEN failed"),
                }
            }
            Err(err) => tracing::debug!(%err, "LISTEN connection not established"),
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => return,
        }
    }
}

/// A LISTEN connection, plain or TLS.
enum Reader {
    Plain(
        Box<tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>>,
    ),
    Tls(
        Box<
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
                    tokio_postgres::Socket,
                >>::Stream,
            >,
        >,
    ),
}

impl Reader {
    fn poll_message(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>> {
        match self {
            Self::Plain(connection) => connection.poll_message(cx),
            Self::Tls(connection) => connection.poll_message(cx),
        }
    }
}
