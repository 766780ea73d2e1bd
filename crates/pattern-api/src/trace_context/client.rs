//! A client span per outgoing call, its context in the call's headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tower::{Layer, Service};
use tracing::instrument::{Instrument as _, Instrumented};

/// Gives each call through it a client span (`GET`, kind client, with
/// `http.request.method`, `server.address`, `server.port`, `url.full`
/// (without credentials, its query redacted), and
/// at its end `http.response.status_code`, with an error status for a 4xx
/// or 5xx or a failed call) as a child of the current span, and writes
/// that span's context into the request's headers (`traceparent`).
///
/// Put it under a retry layer: each attempt is then a span of its own
/// under the caller's, and the server sees which attempt it answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTraceLayer;

impl ClientTraceLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTrace { inner }
    }
}

/// The service of [`ClientTraceLayer`].
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for ClientTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let uri = req.uri();
        let port = uri
            .port_u16()
            .or_else(|| match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
            .map(i64::from);
        let span = tracing::info_span!(
            "request",
            otel.kind = "client",
            otel.name = req.method().as_str(),
            otel.status_code = tracing::field::Empty,
            http.request.method = req.method().as_str(),
            server.address = uri.host(),
            server.port = port,
            url.full = %FullUrl(uri),
            http.response.status_code = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
        );
        {
            let _entered = span.enter();
            super::inject(req.headers_mut());
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner: future.instrument(span),
            recorded: false,
        }
    }
}

/// A URI as `url.full` shows it: scheme, host, port and path, without
/// credentials or query (which may carry tokens).
struct FullUrl<'a>(&'a http::Uri);

impl std::fmt::Display for FullUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(host) = uri.host() {
            f.write_str(host)?;
        }
        if let Some(port) = uri.port_u16() {
            write!(f, ":{port}")?;
        }
        f.write_str(uri.path())?;
        if uri.query().is_some() {
            f.write_str("?REDACTED")?;
        }
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ClientTrace`]: the call in its span, whose status
    /// it records at the end.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        recorded: bool,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = ready!(this.inner.as_mut().poll(cx));
        if !*this.recorded {
            *this.recorded = true;
            let span = this.inner.span();
            match &output {
                Ok(response) => {
                    let status = response.status();
                    // As i64: the OpenTelemetry layer records unsigned
                    // numbers as text.
                    span.record("http.response.status_code", i64::from(status.as_u16()));
                    if status.is_client_error() || status.is_server_error() {
                        span.record("otel.status_code", "ERROR");
                        span.record("error.type", status.as_str());
                    }
                }
                Err(_) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", "_OTHER");
                }
            }
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::FullUrl;

    #[test]
    fn full_urls_keep_no_secrets() {
        let uri: http::Uri = "http://user:secret@api.example:8080/v1/items?token=abc"
            .parse()
            .unwrap();
        assert_eq!(
            FullUrl(&uri).to_string(),
            "http://api.example:8080/v1/items?REDACTED"
        );
        let plain: http::Uri = "https://api.example/x".parse().unwrap();
        assert_eq!(FullUrl(&plain).to_string(), "https://api.example/x");
    }
}
