//! A resilient HTTP client: load balancing, a circuit breaker per upstream,
//! retries within a budget, and a timeout per attempt.
//!
//! ```text
//! cargo run --example resilient-client
//! ```
//!
//! The example starts three upstream servers of its own on 127.0.0.1 (free
//! ports): `healthy` answers in 1 to 3 ms, `slow` takes 60 ms and every
//! fifth time 400 ms, and `failing` answers 503 during an outage that ends
//! halfway through the run. It then sends 600 requests, 200 a second with
//! at most 32 in flight, through this stack (outermost first):
//!
//! ```text
//! retry: 3 attempts at most, retries capped at 20 % of requests (+ 5/s)
//!   └─ balancer: power of two choices on peak-EWMA latency, outlier ejection
//!        └─ per upstream: circuit breaker ─ 150 ms timeout ─ HTTP GET (a client span, traceparent sent)
//! ```
//!
//! Ejections and breaker transitions are printed as they happen; at the
//! end come the attempts each upstream got and how they ended, what the
//! callers saw, and latency percentiles (end to end, retries included). It
//! takes about three seconds.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State as Shared;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use patterns::api::problem::error_for;
use patterns::api::trace_context::{ClientTrace, ClientTraceLayer};
use patterns::error::breaker::{CircuitBreaker, CircuitBreakerLayer, Event, Rejected, State};
use patterns::error::retry::{RetryBudget, RetryLayer, RetryPolicy};
use patterns::error::timeout::TimeoutLayer;
use patterns::error::{Context, Error, Kind, Result};
use patterns::network::balance::{Balancer, Outlier, Strategy};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// Requests sent in all.
const REQUESTS: usize = 600;
/// One request is sent every this often (200 a second).
const PACE: Duration = Duration::from_millis(5);
/// Requests in flight at most; the sender waits while they are all taken.
const IN_FLIGHT: usize = 32;
/// The outage of `failing` ends once this many requests were sent.
const OUTAGE_ENDS_AFTER: usize = REQUESTS / 2;
/// The deadline of each attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(150);

/// The HTTP client, each call a client span whose context goes in the
/// request's `traceparent` (with a trace export set up, every attempt is
/// a span of its own under the caller's).
type HttpClient = ClientTrace<Client<HttpConnector, Empty<Bytes>>>;
/// One upstream behind its breaker and timeout. Boxed, so the balancer has
/// a type to name (and could hold stacks built differently).
type Endpoint = BoxCloneSyncService<(), Bytes, Error>;

#[tokio::main]
async fn main() -> Result<()> {
    let clock = Clock(Instant::now());
    let outage = Arc::new(AtomicBool::new(true));
    let (balancer, upstreams) = balance_upstreams(&outage, clock).await?;
    balancer.on_ejection(move |ejection| {
        clock.say(format_args!(
            "balancer ejects {} for {:?} (ejection {})",
            ejection.endpoint(),
            ejection.duration(),
            ejection.count()
        ));
    });
    let watcher = tokio::spawn(watch_returns(balancer.clone(), clock));

    // Retries go back through the balancer, so a retry usually lands on
    // another upstream. An open breaker's retry-after speaks for its own
    // upstream only, so the policy does not wait for it.
    let budget = Arc::new(RetryBudget::new(0.2, 5, 20));
    let policy = RetryPolicy::builder("upstreams")
        .max_attempts(3)
        .backoff(Duration::from_millis(5), 2.0, Duration::from_millis(50))
        .honour_retry_after(false)
        .budget(budget.clone())
        .build()?;
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(balancer);

    let (mut latencies, failures) = send_requests(service, &outage, clock).await?;
    let elapsed = clock.0.elapsed();
    watcher.abort();

    println!("\nattempts per upstream (a retry is one more attempt):");
    println!(
        "  {:<8} {:>8} {:>5} {:>4} {:>8} {:>9} {:>7}  breaker now",
        "upstream", "attempts", "ok", "5xx", "timeout", "rejected", "opened"
    );
    let mut attempts = 0;
    for upstream in &upstreams {
        let [ok, failed, timeout, rejected] = upstream.tally.outcomes();
        let sent = ok + failed + timeout + rejected;
        attempts += sent;
        println!(
            "  {:<8} {sent:>8} {ok:>5} {failed:>4} {timeout:>8} {rejected:>9} {:>7}  {}",
            upstream.name,
            upstream.tally.opened.load(Ordering::Relaxed),
            upstream.breaker.state()
        );
    }
    println!("  (rejected: by the open breaker, without calling the upstream)");

    println!(
        "\nrequests: {REQUESTS} sent, {} ok, {} failed; {} retries ({} left in the budget)",
        REQUESTS - failures.len(),
        failures.len(),
        attempts.saturating_sub(REQUESTS as u64),
        budget.available(),
    );
    if let Some(first) = failures.first() {
        println!("  first failure: {}", first.report());
    }
    latencies.sort_unstable();
    println!(
        "latency, end to end: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.90)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "finished in {:.2} s ({:.0} requests/s)",
        elapsed.as_secs_f64(),
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// An upstream as the client sees it: its breaker and how its attempts
/// ended.
#[derive(Debug)]
struct Upstream {
    name: &'static str,
    breaker: CircuitBreaker,
    tally: Arc<Tally>,
}

/// Starts the three upstreams and puts each, behind its own circuit
/// breaker and a timeout per attempt, into one balancer.
async fn balance_upstreams(
    outage: &Arc<AtomicBool>,
    clock: Clock,
) -> Result<(Balancer<Endpoint>, Vec<Upstream>)> {
    let client: HttpClient =
        ClientTraceLayer::new().layer(Client::builder(TokioExecutor::new()).build_http());
    // The balancer picks by latency and does not see the breakers' state,
    // so outlier ejection takes an upstream that keeps failing out of
    // rotation (5 failures in a row: 300 ms, doubling on each ejection);
    // its breaker then judges it on the calls it gets when it is back.
    let balancer = Balancer::with_settings(
        Strategy::PeakEwma,
        Outlier::default()
            .consecutive_failures(5)
            .ejection(Duration::from_millis(300), Duration::from_secs(2)),
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    let mut upstreams = Vec::new();
    for (name, behaviour) in [
        ("healthy", Behaviour::Healthy),
        ("slow", Behaviour::Slow),
        ("failing", Behaviour::Failing(outage.clone())),
    ] {
        let addr = start_server(behaviour).await?;
        println!("upstream {name:<8} http://{addr}/");
        let uri: Uri = format!("http://{addr}/")
            .parse()
            .context("making the upstream's URI")?;

        let tally = Arc::new(Tally::default());
        let opened = tally.clone();
        let breaker = CircuitBreaker::builder(name)
            .count_window(20)
            .minimum_calls(10)
            .failure_rate(0.5)
            .open_duration(Duration::from_millis(250))
            .open_backoff(2.0, Duration::from_secs(1))
            .half_open_probes(3)
            .on_event(move |event| {
                if let Event::Transition { from, to } = *event {
                    clock.say(format_args!("breaker {name:<8} {from} -> {to}"));
                    if to == State::Open {
                        opened.opened.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .build()?;

        let http = {
            let client = client.clone();
            service_fn(move |()| http_get(client.clone(), uri.clone()))
        };
        let record = tally.clone();
        let endpoint = ServiceBuilder::new()
            .map_result(move |result: Result<Bytes>| {
                record.record(&result);
                result
            })
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(TimeoutLayer::new(ATTEMPT_TIMEOUT))
            .service(http);
        balancer.add(name, BoxCloneSyncService::new(endpoint), 1);
        upstreams.push(Upstream {
            name,
            breaker,
            tally,
        });
    }
    Ok((balancer, upstreams))
}

/// Sends [`REQUESTS`] requests at a steady pace, at most [`IN_FLIGHT`] at
/// once, ending the outage halfway; returns every request's latency and
/// the errors of those that failed.
async fn send_requests<S>(
    service: S,
    outage: &AtomicBool,
    clock: Clock,
) -> Result<(Vec<Duration>, Vec<Error>)>
where
    S: Service<(), Response = Bytes, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    println!(
        "\nsending {REQUESTS} requests, one every {PACE:?}, at most {IN_FLIGHT} in flight; \
         the outage of `failing` ends after request {OUTAGE_ENDS_AFTER}\n"
    );
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut pace = tokio::time::interval(PACE);
    let mut calls = JoinSet::new();
    for sent in 0..REQUESTS {
        if sent == OUTAGE_ENDS_AFTER {
            outage.store(false, Ordering::Relaxed);
            clock.say(format_args!("upstream failing: outage over"));
        }
        pace.tick().await;
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let service = service.clone();
        calls.spawn(async move {
            let start = Instant::now();
            let result = service.oneshot(()).await;
            drop(slot);
            (start.elapsed(), result)
        });
    }
    let mut latencies = Vec::with_capacity(REQUESTS);
    let mut failures = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let (took, result) = joined.context("a request task panicked")?;
        latencies.push(took);
        if let Err(err) = result {
            failures.push(err);
        }
    }
    Ok((latencies, failures))
}

/// Prints lines stamped with the time since the start.
#[derive(Clone, Copy, Debug)]
struct Clock(Instant);

impl Clock {
    fn say(&self, what: std::fmt::Arguments<'_>) {
        println!("  {:>6.3}s  {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Prints the upstreams the balancer takes back after an ejection (an
/// ejection is reported by its hook; a return is seen by asking the
/// balancer's rotation every 10 ms).
async fn watch_returns<S>(balancer: Balancer<S>, clock: Clock) {
    let mut ejected = HashSet::new();
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        for (name, out) in balancer.endpoints() {
            if out {
                ejected.insert(name);
            } else if ejected.remove(&name) {
                clock.say(format_args!("balancer takes {name} back"));
            }
        }
    }
}

/// How an upstream answers.
#[derive(Debug)]
enum Behaviour {
    /// 200 within 1 to 3 ms.
    Healthy,
    /// 200 after 60 ms; every fifth request after 400 ms.
    Slow,
    /// 503 with `Retry-After: 1` while the flag is set, then 200 in 1 ms.
    Failing(Arc<AtomicBool>),
}

/// An upstream server's state.
#[derive(Debug)]
struct Server {
    behaviour: Behaviour,
    served: AtomicU64,
}

/// Starts an upstream on a free port of 127.0.0.1 and returns its address.
/// It serves until the program ends.
async fn start_server(behaviour: Behaviour) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding an upstream to 127.0.0.1:0")?;
    let addr = listener
        .local_addr()
        .context("reading the upstream's address")?;
    let server = Arc::new(Server {
        behaviour,
        served: AtomicU64::new(0),
    });
    let app = Router::new().route("/", get(answer)).with_state(server);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("upstream {addr} stopped: {err}");
        }
    });
    Ok(addr)
}

async fn answer(Shared(server): Shared<Arc<Server>>) -> Response {
    let n = server.served.fetch_add(1, Ordering::Relaxed);
    let delay = match &server.behaviour {
        Behaviour::Healthy => 1 + n % 3,
        Behaviour::Slow if n % 5 == 4 => 400,
        Behaviour::Slow => 60,
        Behaviour::Failing(outage) if outage.load(Ordering::Relaxed) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "down for maintenance",
            )
                .into_response();
        }
        Behaviour::Failing(_) => 1,
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    "ok".into_response()
}

/// One attempt: `GET uri`, the answer's status turned into an error kind
/// (a 503 is transient: retried, and a failure to the breaker).
async fn http_get(client: HttpClient, uri: Uri) -> Result<Bytes> {
    let request = http::Request::get(uri)
        .body(Empty::new())
        .context("building the request")?;
    let response = client
        .oneshot(request)
        .await
        .map_err(|err| Error::with_source(Kind::Unavailable, "calling the upstream", err))?;
    // The status and Retry-After read back as an error kind (a 503 is
    // transient: retried, and a failure to the breaker and the balancer).
    let error = error_for(response.status(), response.headers());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| Error::with_source(Kind::Unavailable, "reading the answer", err))?
        .to_bytes();
    match error {
        None => Ok(body),
        Some(error) => Err(error),
    }
}

/// How the attempts sent to one upstream ended, and how often its breaker
/// opened.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    timeout: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
}

impl Tally {
    fn record(&self, result: &Result<Bytes>) {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(err) if err.downcast_ref::<Rejected>().is_some() => &self.rejected,
            Err(err) if err.is(Kind::Timeout) => &self.timeout,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Ok, failed, timed out, rejected.
    fn outcomes(&self) -> [u64; 4] {
        [&self.ok, &self.failed, &self.timeout, &self.rejected].map(|c| c.load(Ordering::Relaxed))
    }
}

/// The nearest-rank percentile `p` (0 to 1) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
