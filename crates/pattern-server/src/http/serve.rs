//! The accept loop and the drain.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use pattern_error::Error;
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{DrainReport, OnLimit, ServerConfig};

/// Serves `router` on `listener` until `stop` is cancelled, then drains.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    stop: CancellationToken,
    report: Arc<std::sync::Mutex<Option<DrainReport>>>,
) -> Result<(), Error> {
    let mut builder = Builder::new(TokioExecutor::new());
    {
        let mut http1 = builder.http1();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout())
            .keep_alive(config.keep_alive)
            .max_buf_size(config.max_header_bytes);
    }
    builder = match (config.http1, config.http2) {
        (true, false) => builder.http1_only(),
        (false, true) => builder.http2_only(),
        _ => builder,
    };
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = TaskTracker::new();
    let cut = CancellationToken::new();
    // Connections are cut however this ends, even if the serving task is
    // aborted (a stop timeout shorter than the drain).
    let _cut_on_exit = cut.clone().drop_guard();

    loop {
        // Wait for a free slot first (or refuse the excess below).
        let permit = match config.on_limit {
            OnLimit::Wait => tokio::select! {
                permit = slots.clone().acquire_owned() => permit.ok(),
                () = stop.cancelled() => break,
            },
            _ => None,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: log, pause (not
                    // a hot loop), go on.
                    tracing::warn!(%err, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = stop.cancelled() => break,
                    }
                }
            },
            () = stop.cancelled() => break,
        };
        let permit = match permit {
            Some(permit) => permit,
            None => match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    tracing::debug!(%peer, "connection refused: at the connection limit");
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(CloseWhenStopping {
            inner: router.clone().map_request(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req
                },
            ),
            stopping: stop.clone(),
        });
        let watcher = graceful.watcher();
        let (builder, cut, stopping) = (builder.clone(), cut.clone(), stop.clone());
        let first_bytes = config.header_read_timeout();
        connections.spawn(async move {
            // Until the first bytes arrive no protocol is chosen, so no
            // header timer runs: a client that sends nothing gets the
            // header read timeout to start, not a slot for ever (and is idle,
            // so closed at once when the server stops).
            let mut first = [0u8; 1];
            tokio::select! {
                peeked = tokio::time::timeout(first_bytes, stream.peek(&mut first)) => {
                    if !matches!(peeked, Ok(Ok(1))) {
                        tracing::debug!(%peer, "nothing sent within the header read timeout");
                        drop(permit);
                        return;
                    }
                }
                () = stopping.cancelled() => {
                    drop(permit);
                    return;
                }
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                result = watcher.watch(connection.into_owned()) => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, %err, "connection ended with an error");
                    }
                }
                () = cut.cancelled() => {
                    tracing::debug!(%peer, "connection cut at the drain deadline");
                }
            }
            drop(permit);
        });
    }

    // Stop accepting (the listener closes here); let connections read for a
    // moment, so a request sent just before the stop on an idle keep-alive
    // connection is taken in (closing an idle connection drops what it has
    // not read); let requests in flight finish, close idle keep-alive
    // connections, then cut the rest.
    drop(listener);
    let open = connections.len();
    connections.close();
    let started = tokio::time::Instant::now();
    let linger = config.drain_linger().min(config.drain_deadline());
    tokio::time::sleep(linger).await;
    let left_for_drain = config.drain_deadline().saturating_sub(linger);
    let drained = tokio::time::timeout(left_for_drain, graceful.shutdown())
        .await
        .is_ok();
    let left = if drained { 0 } else { connections.len() };
    cut.cancel();
    connections.wait().await;
    let summary = DrainReport {
        open_at_stop: open,
        cut: left,
        took: started.elapsed(),
    };
    tracing::info!(open = summary.open_at_stop, cut = summary.cut, took = ?summary.took, "server drained");
    *report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(summary);
    Ok(())
}

/// Once the server is stopping, each HTTP/1 answer says `connection:
/// close`, so a connection serves what it was sent before the stop and no
/// more: the drain's linger takes in requests already on their way without
/// letting keep-alive clients go on sending new ones.
#[derive(Clone)]
struct CloseWhenStopping<S> {
    inner: S,
    stopping: CancellationToken,
}

impl<S, B> tower::Service<axum::http::Request<B>> for CloseWhenStopping<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = CloseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        CloseFuture {
            http1: req.version() <= axum::http::Version::HTTP_11,
            stopping: self.stopping.clone(),
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`CloseWhenStopping`].
    struct CloseFuture<F> {
        #[pin]
        inner: F,
        http1: bool,
        stopping: CancellationToken,
    }
}

impl<F, E> Future for CloseFuture<F>
where
    F: Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if *this.http1 && this.stopping.is_cancelled() {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        Poll::Ready(Ok(response))
    }
}
