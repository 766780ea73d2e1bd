use std::future::Future;
use std::sync::Arc;

use pattern_error::Error;

use super::{BoxFuture, Component, Running, StartContext};

/// A component made of an async function; see [`from_fn`].
pub struct FnComponent<F> {
    name: String,
    dependencies: Vec<String>,
    run: Arc<F>,
}

/// Wraps `run` as a component named `name`: starting it spawns
/// `run(ctx)` as the component's task (the component is ready at once).
/// The function should return when [`StartContext::stop_token`] is
/// cancelled.
///
/// ```
/// use pattern_component::component::{Component, from_fn};
///
/// let ticker = from_fn("ticker", |ctx| async move {
///     let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
///     loop {
///         tokio::select! {
///             _ = every.tick() => {}
///             () = ctx.stop_token().cancelled() => return Ok(()),
///         }
///     }
/// })
/// .depends_on("db");
/// assert_eq!(ticker.name(), "ticker");
/// assert_eq!(ticker.dependencies(), ["db"]);
/// ```
pub fn from_fn<F, Fut>(name: impl Into<String>, run: F) -> FnComponent<F>
where
    F: Fn(StartContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    FnComponent {
        name: name.into(),
        dependencies: Vec::new(),
        run: Arc::new(run),
    }
}

impl<F> FnComponent<F> {
    /// Adds a dependency.
    #[must_use]
    pub fn depends_on(mut self, name: impl Into<String>) -> Self {
        self.dependencies.push(name.into());
        self
    }
}

impl<F, Fut> Component for FnComponent<F>
where
    F: Fn(StartContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn dependencies(&self) -> Vec<String> {
        self.dependencies.clone()
    }

    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        let task = (self.run)(ctx);
        Box::pin(async move { Ok(Running::task(task)) })
    }
}

impl<F> std::fmt::Debug for FnComponent<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnComponent")
            .field("name", &self.name)
            .field("dependencies", &self.dependencies)
            .finish_non_exhaustive()
    }
}
