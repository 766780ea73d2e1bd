//! Route setup: versioned groups, middleware per group, health and metrics
//! routes, and a route table to print at start-up.
//!
//! ```
//! use pattern_api::routes::Routes;
//!
//! let (router, table): (axum::Router, _) = Routes::new()
//!     .group("/v1", |v1| {
//!         v1.get("/items", || async { "list" })
//!             .post("/items", || async { "create" })
//!             .get("/items/{id}", || async { "one" })
//!     })
//!     .health(|| (true, serde_json::json!({})), || (true, serde_json::json!({"db": "ok"})))
//!     .build();
//! let printed = table.to_string();
//! assert!(printed.contains("GET, POST  /v1/items"));
//! assert!(printed.contains("GET        /health/ready"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use axum::Router;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use http::{StatusCode, header};
use serde_json::{Value, json};

/// Routes being assembled; see the [module docs](self).
#[must_use]
pub struct Routes<S = ()> {
    router: Router<S>,
    table: Vec<(String, String)>,
}

/// Applies one of a group's layers to its router.
type ApplyLayer<S> = Box<dyn FnOnce(Router<S>) -> Router<S> + Send>;

/// A group of routes under a prefix, with its own middleware.
#[must_use]
pub struct Group<S = ()> {
    routes: BTreeMap<String, (MethodRouter<S>, Vec<&'static str>)>,
    layers: Vec<ApplyLayer<S>>,
}

/// The routes of an application, as `METHODS  PATH` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    rows: Vec<(String, String)>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Adds the routes `build` declares under `prefix` (`"/v1"`), with the
    /// group's own middleware.
    pub fn group(mut self, prefix: &str, build: impl FnOnce(Group<S>) -> Group<S>) -> Self {
        let group = build(Group {
            routes: BTreeMap::new(),
            layers: Vec::new(),
        });
        let mut router = Router::new();
        for (path, (method_router, methods)) in group.routes {
            self.table
                .push((methods.join(", "), format!("{prefix}{path}")));
            router = router.route(&path, method_router);
        }
        for layer in group.layers {
            router = layer(router);
        }
        self.router = self.router.nest(prefix, router);
        self
    }

    /// Adds `GET path` outside any group.
    pub fn get<H, T>(mut self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.table.push(("GET".to_owned(), path.to_owned()));
        self.router = self.router.route(path, routing::get(handler));
        self
    }

    /// Mounts `GET /health/live` and `GET /health/ready`: each calls its
    /// function and answers 200 or 503 with the JSON it returned.
    pub fn health<L, R>(self, live: L, ready: R) -> Self
    where
        L: Fn() -> (bool, Value) + Clone + Send + Sync + 'static,
        R: Fn() -> (bool, Value) + Clone + Send + Sync + 'static,
    {
        self.get("/health/live", move || async move { health_answer(live()) })
            .get(
                "/health/ready",
                move || async move { health_answer(ready()) },
            )
    }

    /// Mounts `GET /metrics` answering `render()` as Prometheus text.
    pub fn metrics<M>(self, render: M) -> Self
    where
        M: Fn() -> String + Clone + Send + Sync + 'static,
    {
        self.get("/metrics", move || async move {
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                render(),
            )
        })
    }

    /// The router and its route table.
    pub fn build(self) -> (Router<S>, RouteTable) {
        let mut rows = self.table;
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        (self.router, RouteTable { rows })
    }
}

fn health_answer((ok, detail): (bool, Value)) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ok { "ok" } else { "unavailable" }, "detail": detail});
    (status, axum::Json(body)).into_response()
}

impl<S: Clone + Send + Sync + 'static> Group<S> {
    fn add(mut self, method: &'static str, path: &str, method_router: MethodRouter<S>) -> Self {
        let merged = match self.routes.remove(path) {
            Some((existing, mut known)) => {
                known.push(method);
                (existing.merge(method_router), known)
            }
            None => (method_router, vec![method]),
        };
        self.routes.insert(path.to_owned(), merged);
        self
    }

    /// `GET path` (relative to the group's prefix).
    pub fn get<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("GET", path, routing::get(handler))
    }

    /// `POST path`.
    pub fn post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("POST", path, routing::post(handler))
    }

    /// `PUT path`.
    pub fn put<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("PUT", path, routing::put(handler))
    }

    /// `PATCH path`.
    pub fn patch<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("PATCH", path, routing::patch(handler))
    }

    /// `DELETE path`.
    pub fn delete<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("DELETE", path, routing::delete(handler))
    }

    /// Applies `layer` to this group's routes only.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response: IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.layers
            .push(Box::new(move |router: Router<S>| router.layer(layer)));
        self
    }
}

impl fmt::Display for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (methods, path) in &self.rows {
            writeln!(f, "{methods:<10} {path}")?;
        }
        Ok(())
    }
}

impl<S> fmt::Debug for Routes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for Group<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("paths", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
