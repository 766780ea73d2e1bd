//! Port management: declared listen addresses, checked and bound once.
//!
//! Components declare what they listen on ([`PortSpec`]). Before any
//! component starts, the runner
//!
//! 1. finds declared addresses that collide (the same port on the same or an
//!    overlapping address, such as `0.0.0.0:80` and `127.0.0.1:80`) and
//!    refuses to start, naming both components;
//! 2. binds every address once; "address in use" becomes an error naming the
//!    component and the address;
//! 3. records the real address, so port 0 (any free port) works: the
//!    component takes its bound listener from its
//!    [`StartContext`](crate::component::StartContext), and other
//!    components and the caller read the address from [`Ports`].
//!
//! A listener is never closed and bound again, so no other process can take
//! the port in between.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use pattern_component::component::{BoxFuture, Component, Running, StartContext};
//! use pattern_component::lifecycle::System;
//! use pattern_component::ports::PortSpec;
//! use pattern_error::Error;
//!
//! struct Api;
//! impl Component for Api {
//!     fn name(&self) -> &str { "api" }
//!     fn ports(&self) -> Vec<PortSpec> {
//!         // Port 0: any free port, so tests and examples run side by side.
//!         vec![PortSpec::new("http", "127.0.0.1:0".parse().unwrap())]
//!     }
//!     fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
//!         Box::pin(async move {
//!             let listener = ctx.take_listener("http")?; // bound already
//!             let stop = ctx.stop_token().clone();
//!             Ok(Running::task(async move {
//!                 let _serving = listener;
//!                 stop.cancelled().await;
//!                 Ok(())
//!             }))
//!         })
//!     }
//! }
//!
//! let running = System::builder().component(Api).build()?.start().await?;
//! let addr = running.addr("api", "http").unwrap();
//! assert_ne!(addr.port(), 0);
//! running.stop().await;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};

use pattern_error::{Error, Kind};

/// An address a component listens on, under a name of its choosing
/// (`"http"`, `"admin"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The port's name within its component.
    pub name: String,
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
}

impl PortSpec {
    /// A port named `name` on `addr`.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            name: name.into(),
            addr,
        }
    }
}

/// The real addresses of every bound port, by component and port name.
/// Cloning shares the map.
#[derive(Clone, Debug, Default)]
pub struct Ports {
    addrs: Arc<Mutex<HashMap<(String, String), SocketAddr>>>,
}

impl Ports {
    /// The address `component` listens on under `port`.
    pub fn addr(&self, component: &str, port: &str) -> Option<SocketAddr> {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(component.to_owned(), port.to_owned()))
            .copied()
    }

    /// Every bound address.
    pub fn all(&self) -> Vec<(String, String, SocketAddr)> {
        let mut all: Vec<_> = self
            .addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((c, p), a)| (c.clone(), p.clone(), *a))
            .collect();
        all.sort();
        all
    }

    fn insert(&self, component: &str, port: &str, addr: SocketAddr) {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((component.to_owned(), port.to_owned()), addr);
    }
}

/// Listeners bound for one component, waiting to be taken.
pub(crate) type Bound = HashMap<String, TcpListener>;

/// Checks every component's declared ports for collisions.
pub(crate) fn check_conflicts(declared: &[(String, Vec<PortSpec>)]) -> Result<(), Error> {
    let mut problems = Vec::new();
    let flat: Vec<(&str, &PortSpec)> = declared
        .iter()
        .flat_map(|(c, specs)| specs.iter().map(move |s| (c.as_str(), s)))
        .collect();
    for (i, (c1, s1)) in flat.iter().enumerate() {
        if flat[..i].iter().any(|(c, s)| c == c1 && s.name == s1.name) {
            problems.push(format!(
                "component {c1:?} declares port {:?} twice",
                s1.name
            ));
        }
        for (c2, s2) in &flat[..i] {
            if collide(s1.addr, s2.addr) {
                problems.push(format!(
                    "components {c2:?} ({}) and {c1:?} ({}) both listen on {}",
                    s2.name, s1.name, s1.addr
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            Kind::InvalidInput,
            format!("port conflict: {}", problems.join("; ")),
        ))
    }
}

/// Whether two listen addresses cannot both be bound.
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || b.port() == 0 || a.port() != b.port() {
        return false;
    }
    let (ia, ib) = (a.ip(), b.ip());
    ia == ib
        || (ia.is_unspecified() && a.is_ipv4() == b.is_ipv4())
        || (ib.is_unspecified() && a.is_ipv4() == b.is_ipv4())
}

/// Binds `specs` for `component`, recording the real addresses.
pub(crate) fn bind(component: &str, specs: &[PortSpec], ports: &Ports) -> Result<Bound, Error> {
    let mut bound = HashMap::new();
    for spec in specs {
        let listener = TcpListener::bind(spec.addr).map_err(|e| {
            let what = match e.kind() {
                std::io::ErrorKind::AddrInUse => "the address is in use".to_owned(),
                _ => "cannot bind".to_owned(),
            };
            Error::with_source(
                Kind::Unavailable,
                format!(
                    "component {component:?} cannot listen on {} ({}): {what}",
                    spec.addr, spec.name
                ),
                e,
            )
        })?;
        listener.set_nonblocking(true).map_err(|e| {
            Error::with_source(
                Kind::Internal,
                format!("component {component:?}: set_nonblocking"),
                e,
            )
        })?;
        let addr = listener.local_addr().map_err(|e| {
            Error::with_source(
                Kind::Internal,
                format!("component {component:?}: local_addr"),
                e,
            )
        })?;
        ports.insert(component, &spec.name, addr);
        bound.insert(spec.name.clone(), listener);
    }
    Ok(bound)
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.addr, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, addr: &str) -> PortSpec {
        PortSpec::new(name, addr.parse().unwrap())
    }

    #[test]
    fn collisions_name_both_components() {
        let declared = vec![
            ("api".to_owned(), vec![spec("http", "127.0.0.1:8080")]),
            ("admin".to_owned(), vec![spec("http", "0.0.0.0:8080")]),
            (
                "worker".to_owned(),
                vec![spec("metrics", "127.0.0.1:0"), spec("x", "127.0.0.1:0")],
            ),
        ];
        let err = check_conflicts(&declared).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"api\"") && text.contains("\"admin\""),
            "{text}"
        );
        assert!(!text.contains("worker"), "port 0 never collides: {text}");
    }

    #[test]
    fn address_in_use_names_component_and_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind("api", &[PortSpec::new("http", addr)], &Ports::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"api\"") && text.contains(&addr.to_string()),
            "{text}"
        );
        assert!(text.contains("in use"), "{text}");
    }

    #[test]
    fn port_zero_records_the_real_port() {
        let ports = Ports::default();
        let bound = bind("api", &[spec("http", "127.0.0.1:0")], &ports).unwrap();
        let real = ports.addr("api", "http").unwrap();
        assert_ne!(real.port(), 0);
        assert_eq!(bound["http"].local_addr().unwrap(), real);
    }
}
