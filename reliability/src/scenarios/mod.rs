//! The scenarios, in the order they run.

mod bad_input;
mod key_flood;
mod outage;
mod overload;
mod pre_stop;
mod probes;
mod shutdown;
mod stalled_preface;

use std::future::Future;
use std::pin::Pin;

use crate::service::Service;
use crate::{Ctx, Report};

type Scenario = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = Report> + 'a>>;

/// Every scenario by name.
pub(crate) const ALL: &[(&str, Scenario)] = &[
    ("shutdown", |ctx| Box::pin(shutdown::run(ctx))),
    ("pre-stop", |ctx| Box::pin(pre_stop::run(ctx))),
    ("stalled-preface", |ctx| Box::pin(stalled_preface::run(ctx))),
    ("probes", |ctx| Box::pin(probes::run(ctx))),
    ("overload", |ctx| Box::pin(overload::run(ctx))),
    ("bad-input", |ctx| Box::pin(bad_input::run(ctx))),
    ("outage", |ctx| Box::pin(outage::run(ctx))),
    ("key-flood", |ctx| Box::pin(key_flood::run(ctx))),
];

/// Settings every scenario starts the service with: rate limits out of the
/// way (all clients share 127.0.0.1) unless a scenario sets its own, and
/// the demo routes on (slow and panicking requests on purpose).
pub(crate) fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("REFSVC_LIMITS__REQUESTS_PER_SECOND", "10000000".to_owned()),
        ("REFSVC_LIMITS__BURST", "10000000".to_owned()),
        ("REFSVC_DEMO__ENABLED", "true".to_owned()),
    ]
}

/// Starts the service with `env`, or records in `report` why it did not.
pub(crate) fn start(ctx: &Ctx, env: &[(&str, String)], report: &mut Report) -> Option<Service> {
    Service::start(&ctx.binary, env)
        .map_err(|err| report.broken.push(err))
        .ok()
}
