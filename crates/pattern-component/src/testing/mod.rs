//! Testing strategies: start a whole system in a test, on ephemeral ports,
//! and never leave it running.
//!
//! [`TestSystem::start`] starts a [`System`] and waits until it is ready.
//! Declare ports on `127.0.0.1:0` so tests run side by side, and read the
//! real addresses with [`TestSystem::addr`]. End the test with
//! [`TestSystem::stop`] to check the stop report; if the test panics
//! first, dropping the `TestSystem` cancels the system's stop token, so
//! its components stop (and the runtime drops whatever is left when the test
//! ends).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use pattern_component::component::{BoxFuture, Component, Running, StartContext};
//! use pattern_component::lifecycle::System;
//! use pattern_component::ports::PortSpec;
//! use pattern_component::testing::TestSystem;
//! use pattern_error::Error;
//!
//! struct Acceptor;
//! impl Component for Acceptor {
//!     fn name(&self) -> &str { "acceptor" }
//!     fn ports(&self) -> Vec<PortSpec> {
//!         vec![PortSpec::new("tcp", "127.0.0.1:0".parse().unwrap())]
//!     }
//!     fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
//!         Box::pin(async move {
//!             let listener = ctx.take_listener("tcp")?;
//!             let stop = ctx.stop_token().clone();
//!             Ok(Running::task(async move {
//!                 loop {
//!                     tokio::select! {
//!                         accepted = listener.accept() => drop(accepted?),
//!                         () = stop.cancelled() => return Ok(()),
//!                     }
//!                 }
//!             }))
//!         })
//!     }
//! }
//!
//! let system = TestSystem::start(System::builder().component(Acceptor).build()?).await?;
//! tokio::net::TcpStream::connect(system.addr("acceptor", "tcp")).await.unwrap();
//! assert!(system.stop().await.is_clean());
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio_util::sync::CancellationToken;

use crate::health::SystemHealth;
use crate::lifecycle::{RunningSystem, StopReport, System};

/// A system started for a test; see the [module docs](self).
#[derive(Debug)]
pub struct TestSystem {
    running: Option<RunningSystem>,
    stop: CancellationToken,
}

impl TestSystem {
    /// Starts `system` and waits up to 10 seconds for it to be ready.
    pub async fn start(system: System) -> Result<Self, Error> {
        Self::start_within(system, Duration::from_secs(10)).await
    }

    /// Starts `system` and waits up to `timeout` for it to be ready.
    pub async fn start_within(system: System, timeout: Duration) -> Result<Self, Error> {
        let running = system.start().await?;
        let this = Self {
            stop: running.stop_token(),
            running: Some(running),
        };
        let deadline = crate::time::deadline(tokio::time::Instant::now(), timeout);
        loop {
            let health = this.health();
            if health.ready {
                return Ok(this);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    Kind::Timeout,
                    format!("the system was not ready within {timeout:?}: {health:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn running(&self) -> &RunningSystem {
        self.running.as_ref().expect("present until stopped")
    }

    /// The real address of `component`'s port `port`.
    ///
    /// # Panics
    ///
    /// If the component declared no such port (a mistake in the test).
    pub fn addr(&self, component: &str, port: &str) -> SocketAddr {
        self.running()
            .addr(component, port)
            .unwrap_or_else(|| panic!("component {component:?} has no port {port:?}"))
    }

    /// The system's health now.
    pub fn health(&self) -> SystemHealth {
        self.running().health()
    }

    /// The running system, for anything else.
    pub fn system(&self) -> &RunningSystem {
        self.running()
    }

    /// Stops the system and returns its summary.
    pub async fn stop(mut self) -> StopReport {
        let running = self.running.take().expect("present until stopped");
        running.stop().await
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        if self.running.is_some() {
            // A panicking test: ask for the stop; the supervisor stops
            // the components while the runtime is still running them.
            self.stop.cancel();
        }
    }
}
