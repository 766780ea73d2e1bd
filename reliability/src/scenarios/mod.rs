//! The scenarios, in the order they run.

mod bad_input;
mod key_flood;
mod outage;
mod overload;
mod pre_stop;
mod probes;
mod prometheus;
mod shutdown;
mod stalled_preface;
mod stalled_reader;

use std::future::Future;
use std::pin::Pin;

use crate::cluster::Cluster;
use crate::service::Service;
use crate::{Ctx, Report};

type Scenario = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = Report> + 'a>>;

/// Every scenario by name.
pub(crate) const ALL: &[(&str, Scenario)] = &[
    ("shutdown", |ctx| Box::pin(shutdown::run(ctx))),
    ("pre-stop", |ctx| Box::pin(pre_stop::run(ctx))),
    ("stalled-preface", |ctx| Box::pin(stalled_preface::run(ctx))),
    ("stalled-reader", |ctx| Box::pin(stalled_reader::run(ctx))),
    ("probes", |ctx| Box::pin(probes::run(ctx))),
    ("overload", |ctx| Box::pin(overload::run(ctx))),
    ("bad-input", |ctx| Box::pin(bad_input::run(ctx))),
    ("outage", |ctx| Box::pin(outage::run(ctx))),
    ("key-flood", |ctx| Box::pin(key_flood::run(ctx))),
    ("prometheus", |ctx| Box::pin(prometheus::run(ctx))),
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

/// Marks a scenario that lacks `what` skipped (with `how` to get it), or
/// broken under `CI=true`, where nothing may be skipped.
pub(crate) fn missing(report: &mut Report, what: &str, how: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        report
            .broken
            .push(format!("{what} must be available under CI=true"));
    } else {
        report.skipped = Some(format!("no {what}: {how}"));
    }
}

/// The cluster, a fresh database `name` on it, and the settings that start
/// the service on that database (the base ones, and pool timeouts short
/// enough that an outage answers fast); `None` when there is no cluster or
/// the database cannot be made (recorded in `report`).
pub(crate) async fn with_database(
    report: &mut Report,
    name: &str,
) -> Option<(Cluster, String, Vec<(&'static str, String)>)> {
    let cluster = Cluster::from_env(report)?;
    let url = match cluster.fresh_database(name).await {
        Ok(url) => url,
        Err(err) => {
            report.broken.push(err);
            return None;
        }
    };
    let mut env = base_env();
    env.extend([
        ("REFSVC_DATABASE__URL", url.clone()),
        ("REFSVC_DATABASE__WAIT_TIMEOUT_MS", "500".to_owned()),
        ("REFSVC_DATABASE__CREATE_TIMEOUT_MS", "500".to_owned()),
    ]);
    Some((cluster, url, env))
}

/// A normal client's `GET /v1/items` on a new connection must answer 200
/// within `within` (it queues behind stalled clients holding every slot);
/// records in `report` why not, naming `holders`.
pub(crate) async fn served_behind(
    report: &mut Report,
    addr: std::net::SocketAddr,
    within: std::time::Duration,
    holders: &str,
) {
    let normal = async {
        let mut conn = crate::client::Conn::open(addr)
            .await
            .map_err(|err| format!("{err:?}"))?;
        conn.get("/v1/items")
            .await
            .map_err(|err| format!("{err:?}"))
    };
    match tokio::time::timeout(within, normal).await {
        Ok(Ok(reply)) => report.check(reply.status == 200, || {
            format!("the normal client got {}", reply.status)
        }),
        Ok(Err(err)) => report
            .broken
            .push(format!("the normal client failed: {err}")),
        Err(_) => report.broken.push(format!(
            "the normal client was not served within {within:?}: {holders} held the slots"
        )),
    }
}

/// Starts the service with `env`, or records in `report` why it did not.
pub(crate) fn start(ctx: &Ctx, env: &[(&str, String)], report: &mut Report) -> Option<Service> {
    Service::start(&ctx.binary, env)
        .map_err(|err| report.broken.push(err))
        .ok()
}
