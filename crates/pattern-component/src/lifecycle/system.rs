//! Building a system and starting it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::order::start_order;
use super::plan::{ComponentConfig, ComponentState, Entry, Plan, Shared};
use super::report::{StopReason, StopReport};
use super::supervisor::Supervisor;
use crate::component::Component;
use crate::health::{Health, SystemHealth};
use crate::ports::{Ports, check_conflicts};
use crate::supervision::{Intensity, RestartStrategy};

/// Gauge of each component's health ([`Status::gauge_value`](crate::health::Status::gauge_value)), labelled `component`.
pub const HEALTH_GAUGE: &str = "component_health";
/// Gauge of the system's readiness: 1 ready, 0 not (as `/health/ready`
/// answers).
pub const READY_GAUGE: &str = "system_ready";
/// Gauge of the system's liveness: 1 live, 0 not (as `/health/live`
/// answers).
pub const LIVE_GAUGE: &str = "system_live";

/// Assembles a [`System`]; start with [`System::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`start_timeout`](Self::start_timeout) (per component) | 30 s |
/// | [`stop_timeout`](Self::stop_timeout) (per component) | 10 s, or what the component needs ([`Component::stop_timeout`](crate::component::Component::stop_timeout)) |
/// | [`start_all_timeout`](Self::start_all_timeout) (all starts) | 120 s |
/// | [`stop_all_timeout`](Self::stop_all_timeout) (all stops) | 60 s |
/// | [`strategy`](Self::strategy) | one for one |
/// | [`intensity`](Self::intensity) | 5 restarts in 60 s |
/// | [`restart_backoff`](Self::restart_backoff) | 100 ms, doubling, at most 10 s |
#[must_use]
pub struct SystemBuilder {
    components: Vec<(Arc<dyn Component>, ComponentConfig)>,
    start_timeout: Duration,
    stop_timeout: Duration,
    start_all_timeout: Duration,
    stop_all_timeout: Duration,
    strategy: RestartStrategy,
    intensity: Intensity,
    backoff: (Duration, Duration),
    health: Option<HealthHandle>,
}

impl std::fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.components.iter().map(|(c, _)| c.name()).collect();
        f.debug_struct("SystemBuilder")
            .field("components", &names)
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .finish_non_exhaustive()
    }
}

impl SystemBuilder {
    /// Adds a component with default options.
    pub fn component(self, component: impl Component) -> Self {
        self.component_with(component, ComponentConfig::default())
    }

    /// Adds a component with its own options.
    pub fn component_with(self, component: impl Component, options: ComponentConfig) -> Self {
        self.component_shared(Arc::new(component), options)
    }

    /// Adds a component the caller keeps a handle on.
    pub fn component_shared(
        mut self,
        component: Arc<dyn Component>,
        options: ComponentConfig,
    ) -> Self {
        self.components.push((component, options));
        self
    }

    /// How long each component may take to start, unless its options say.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How long each component may take to stop, unless its options say.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// How long starting every component may take in all.
    pub fn start_all_timeout(mut self, timeout: Duration) -> Self {
        self.start_all_timeout = timeout;
        self
    }

    /// How long stopping every component may take in all; components still
    /// to stop when it runs out are abandoned.
    pub fn stop_all_timeout(mut self, timeout: Duration) -> Self {
        self.stop_all_timeout = timeout;
        self
    }

    /// Which components restart together.
    pub fn strategy(mut self, strategy: RestartStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The restart limit past which the system shuts down.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    /// The first restart waits `min`, the next ones twice as long each
    /// time, at most `max`.
    pub fn restart_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max.max(min));
        self
    }

    /// Makes `handle` (from [`HealthHandle::detached`]) report this
    /// system's health once built. This breaks the circle where a component
    /// (an HTTP server) serves health routes about the system it belongs to:
    /// build the routes from a detached handle, then attach it here.
    pub fn health_handle(mut self, handle: &HealthHandle) -> Self {
        self.health = Some(handle.clone());
        self
    }

    /// Checks the system: unique names, known dependencies, no cycle, no
    /// port conflict. Fails with [`Kind::InvalidInput`] naming the
    /// components at fault, or [`Kind::Conflict`] if the handle given to
    /// [`health_handle`](Self::health_handle) already reports another
    /// system.
    pub fn build(self) -> Result<System, Error> {
        let nodes: Vec<(String, Vec<String>)> = self
            .components
            .iter()
            .map(|(c, _)| (c.name().to_owned(), c.dependencies()))
            .collect();
        let order = start_order(&nodes)?;
        let mut slots: Vec<Option<(Arc<dyn Component>, ComponentConfig)>> =
            self.components.into_iter().map(Some).collect();
        let entries: Vec<Entry> = order
            .into_iter()
            .filter_map(|i| slots[i].take())
            .map(|(component, options)| Entry {
                name: Arc::from(component.name()),
                ports: component.ports(),
                component,
                options,
            })
            .collect();
        let declared: Vec<(String, Vec<crate::ports::PortSpec>)> = entries
            .iter()
            .map(|e| (e.name.to_string(), e.ports.clone()))
            .collect();
        check_conflicts(&declared)?;
        let plan = Arc::new(Plan {
            entries,
            start_timeout: self.start_timeout,
            stop_timeout: self.stop_timeout,
            start_all_timeout: self.start_all_timeout,
            stop_all_timeout: self.stop_all_timeout,
            strategy: self.strategy,
            intensity: self.intensity,
            backoff: self.backoff,
        });
        let shared = Arc::new(Shared::new(&plan));
        let health = self.health.unwrap_or_else(HealthHandle::detached);
        health
            .bound
            .set(Bound {
                plan: plan.clone(),
                shared: shared.clone(),
            })
            .map_err(|_| {
                Error::new(
                    Kind::Conflict,
                    "the health handle already reports another system",
                )
            })?;
        Ok(System {
            plan,
            shared,
            health,
        })
    }
}

/// A validated set of components, ready to start; see the
/// [module docs](super).
pub struct System {
    pub(crate) plan: Arc<Plan>,
    shared: Arc<Shared>,
    health: HealthHandle,
}

impl System {
    /// Starts assembling a system.
    pub fn builder() -> SystemBuilder {
        SystemBuilder {
            components: Vec::new(),
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            start_all_timeout: Duration::from_secs(120),
            stop_all_timeout: Duration::from_secs(60),
            strategy: RestartStrategy::default(),
            intensity: Intensity::default(),
            backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            health: None,
        }
    }

    /// A handle reading the system's health, before and after it starts.
    pub fn health_handle(&self) -> HealthHandle {
        self.health.clone()
    }

    /// The component names in start order.
    pub fn start_order(&self) -> Vec<&str> {
        self.plan.entries.iter().map(|e| &*e.name).collect()
    }

    /// Binds every declared port, then starts the components in dependency
    /// order. If one fails (or times out), those already started are
    /// stopped in reverse order and the error names the component and the
    /// cause.
    pub async fn start(self) -> Result<RunningSystem, Error> {
        let shared = self.shared.clone();
        let ports = Ports::default();
        let shutdown = CancellationToken::new();
        let mut supervisor = Supervisor::new(
            self.plan.clone(),
            shared.clone(),
            ports.clone(),
            shutdown.clone(),
        );
        supervisor.start_all().await?;
        let task = tokio::spawn(supervisor.run());
        Ok(RunningSystem {
            plan: self.plan,
            shared,
            ports,
            shutdown,
            task,
            health: self.health,
        })
    }

    /// Starts the system, runs it until SIGINT or SIGTERM (or until the
    /// supervisor escalates), then stops it and returns the summary.
    pub async fn run(self) -> Result<StopReport, Error> {
        let running = self.start().await?;
        Ok(running.until_signal().await)
    }
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("start_order", &self.start_order())
            .finish_non_exhaustive()
    }
}

/// A started system; see [`System::start`].
///
/// Dropping it does not stop the system: call [`stop`](Self::stop), or
/// cancel its [`stop_token`](Self::stop_token) and await
/// [`stopped`](Self::stopped).
pub struct RunningSystem {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    ports: Ports,
    shutdown: CancellationToken,
    task: JoinHandle<StopReport>,
    health: HealthHandle,
}

impl RunningSystem {
    /// The real address of every bound port.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The real address `component` listens on under `port`.
    pub fn addr(&self, component: &str, port: &str) -> Option<SocketAddr> {
        self.ports.addr(component, port)
    }

    /// Cancel this token to stop the system (from a handler, another task...).
    pub fn stop_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Each component's state, in start order.
    pub fn states(&self) -> Vec<(String, ComponentState)> {
        let states = self
            .shared
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.plan
            .entries
            .iter()
            .zip(states.iter())
            .map(|(e, s)| (e.name.to_string(), s.clone()))
            .collect()
    }

    /// Liveness and readiness over every component. A component that is not
    /// running counts as failing. Changes since the last call are recorded
    /// in the `component_health` gauge and logged; the answer is recorded
    /// in the `system_ready` and `system_live` gauges.
    pub fn health(&self) -> SystemHealth {
        self.health_handle().health()
    }

    /// A handle reading this system's health, for health routes.
    pub fn health_handle(&self) -> HealthHandle {
        self.health.clone()
    }

    /// Waits until the system stops (its token cancelled, or the supervisor
    /// escalated) and returns the summary.
    pub async fn stopped(self) -> StopReport {
        match self.task.await {
            Ok(summary) => summary,
            Err(join) => StopReport {
                reason: StopReason::Escalated(format!("the supervisor task ended: {join}")),
                components: Vec::new(),
                took: Duration::ZERO,
            },
        }
    }

    /// Stops the system: components in reverse start order, each within its
    /// stop timeout, all within the stop-all timeout.
    pub async fn stop(self) -> StopReport {
        self.shutdown.cancel();
        self.stopped().await
    }

    /// Runs until SIGINT or SIGTERM (or an escalation), then stops. The
    /// signal handlers are installed by this call, before the future is
    /// polled.
    pub fn until_signal(self) -> impl std::future::Future<Output = StopReport> + Send {
        // Listening from now: a signal before the first poll is not lost.
        let signal = super::stop_signal();
        async move {
            let token = self.shutdown.clone();
            let shared = self.shared.clone();
            tokio::select! {
                () = signal => {
                    shared.reason.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(StopReason::Signal);
                    token.cancel();
                }
                () = token.cancelled() => {}
            }
            self.stopped().await
        }
    }
}

impl std::fmt::Debug for RunningSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSystem")
            .field("states", &self.states())
            .finish_non_exhaustive()
    }
}

/// Reads a system's health from anywhere (a health route built before the
/// system starts, for instance); cloning shares it. Before the system has
/// started, every component reports failing ("pending"), so readiness is
/// false until the start completes.
///
/// A handle can also exist before its system: [`detached`](Self::detached)
/// makes one that reports live but not ready until
/// [`SystemBuilder::health_handle`] attaches it to a system.
#[derive(Clone)]
pub struct HealthHandle {
    bound: Arc<OnceLock<Bound>>,
}

/// The system a [`HealthHandle`] reports on.
struct Bound {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
}

impl HealthHandle {
    /// A handle attached to no system yet: live, not ready (one pseudo
    /// component, `system`, failing with "not built").
    pub fn detached() -> Self {
        Self {
            bound: Arc::new(OnceLock::new()),
        }
    }

    /// Liveness and readiness over every component. A component that is not
    /// running counts as failing. Changes since the last call are recorded
    /// in the `component_health` gauge and logged; the answer is recorded
    /// in the `system_ready` and `system_live` gauges.
    pub fn health(&self) -> SystemHealth {
        let health = match self.bound.get() {
            Some(bound) => bound.health(),
            None => SystemHealth::from_components(
                true,
                [("system".to_owned(), Health::failing("not built"))],
            ),
        };
        metrics::gauge!(READY_GAUGE).set(f64::from(u8::from(health.ready)));
        metrics::gauge!(LIVE_GAUGE).set(f64::from(u8::from(health.live)));
        health
    }
}

impl Bound {
    fn health(&self) -> SystemHealth {
        let states = self
            .shared
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let reports: Vec<(String, Health)> = self
            .plan
            .entries
            .iter()
            .zip(states)
            .map(|(e, state)| {
                let health = match state {
                    ComponentState::Running => e.component.health(),
                    ComponentState::Failed(why) => Health::failing(format!("failed: {why}")),
                    other => Health::failing(format!("{other:?}").to_lowercase()),
                };
                (e.name.to_string(), health)
            })
            .collect();
        let mut last = self
            .shared
            .last_health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, (name, health)) in reports.iter().enumerate() {
            if last[i] != Some(health.status) {
                metrics::gauge!(HEALTH_GAUGE, "component" => name.clone())
                    .set(health.status.gauge_value());
                tracing::info!(component = %name, status = %health.status, message = ?health.message, "component health changed");
                last[i] = Some(health.status);
            }
        }
        let mut health =
            SystemHealth::from_components(self.shared.live.load(Ordering::Acquire), reports);
        // Stopping: out of the load balancer at once, while the components
        // (the server's pre-stop delay and drain) still work.
        health.ready &= !self.shared.stopping.load(Ordering::Acquire);
        health
    }
}

impl std::fmt::Debug for HealthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthHandle").finish_non_exhaustive()
    }
}
