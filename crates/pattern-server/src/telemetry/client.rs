//! The OTLP exporter's HTTP client: one HTTP/1.1 request per batch over a
//! fresh connection, on hyper (already the server's), so the export needs
//! no second HTTP stack. It runs in the export task, on its thread.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use opentelemetry_http::{HttpClient, HttpError};

/// A collector's answer is read up to this size (it is a small protobuf
/// message, or a short error).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Sends each request on a connection of its own.
#[derive(Debug, Default)]
pub(super) struct OtlpClient;

async fn send(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    let uri = request.uri();
    let host = uri.host().ok_or("the collector's address has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    // A bracketed IPv6 literal connects without its brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(http::header::HOST, value);
    }
    // HTTP/1.1 sends the path alone; the host is in its header.
    if let Some(path) = parts.uri.path_and_query() {
        parts.uri = path.as_str().parse()?;
    }
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}

impl HttpClient for OtlpClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(send(request))
    }
}
