//! The HTTP server: hyper-util serving an axum router, with a connection
//! limit and a graceful drain, as a [`Component`].
//!
//! On stop the server first goes on accepting and serving for the pre-stop
//! delay (readiness is false already, so load balancers take it out of
//! rotation before it refuses connections), then stops accepting (the port
//! closes), goes on reading
//! for a short linger (so requests already sent on idle keep-alive
//! connections are served, not dropped with them), lets requests in flight
//! finish up to the drain deadline while idle keep-alive connections are
//! closed, then cuts what is left and reports how many it cut
//! ([`HttpServer::last_drain`]). A header read timeout closes connections
//! that trickle their headers (slowloris) without holding up the others; a
//! write timeout closes those whose client stops taking the answer.
//!
//! Each connection's protocol is read from its first bytes, within the
//! header read timeout: HTTP/2 with prior knowledge (h2c) if it opens with
//! the HTTP/2 preface, HTTP/1.1 otherwise. A protocol switched off in
//! [`ServerConfig`] (`http1`, `http2`) is closed, not served; a client
//! that sends nothing, or stops midway through the preface, is closed at
//! the timeout. HTTP/2 connections take their limits from the settings
//! (streams, windows, frame size, `max_header_bytes` as the header list
//! limit) and are pinged to detect clients that vanished; connections
//! with no request in flight for the idle timeout are closed gracefully;
//! connections per client address can be capped.
//!
//! With [`ServerConfig::tls`] (feature `tls`) connections are HTTPS: the
//! handshake shares the header read timeout, ALPN offers `h2` and
//! `http/1.1` as the switches allow, and the certificate is read again
//! when its files change ([`HttpServer::reload_tls`]).
//!
//! An upgraded connection (WebSocket) keeps its connection slot while its
//! socket lives, and the drain waits for it: its handler learns that the
//! drain began from [`Draining`] (close it gracefully then), and its
//! socket's reads and writes fail at the drain deadline.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use pattern_component::lifecycle::System;
//! use pattern_server::http::{HttpServer, ServerConfig};
//!
//! let config = ServerConfig { addr: "127.0.0.1:0".parse().unwrap(), ..ServerConfig::default() };
//! let server = Arc::new(HttpServer::new("http", config, Router::new().route("/", get(|| async { "hi" }))));
//! let running = System::builder()
//!     .component_shared(server.clone(), Default::default())
//!     .build()?
//!     .start()
//!     .await?;
//! let addr = running.addr("http", "http").unwrap();
//! assert_ne!(addr.port(), 0);
//! running.stop().await;
//! assert_eq!(server.last_drain().unwrap().cut, 0);
//! # Ok(())
//! # }
//! ```

mod config;
mod detect;
mod gate;
mod serve;
mod timer;
#[cfg(feature = "tls")]
mod tls;
mod upgrade;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_component::ports::PortSpec;
use pattern_error::{Error, Kind};
use tokio_util::sync::CancellationToken;

pub use config::{OnLimit, ServerConfig, TlsConfig};
pub use upgrade::Draining;

/// What a drain did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Connections open when the server stopped accepting.
    pub open_at_stop: usize,
    /// Connections still busy at the drain deadline, and cut.
    pub cut: usize,
    /// How long the drain took.
    pub took: Duration,
}

/// An HTTP server component; see the [module docs](self).
#[derive(Debug)]
pub struct HttpServer {
    name: String,
    config: ServerConfig,
    router: Router,
    dependencies: Vec<String>,
    last_drain: Arc<Mutex<Option<DrainReport>>>,
    /// The certificates served while running with TLS.
    #[cfg(feature = "tls")]
    certificates: Mutex<Option<Arc<tls::Certificates>>>,
}

impl HttpServer {
    /// A server named `name` (its port is named `"http"`) serving `router`.
    pub fn new(name: impl Into<String>, config: ServerConfig, router: Router) -> Self {
        Self {
            name: name.into(),
            config,
            // Every handler made into its route once, here: a router whose
            // state was never given makes each one again per request (three
            // allocations and clones of boxed services, as axum's own
            // `serve` avoids the same way).
            router: router.with_state(()),
            dependencies: Vec::new(),
            last_drain: Arc::new(Mutex::new(None)),
            #[cfg(feature = "tls")]
            certificates: Mutex::new(None),
        }
    }

    /// Starts after the component `name` (and so stops before it): the
    /// server accepts requests only once what its handlers use is up, and
    /// stops accepting before that goes down.
    #[must_use]
    pub fn after(mut self, name: impl Into<String>) -> Self {
        self.dependencies.push(name.into());
        self
    }

    /// Reads the TLS certificate and key again now if their files changed
    /// (`Ok(true)` when a new certificate is served from the next
    /// handshake on); the files are also looked at every
    /// [`reload_interval_ms`](TlsConfig::reload_interval_ms). An error,
    /// with the current certificate still served, when the new files do
    /// not load, or when the server is not running with TLS.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn reload_tls(&self) -> Result<bool, Error> {
        let certificates = self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        certificates
            .ok_or_else(|| Error::new(Kind::Unavailable, "the server is not running with TLS"))?
            .reload_if_changed()
    }

    /// The TLS acceptor the configuration asks for, and the task that
    /// reloads its certificate.
    fn tls(&self, stop: &CancellationToken) -> Result<Option<serve::Acceptor>, Error> {
        let Some(config) = &self.config.tls else {
            return Ok(None);
        };
        #[cfg(feature = "tls")]
        {
            let certificates = tls::Certificates::load(config)?;
            let acceptor = certificates.acceptor(self.config.http1, self.config.http2)?;
            if let Some(every) = config.reload_interval() {
                let (certificates, stop) = (certificates.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(every);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticks.tick().await;
                    loop {
                        tokio::select! {
                            _ = ticks.tick() => {}
                            () = stop.cancelled() => return,
                        }
                        match certificates.reload_if_changed() {
                            Ok(true) => tracing::info!("TLS certificate reloaded"),
                            Ok(false) => {}
                            Err(err) => {
                                tracing::warn!(error = %err.report(), "TLS certificate not reloaded; the current one is still served")
                            }
                        }
                    }
                });
            }
            *self
                .certificates
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(certificates);
            Ok(Some(acceptor))
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = stop;
            Err(Error::new(
                Kind::InvalidInput,
                format!(
                    "TLS is configured ({}) but pattern-server was built without its `tls` feature",
                    config.cert_path.display()
                ),
            ))
        }
    }

    /// What the last stop's drain did.
    pub fn last_drain(&self) -> Option<DrainReport> {
        *self
            .last_drain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Component for HttpServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn dependencies(&self) -> Vec<String> {
        self.dependencies.clone()
    }

    fn ports(&self) -> Vec<PortSpec> {
        vec![PortSpec::new("http", self.config.addr)]
    }

    /// The pre-stop delay, the linger and the drain deadline: the stop
    /// timeout follows the drain, so a drain is never aborted midway.
    fn stop_timeout(&self) -> Option<Duration> {
        Some(self.config.stop_timeout())
    }

    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        Box::pin(async move {
            let listener = ctx.take_listener("http")?;
            let tls = self.tls(ctx.stop_token())?;
            let task = serve::serve(
                listener,
                tls,
                self.router.clone(),
                self.config.clone(),
                ctx.stop_token().clone(),
                self.last_drain.clone(),
            );
            Ok(Running::task(task))
        })
    }
}
