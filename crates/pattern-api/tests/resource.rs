//! A request-scoped resource is acquired within the request's deadline; an
//! exhausted pool answers 503 instead of hanging (paused time).

use pattern_api::middleware::DeadlineLayer;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pattern_api::extract::{Acquire, Scoped};
use pattern_api::stack::ApiStack;
use pattern_api::testing::TestClient;
use pattern_error::{Error, Kind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
struct Pool(Arc<Semaphore>);

impl Acquire for Pool {
    type Resource = OwnedSemaphorePermit;

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.0
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::from_kind(Kind::Unavailable))
    }
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_pool_answers_503_within_the_deadline() {
    let pool = Pool(Arc::new(Semaphore::new(1)));
    let held = pool.0.clone().acquire_owned().await.unwrap();
    let app = ApiStack::new()
        .timeout(DeadlineLayer::new(Duration::from_millis(200)))
        .apply(
            Router::new()
                .route("/", get(|Scoped(_conn): Scoped<Pool>| async { "ok" }))
                .with_state(pool.clone()),
        );
    let client = TestClient::new(app);
    let started = tokio::time::Instant::now();
    let problem = client.get("/").await.assert_problem(503, "unavailable");
    assert!(
        started.elapsed() <= Duration::from_millis(201),
        "{:?}",
        started.elapsed()
    );
    assert!(problem["request_id"].is_string());

    drop(held);
    client.get("/").await.assert_status(200);
    assert_eq!(
        pool.0.available_permits(),
        1,
        "the connection went back after the request"
    );
}
