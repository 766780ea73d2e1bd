//! The smallest service: answers `GET /` on 127.0.0.1:8080 and stops cleanly
//! on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example hello
//! curl http://127.0.0.1:8080/
//! ```
//!
//! Set `HELLO_ADDR` to listen elsewhere (`127.0.0.1:0` picks a free port).

use std::net::SocketAddr;

use axum::{Router, routing::get};
use patterns::component::lifecycle::stop_signal;
use patterns::error::{Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let addr: SocketAddr = std::env::var("HELLO_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8080".to_owned())
        .parse()
        .context("HELLO_ADDR is not a socket address")?;
    let app = Router::new().route("/", get(|| async { "hello from patterns\n" }));

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    println!("listening on http://{local}");

    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}
