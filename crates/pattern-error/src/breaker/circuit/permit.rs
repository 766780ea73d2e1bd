//! Leave to make one call: borrowed from the breaker, or owned (for
//! futures that must be `'static`).

use std::sync::Arc;

use super::Anchor;
use super::shared::{Shared, Ticket};
use crate::Error;
use crate::shard::Padded;

/// Leave to make one call; see [`CircuitBreaker::try_acquire`](super::CircuitBreaker::try_acquire).
#[derive(Debug)]
#[must_use = "a permit records nothing unless its outcome is reported"]
pub struct Permit<'a> {
    pub(super) shared: &'a Shared,
    pub(super) ticket: Option<Ticket>,
}

impl Permit<'_> {
    /// Whether this call is a half-open probe.
    #[inline]
    pub fn is_probe(&self) -> bool {
        self.ticket.is_some_and(|t| t.probe)
    }

    /// Reports the call's result; errors count as failures when the breaker's
    /// classifier says so.
    #[inline]
    pub fn record<T>(mut self, result: &Result<T, Error>) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.record_result(ticket, result.as_ref().err());
        }
    }

    /// Reports a success.
    #[inline]
    pub fn success(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.record_result(ticket, None);
        }
    }

    /// Reports a failure, whatever the classifier would say.
    pub fn failure(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.record_failure(ticket);
        }
    }

    pub(super) fn record_probe_timeout(self) {
        self.failure();
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.cancel(ticket);
        }
    }
}

/// A permit that owns a handle on its breaker, for futures that must be
/// `'static`.
#[derive(Debug)]
pub(in super::super) struct OwnedPermit {
    anchor: Arc<Padded<Anchor>>,
    ticket: Option<Ticket>,
}

impl OwnedPermit {
    pub(super) fn new(anchor: Arc<Padded<Anchor>>, ticket: Ticket) -> Self {
        Self {
            anchor,
            ticket: Some(ticket),
        }
    }

    #[inline]
    fn shared(&self) -> &Shared {
        &self.anchor.0.shared
    }

    #[inline]
    pub(in super::super) fn record(&mut self, error: Option<&Error>) {
        if let Some(ticket) = self.ticket.take() {
            self.shared().record_result(ticket, error);
        }
    }

    pub(in super::super) fn failure(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared().record_failure(ticket);
        }
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared().cancel(ticket);
        }
    }
}
