use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use pattern_error::{Error, Kind};
use tokio_util::sync::CancellationToken;

use crate::ports::{Bound, Ports};

/// What a component gets when it starts: its stop token, its bound
/// listeners, and the addresses of the others.
#[derive(Clone, Debug)]
pub struct StartContext {
    name: Arc<str>,
    stop: CancellationToken,
    ports: Ports,
    listeners: Arc<Mutex<Bound>>,
}

impl StartContext {
    pub(crate) fn new(
        name: Arc<str>,
        stop: CancellationToken,
        ports: Ports,
        listeners: Bound,
    ) -> Self {
        Self {
            name,
            stop,
            ports,
            listeners: Arc::new(Mutex::new(listeners)),
        }
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cancelled when the component must stop (the system stops, or a restart
    /// by its supervisor). Its task should return soon after.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Takes the listener the runner bound for the port named `port`, as a
    /// tokio listener. Each listener can be taken once per start.
    ///
    /// Call it inside a tokio runtime.
    pub fn take_listener(&self, port: &str) -> Result<tokio::net::TcpListener, Error> {
        let std = self.take_std_listener(port)?;
        tokio::net::TcpListener::from_std(std).map_err(|e| {
            Error::with_source(
                Kind::Internal,
                format!("component {:?}: registering port {port:?}", self.name),
                e,
            )
        })
    }

    /// Takes the bound listener for `port` as a (non-blocking) std listener.
    pub fn take_std_listener(&self, port: &str) -> Result<std::net::TcpListener, Error> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(port)
            .ok_or_else(|| {
                Error::new(
                    Kind::InvalidInput,
                    format!(
                        "component {:?} has no bound port {port:?} (not declared, or already taken)",
                        self.name
                    ),
                )
            })
    }

    /// The real address of another component's port (or this one's).
    pub fn addr_of(&self, component: &str, port: &str) -> Option<SocketAddr> {
        self.ports.addr(component, port)
    }

    /// Every bound address.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }
}
