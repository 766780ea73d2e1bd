use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;
use tower::util::Oneshot;

use super::stats::{Stats, since};
use super::{EJECTIONS_TOTAL, Ejection, Outlier, Strategy};
use crate::partition::HashRing;

/// The key of a request, for [`Strategy::ConsistentHash`].
pub trait KeyFn<Req> {
    /// The request's key; `None` picks round-robin.
    fn key(&self, req: &Req) -> Option<u64>;
}

impl<Req, F: Fn(&Req) -> u64> KeyFn<Req> for F {
    fn key(&self, req: &Req) -> Option<u64> {
        Some(self(req))
    }
}

/// No request key (every strategy but consistent hashing).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKey;

impl<Req> KeyFn<Req> for NoKey {
    fn key(&self, _: &Req) -> Option<u64> {
        None
    }
}

/// A load balancer; see the [module docs](super). Cloning shares the
/// endpoints and their statistics.
pub struct Balancer<S, K = NoKey> {
    shared: Arc<Shared<S>>,
    key: Arc<K>,
    /// This handle's endpoint made ready by `poll_ready`, for the next call.
    ready: Option<Ready<S>>,
    /// Endpoints picked and not ready yet, kept (their services hold the
    /// wakers `poll_ready` registered) until one is.
    pending: Vec<Ready<S>>,
}

/// An endpoint and the clone of its service being readied or ready.
struct Ready<S> {
    endpoint: Arc<Endpoint<S>>,
    service: S,
}

/// One endpoint: a service, its key and weight, live statistics, and what a
/// finished call needs from its balancer (copied, so a call holds no
/// reference to the balancer itself).
#[derive(Debug)]
pub(crate) struct Endpoint<S> {
    pub(crate) key: String,
    pub(crate) service: S,
    pub(crate) weight: u32,
    /// Shared with the endpoint that replaces this one under the same key
    /// (a discovery refresh keeps what the balancer learnt).
    pub(crate) stats: Arc<Stats>,
    /// Whether calls are timed (P2C's peak EWMA); other strategies skip
    /// the clock.
    pub(crate) timed: bool,
    /// 1 / tau, the EWMA time constant, in nanoseconds.
    pub(crate) per_ns: f64,
    /// The least latency a failure counts as, in nanoseconds.
    pub(crate) penalty_ns: u64,
    pub(crate) outlier: Outlier,
    /// The latest clock reading of any finished call of the balancer
    /// (nanoseconds since the epoch): the "now" P2C decays estimates to,
    /// without reading the clock itself.
    pub(crate) recent: std::sync::Arc<AtomicU64>,
    /// The balancer, reached only to eject this endpoint.
    pub(crate) owner: std::sync::Weak<Shared<S>>,
}

/// Calls in flight to `endpoint`: counted in its statistics, which an
/// endpoint refreshed under the same key keeps, from `call` to the end (or
/// drop) of the response future; an endpoint merely readied for a call
/// that has not come is not counted.
#[inline]
pub(crate) fn in_flight<S>(endpoint: &Arc<Endpoint<S>>) -> usize {
    endpoint.stats.in_flight.load(Ordering::Relaxed)
}

pub(crate) struct Shared<S> {
    strategy: Strategy,
    outlier: Outlier,
    /// 1 / tau (the EWMA time constant) in nanoseconds.
    per_ns: f64,
    penalty: Duration,
    epoch: Instant,
    /// Shared with every endpoint: see [`Endpoint::recent`].
    recent: Arc<AtomicU64>,
    set: RwLock<Set<S>>,
    turn: AtomicUsize,
    dice: AtomicU64,
    /// The latest end of any ejection (nanoseconds since `epoch`); 0 when
    /// none was made since it last passed.
    ejected_until_max: AtomicU64,
    /// Called after each ejection (rare: a lock is fine).
    on_ejection: RwLock<Option<EjectionHook>>,
    /// Held while an ejection is decided and made.
    ejecting: Mutex<()>,
    /// The slow-start window in nanoseconds (0: off).
    slow_start: AtomicU64,
    /// When the last endpoint to join leaves slow start (nanoseconds since
    /// `epoch`); 0 when none is ramping, so picks read no clock for it.
    ramping_until: AtomicU64,
    ejections: metrics::Counter,
}

type EjectionHook = Arc<dyn Fn(&Ejection<'_>) + Send + Sync>;

struct Set<S> {
    endpoints: Vec<Arc<Endpoint<S>>>,
    ring: HashRing<String>,
    index: HashMap<String, usize>,
    /// Smooth weighted round-robin: each endpoint's current weight.
    current: Mutex<Vec<i64>>,
}

impl<S, K> Clone for Balancer<S, K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            key: self.key.clone(),
            ready: None,
            pending: Vec::new(),
        }
    }
}

impl<S> Balancer<S> {
    /// An empty balancer using `strategy`, with default outlier ejection,
    /// a 10 s EWMA time constant and a 1 s failure penalty.
    pub fn new(strategy: Strategy) -> Self {
        Self::with_settings(
            strategy,
            Outlier::default(),
            Duration::from_secs(10),
            Duration::from_secs(1),
        )
    }

    /// An empty balancer with every setting given.
    pub fn with_settings(
        strategy: Strategy,
        outlier: Outlier,
        tau: Duration,
        failure_penalty: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                strategy,
                outlier,
                per_ns: 1.0 / (tau.as_secs_f64() * 1e9).max(1.0),
                penalty: failure_penalty,
                epoch: Instant::now(),
                recent: Arc::new(AtomicU64::new(0)),
                set: RwLock::new(Set {
                    endpoints: Vec::new(),
                    ring: HashRing::new(150),
                    index: HashMap::new(),
                    current: Mutex::new(Vec::new()),
                }),
                turn: AtomicUsize::new(0),
                dice: AtomicU64::new(0x853c_49e6_748f_ea9b),
                ejected_until_max: AtomicU64::new(0),
                on_ejection: RwLock::new(None),
                ejecting: Mutex::new(()),
                slow_start: AtomicU64::new(0),
                ramping_until: AtomicU64::new(0),
                ejections: metrics::counter!(EJECTIONS_TOTAL),
            }),
            key: Arc::new(NoKey),
            ready: None,
            pending: Vec::new(),
        }
    }

    /// Uses `key` to find each request's key (for [`Strategy::ConsistentHash`]).
    pub fn with_key<F>(self, key: F) -> Balancer<S, F> {
        Balancer {
            shared: self.shared,
            key: Arc::new(key),
            ready: None,
            pending: Vec::new(),
        }
    }
}

impl<S, K> Balancer<S, K> {
    /// Adds the endpoint `key` with a relative `weight` (used by weighted
    /// round-robin; at least 1), or replaces its service and weight if it
    /// is there: what the balancer learnt about it (latency, failures, an
    /// ejection, its slow start) stays, so a discovery refresh that lists
    /// it again changes nothing.
    ///
    /// A new endpoint starts with the mean latency estimate of the others
    /// (it is neither the fastest nor the slowest until it answers) and,
    /// with [`slow_start`](Self::slow_start), a small share of the load.
    pub fn add(&self, key: impl Into<String>, service: S, weight: u32) {
        let key = key.into();
        let mut set = self
            .shared
            .set
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let stats = match set.index.get(&key) {
            Some(&i) => set.endpoints[i].stats.clone(),
            None => {
                let now = self.shared.now_ns();
                let known: Vec<f64> = set
                    .endpoints
                    .iter()
                    .map(|e| e.stats.estimate_ns())
                    .collect();
                let initial = if known.is_empty() {
                    Duration::from_millis(1)
                } else {
                    Duration::from_nanos((known.iter().sum::<f64>() / known.len() as f64) as u64)
                };
                let window = self.shared.slow_start.load(Ordering::Relaxed);
                if window > 0 {
                    self.shared
                        .ramping_until
                        .fetch_max(now.saturating_add(window), Ordering::AcqRel);
                }
                Arc::new(Stats::new(initial, self.shared.epoch, now))
            }
        };
        let endpoint = Arc::new(Endpoint {
            key: key.clone(),
            service,
            weight: weight.max(1),
            stats,
            timed: self.shared.strategy == Strategy::PeakEwma,
            per_ns: self.shared.per_ns,
            penalty_ns: u64::try_from(self.shared.penalty.as_nanos()).unwrap_or(u64::MAX),
            outlier: self.shared.outlier,
            recent: self.shared.recent.clone(),
            owner: Arc::downgrade(&self.shared),
        });
        match set.index.get(&key) {
            Some(&i) => set.endpoints[i] = endpoint,
            None => {
                let at = set.endpoints.len();
                set.index.insert(key.clone(), at);
                set.endpoints.push(endpoint);
                set.ring.add(key);
            }
        }
        let n = set.endpoints.len();
        *set.current.lock().unwrap_or_else(PoisonError::into_inner) = vec![0; n];
    }

    /// Removes the endpoint `key`; calls already sent to it finish.
    pub fn remove(&self, key: &str) -> bool {
        let mut set = self
            .shared
            .set
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(i) = set.index.remove(key) else {
            return false;
        };
        set.endpoints.remove(i);
        set.ring.remove(&key.to_owned());
        for index in set.index.values_mut() {
            if *index > i {
                *index -= 1;
            }
        }
        let n = set.endpoints.len();
        *set.current.lock().unwrap_or_else(PoisonError::into_inner) = vec![0; n];
        true
    }

    /// Ramps each endpoint that joins from now on from 10 % of its share of
    /// the load to all of it over `window` (Envoy's slow start), so a fresh
    /// instance (cold caches, a JIT warming up) is not handed a burst.
    /// Applies to peak EWMA, least pending and weighted round-robin; plain
    /// round-robin stays strictly in turn. Off (zero) by default.
    pub fn slow_start(&self, window: Duration) {
        self.shared.slow_start.store(
            u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Follows `discover`, tower's stream of endpoint changes: each
    /// `Change::Insert(key, service)` adds (or refreshes) an endpoint of
    /// weight 1, each `Change::Remove(key)` removes one. Runs as a task on
    /// the current tokio runtime until the stream ends or fails (its error,
    /// converted) or the balancer is dropped.
    pub fn follow<D, Key, E>(&self, discover: D) -> tokio::task::JoinHandle<Result<(), Error>>
    where
        D: futures_util::Stream<Item = Result<tower::discover::Change<Key, S>, E>> + Send + 'static,
        Key: Into<String> + Send + 'static,
        E: Into<Error>,
        S: Send + Sync + 'static,
    {
        use futures_util::StreamExt;
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut discover = std::pin::pin!(discover);
            while let Some(change) = discover.next().await {
                let Some(shared) = shared.upgrade() else {
                    return Ok(()); // the balancer is gone
                };
                let balancer = Balancer {
                    shared,
                    key: Arc::new(NoKey),
                    ready: None,
                    pending: Vec::new(),
                };
                match change.map_err(Into::into)? {
                    tower::discover::Change::Insert(key, service) => {
                        balancer.add(key, service, 1);
                    }
                    tower::discover::Change::Remove(key) => {
                        balancer.remove(&key.into());
                    }
                }
            }
            Ok(())
        })
    }

    /// Calls `hook` after each ejection, with the endpoint, how long it is
    /// out and how many times it has been ejected (replacing any earlier
    /// hook). It runs on the task whose call failed, after the balancer's
    /// locks are released: it may use the balancer, and should be quick.
    /// Each ejection is also logged (warn, with the endpoint) and counted
    /// in `balancer_ejections_total` (no endpoint label: endpoints come and
    /// go, and labels must stay bounded).
    pub fn on_ejection(&self, hook: impl Fn(&Ejection<'_>) + Send + Sync + 'static) {
        *self
            .shared
            .on_ejection
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
    }

    /// The endpoints' keys, and whether each is ejected now.
    pub fn endpoints(&self) -> Vec<(String, bool)> {
        let now = self.shared.now_ns();
        let set = self
            .shared
            .set
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        set.endpoints
            .iter()
            .map(|e| (e.key.clone(), e.stats.is_ejected(now)))
            .collect()
    }
}

impl<S> Shared<S> {
    fn now_ns(&self) -> u64 {
        since(self.epoch, Instant::now())
    }

    fn roll(&self) -> u64 {
        thread_local! {
            static STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        STATE.with(|state| {
            // SplitMix64, per thread: no shared write per pick.
            let mut x = state.get();
            if x == 0 {
                x = self
                    .dice
                    .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                    | 1;
            }
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    }

    /// Index of the endpoint for a request with `key`, as the strategy
    /// picks among the usable endpoints.
    fn pick(&self, set: &Set<S>, key: Option<u64>) -> Option<usize> {
        if set.endpoints.is_empty() {
            return None;
        }
        let screen = self.screen(set);
        match self.strategy {
            Strategy::ConsistentHash => self.pick_by_hash(set, &screen, key),
            Strategy::LeastPending => self.pick_least_pending(set, &screen),
            Strategy::PeakEwma => self.pick_peak_ewma(set, &screen),
            Strategy::WeightedRoundRobin => Self::pick_weighted(set, &screen),
            _ => self.pick_in_turn(set, &screen),
        }
    }

    /// Which endpoints may be picked now, and the share of load each takes.
    /// Without a current ejection or slow start, no clock is read and
    /// nothing is scanned.
    fn screen(&self, set: &Set<S>) -> Screen {
        // Ejected endpoints are skipped, unless all are (then all serve).
        let until = self.ejected_until_max.load(Ordering::Acquire);
        let now = if until == 0 { 0 } else { self.now_ns() };
        if until != 0 && now >= until {
            let _ = self.ejected_until_max.compare_exchange(
                until,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        let screening = now < until && !set.endpoints.iter().all(|e| e.stats.is_ejected(now));
        // Slow start: the share of load each endpoint takes now (1 for all
        // when none is ramping).
        let ramping = self.ramping_until.load(Ordering::Acquire);
        let window = if ramping == 0 {
            0
        } else {
            self.slow_start.load(Ordering::Relaxed)
        };
        let ramp_now = if window == 0 {
            0
        } else if now != 0 {
            now
        } else {
            self.now_ns()
        };
        if window != 0 && ramp_now >= ramping {
            let _ = self.ramping_until.compare_exchange(
                ramping,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        Screen {
            now,
            screening,
            window,
            ramp_now,
        }
    }

    /// The next usable endpoint in turn.
    fn pick_in_turn(&self, set: &Set<S>, screen: &Screen) -> Option<usize> {
        let n = set.endpoints.len();
        (0..n)
            .map(|_| self.turn.fetch_add(1, Ordering::Relaxed) % n)
            .find(|&i| screen.usable(set, i))
    }

    /// The owner of `key` on the ring. An ejected owner's keys go to the
    /// ring's next usable node: the one that would own them without it,
    /// the same in every process. Without a key: in turn.
    fn pick_by_hash(&self, set: &Set<S>, screen: &Screen, key: Option<u64>) -> Option<usize> {
        key.and_then(|k| {
            set.ring.get_where(&k, |node| {
                set.index.get(node).is_some_and(|&i| screen.usable(set, i))
            })
        })
        .and_then(|owner| set.index.get(owner).copied())
        .or_else(|| self.pick_in_turn(set, screen))
    }

    /// The usable endpoint with the fewest requests in flight for its share
    /// of load, looking from a rotating start (ties go round).
    fn pick_least_pending(&self, set: &Set<S>, screen: &Screen) -> Option<usize> {
        let n = set.endpoints.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let pending = |i: usize| (in_flight(&set.endpoints[i]) + 1) as f64 / screen.ramp(set, i);
        (0..n)
            .map(|j| (start + j) % n)
            .filter(|&i| screen.usable(set, i))
            .min_by(|&a, &b| pending(a).total_cmp(&pending(b)))
    }

    /// The less loaded of two endpoints drawn at random (peak EWMA of the
    /// latency times the requests in flight).
    fn pick_peak_ewma(&self, set: &Set<S>, screen: &Screen) -> Option<usize> {
        let n = set.endpoints.len();
        let a = below(self.roll(), n);
        // A second, different endpoint (the same one when alone).
        let b = if n == 1 {
            a
        } else {
            let b = a + 1 + below(self.roll(), n - 1);
            if b >= n { b - n } else { b }
        };
        match (screen.usable(set, a), screen.usable(set, b)) {
            (true, true) if a != b => {
                let recent = self.recent.load(Ordering::Relaxed);
                let load = |i: usize| {
                    let e = &set.endpoints[i];
                    let load = e.stats.load(recent, self.per_ns, in_flight(e));
                    if screen.window == 0 {
                        load
                    } else {
                        load / screen.ramp(set, i)
                    }
                };
                Some(if load(a) <= load(b) { a } else { b })
            }
            (true, _) => Some(a),
            (false, true) => Some(b),
            (false, false) => self.pick_in_turn(set, screen),
        }
    }

    /// Smooth weighted round robin (nginx's): each usable endpoint gains its
    /// weight, the one with most is picked and pays back the total.
    fn pick_weighted(set: &Set<S>, screen: &Screen) -> Option<usize> {
        let mut current = set.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for i in (0..set.endpoints.len()).filter(|&i| screen.usable(set, i)) {
            // Weights in sixteenths, so that slow start can scale them.
            let weight = if screen.window == 0 {
                16 * i64::from(set.endpoints[i].weight)
            } else {
                ((16.0 * f64::from(set.endpoints[i].weight) * screen.ramp(set, i)).round() as i64)
                    .max(1)
            };
            current[i] += weight;
            total += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }

    /// Ejects `endpoint` if the share allows.
    fn eject(&self, endpoint: &Endpoint<S>) {
        // One ejection decision at a time: concurrent failures must not each
        // see room under the share, or eject the same endpoint twice.
        let deciding = self.ejecting.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.now_ns();
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        let total = set.endpoints.len();
        let ejected = set
            .endpoints
            .iter()
            .filter(|e| e.stats.is_ejected(now))
            .count();
        if endpoint.stats.is_ejected(now)
            || (ejected + 1) as f64 > self.outlier.max_ejected_share * total as f64
        {
            return;
        }
        let n = endpoint.stats.ejections.fetch_add(1, Ordering::AcqRel);
        let duration = self.outlier.duration(n);
        let until = now.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        endpoint.stats.ejected_until.store(until, Ordering::Release);
        self.ejected_until_max.fetch_max(until, Ordering::AcqRel);
        endpoint
            .stats
            .consecutive_failures
            .store(0, Ordering::Release);
        drop(set);
        drop(deciding);
        tracing::warn!(endpoint = %endpoint.key, ?duration, "endpoint ejected");
        self.ejections.increment(1);
        let hook = self
            .on_ejection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook(&Ejection::new(&endpoint.key, duration, n + 1));
        }
    }
}

impl<S, K, Req> Service<Req> for Balancer<S, K>
where
    S: Service<Req> + Clone,
    S::Error: Into<Error>,
    K: KeyFn<Req>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, Req>;

    /// Picks an endpoint and readies it: an endpoint that is not ready
    /// (its own limit reached, its connection not up) is passed over for
    /// another; when none is, this waits for the first to be (the
    /// endpoints' own back pressure reaches the caller). An endpoint
    /// whose readiness fails counts a failure (and may be ejected).
    /// With [`Strategy::ConsistentHash`] the endpoint depends on the
    /// request, so it is picked and readied in `call`.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let Self {
            shared,
            ready,
            pending,
            ..
        } = self;
        if ready.is_some() || shared.strategy == Strategy::ConsistentHash {
            return Poll::Ready(Ok(()));
        }
        // Endpoints whose readiness failed; their failures are recorded
        // once the set's lock is released (a failure may eject, and an
        // ejection's hook may change the set).
        let mut failed: Vec<Arc<Endpoint<S>>> = Vec::new();
        let outcome = {
            let set = shared.set.read().unwrap_or_else(PoisonError::into_inner);
            // Endpoints picked before: drop those removed or replaced
            // since, then the first now ready wins.
            pending.retain(|p| {
                set.index
                    .get(&p.endpoint.key)
                    .is_some_and(|&i| Arc::ptr_eq(&set.endpoints[i], &p.endpoint))
            });
            let mut found = None;
            let mut i = 0;
            while i < pending.len() {
                match pending[i].service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        found = Some(pending.swap_remove(i));
                        break;
                    }
                    Poll::Ready(Err(_)) => failed.push(pending.swap_remove(i).endpoint),
                    Poll::Pending => i += 1,
                }
            }
            // Then the strategy's pick; if it is not ready, every other
            // usable endpoint in turn, so a ready one is never missed.
            if found.is_none() && !set.endpoints.is_empty() {
                let n = set.endpoints.len();
                let first = shared.pick(&set, None);
                let mut try_endpoint = |i: usize| {
                    let endpoint = &set.endpoints[i];
                    if pending.iter().any(|p| Arc::ptr_eq(&p.endpoint, endpoint))
                        || failed.iter().any(|f| Arc::ptr_eq(f, endpoint))
                    {
                        return None;
                    }
                    let mut service = endpoint.service.clone();
                    match service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => Some(Ready {
                            endpoint: endpoint.clone(),
                            service,
                        }),
                        Poll::Ready(Err(_)) => {
                            failed.push(endpoint.clone());
                            None
                        }
                        Poll::Pending => {
                            pending.push(Ready {
                                endpoint: endpoint.clone(),
                                service,
                            });
                            None
                        }
                    }
                };
                found = first.and_then(&mut try_endpoint);
                if found.is_none() {
                    // Not ready: every other usable endpoint in turn (the
                    // clock is read only on this slow path).
                    let now = shared.now_ns();
                    let all_out = set.endpoints.iter().all(|e| e.stats.is_ejected(now));
                    let start = first.unwrap_or(0);
                    found = (1..=n)
                        .map(|k| (start + k) % n)
                        .filter(|&i| Some(i) != first)
                        .filter(|&i| all_out || !set.endpoints[i].stats.is_ejected(now))
                        .find_map(&mut try_endpoint);
                }
            }
            found
        };
        for endpoint in &failed {
            not_ready(endpoint);
        }
        if let Some(found) = outcome {
            pending.clear();
            *ready = Some(found);
            return Poll::Ready(Ok(()));
        }
        if pending.is_empty() {
            // No endpoint, or none could be readied: the call picks again
            // and answers for itself (unavailable, or the endpoint's error).
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        if let Some(Ready {
            endpoint,
            mut service,
        }) = self.ready.take()
        {
            let start = if endpoint.timed { shared.now_ns() } else { 0 };
            return ResponseFuture {
                call: Call::Called {
                    future: service.call(req),
                },
                tracking: Some(Tracking::new(endpoint, start)),
                error: None,
            };
        }
        // Keyed requests (and calls made without `poll_ready`): pick now,
        // ready the endpoint in the response future.
        let endpoint = {
            let set = shared.set.read().unwrap_or_else(PoisonError::into_inner);
            shared
                .pick(&set, self.key.key(&req))
                .map(|i| set.endpoints[i].clone())
        };
        let Some(endpoint) = endpoint else {
            return ResponseFuture {
                call: Call::Done,
                tracking: None,
                error: Some(Error::new(Kind::Unavailable, "no endpoint to balance to")),
            };
        };
        let future = Oneshot::new(endpoint.service.clone(), req);
        let start = if endpoint.timed { shared.now_ns() } else { 0 };
        ResponseFuture {
            call: Call::Oneshot { future },
            tracking: Some(Tracking::new(endpoint, start)),
            error: None,
        }
    }
}

/// An endpoint whose readiness failed: a failure, counted as one with no
/// latency (so the failure penalty).
fn not_ready<S>(endpoint: &Endpoint<S>) {
    let now = endpoint.stats.since_epoch(Instant::now());
    finished(endpoint, true, now);
}

/// A uniform index below `n` from 64 random bits: a multiply and a shift
/// (Lemire's reduction) instead of a division; the bias is at most
/// `n / 2^64`.
#[inline]
fn below(random: u64, n: usize) -> usize {
    ((u128::from(random) * n as u128) >> 64) as usize
}

/// A finished call reports back: latency, failure, maybe an ejection.
/// `start` is when it was sent, in nanoseconds since the epoch.
/// Only P2C times calls; the other strategies read the clock only when
/// the failure-rate rule needs it.
fn finished<S>(endpoint: &Endpoint<S>, failed: bool, start: u64) {
    let timed = endpoint.timed;
    let now = if timed || endpoint.outlier.failure_rate.is_some() {
        endpoint.stats.since_epoch(Instant::now())
    } else {
        0
    };
    if timed {
        let rtt = now.saturating_sub(start);
        let rtt = if failed {
            rtt.max(endpoint.penalty_ns)
        } else {
            rtt
        };
        endpoint.stats.observe(rtt, now, endpoint.per_ns);
        // Read before written: the line is shared by every endpoint's calls.
        if now > endpoint.recent.load(Ordering::Relaxed) {
            endpoint.recent.store(now, Ordering::Relaxed);
        }
    }
    if endpoint.stats.record(failed, now, &endpoint.outlier)
        && let Some(balancer) = endpoint.owner.upgrade()
    {
        balancer.eject(endpoint);
    }
}

/// A call in flight, counted in its endpoint's statistics (see
/// [`in_flight`]) until the response future is done or dropped.
struct Tracking<S> {
    endpoint: Arc<Endpoint<S>>,
    /// When the call was sent, in nanoseconds since the balancer's epoch.
    start: u64,
}

impl<S> Tracking<S> {
    fn new(endpoint: Arc<Endpoint<S>>, start: u64) -> Self {
        endpoint.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self { endpoint, start }
    }
}

impl<S> Drop for Tracking<S> {
    fn drop(&mut self) {
        self.endpoint
            .stats
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// The response future of [`Balancer`].
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        call: Call<S, Req>,
        tracking: Option<Tracking<S>>,
        error: Option<Error>,
    }
}

pin_project! {
    #[project = CallProj]
    enum Call<S, Req>
    where
        S: Service<Req>,
    {
        // An endpoint readied by the balancer's `poll_ready`, called.
        Called { #[pin] future: S::Future },
        // An endpoint picked in `call`, readied here.
        Oneshot { #[pin] future: Oneshot<S, Req> },
        Done,
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<Error>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(error) = this.error.take() {
            return Poll::Ready(Err(error));
        }
        let result = match this.call.as_mut().project() {
            CallProj::Called { future } => ready!(future.poll(cx)),
            CallProj::Oneshot { future } => ready!(future.poll(cx)),
            CallProj::Done => panic!("ResponseFuture polled after completion"),
        }
        .map_err(Into::into);
        this.call.set(Call::Done);
        if let Some(tracking) = this.tracking.take() {
            let failed = result
                .as_ref()
                .err()
                .is_some_and(|e| !e.kind().is_caller_fault());
            finished(&tracking.endpoint, failed, tracking.start);
        }
        Poll::Ready(result)
    }
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, K> fmt::Debug for Balancer<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("strategy", &self.shared.strategy)
            .field("endpoints", &self.endpoints())
            .finish_non_exhaustive()
    }
}

/// What a pick may choose from now: whether ejected endpoints are
/// skipped (some are ejected, not all), and the slow start's window.
struct Screen {
    /// The clock when an ejection is current, else 0.
    now: u64,
    screening: bool,
    /// The slow-start window (0: no endpoint is ramping up).
    window: u64,
    /// The clock when an endpoint is ramping up, else 0.
    ramp_now: u64,
}

impl Screen {
    /// Whether endpoint `i` may be picked.
    fn usable<S>(&self, set: &Set<S>, i: usize) -> bool {
        !self.screening || !set.endpoints[i].stats.is_ejected(self.now)
    }

    /// The share of load endpoint `i` takes (1 unless it is ramping up).
    fn ramp<S>(&self, set: &Set<S>, i: usize) -> f64 {
        set.endpoints[i].stats.ramp(self.ramp_now, self.window)
    }
}
