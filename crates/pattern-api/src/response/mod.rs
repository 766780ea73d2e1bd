//! Success envelopes: `{"data": ..., "meta": {"request_id": ...}}`.
//!
//! [`Envelope`] wraps a handler's data with the request id (from
//! [`RequestId::current`]) and, for lists, the cursor of the next page.
//!
//! ```
//! use axum::response::IntoResponse;
//! use pattern_api::response::Envelope;
//!
//! let response = Envelope::page(vec![1, 2, 3], Some("c2".to_owned())).into_response();
//! assert_eq!(response.status(), 200);
//! ```

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use crate::request_id::RequestId;

/// A success body; see the [module docs](self).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Envelope<T> {
    /// The payload.
    pub data: T,
    /// Request id and pagination.
    pub meta: Meta,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    status: StatusCode,
}

/// The `meta` object of an [`Envelope`].
#[derive(Clone, Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Meta {
    /// The request's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The cursor of the next page of a list; `null` on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Option<String>>,
}

impl<T: Serialize> Envelope<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self::with_status(StatusCode::OK, data)
    }

    /// 201 with `data`.
    pub fn created(data: T) -> Self {
        Self::with_status(StatusCode::CREATED, data)
    }

    /// `status` with `data`.
    pub fn with_status(status: StatusCode, data: T) -> Self {
        Self {
            data,
            meta: Meta {
                request_id: RequestId::current().map(|id| id.to_string()),
                next_cursor: None,
            },
            status,
        }
    }
}

impl<T: Serialize> Envelope<Vec<T>> {
    /// 200 with one page of a list and the cursor of the next (`None` on the
    /// last page, serialized as `null`).
    pub fn page(items: Vec<T>, next_cursor: Option<String>) -> Self {
        let mut envelope = Self::ok(items);
        envelope.meta.next_cursor = Some(next_cursor);
        envelope
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, Json(self)).into_response()
    }
}
