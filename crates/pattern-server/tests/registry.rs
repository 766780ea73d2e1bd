//! The process registry: states, restarts with the last error, stop and
//! restart by name, and the admin route behind a bearer token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pattern_api::testing::TestClient;
use pattern_component::config::Secret;
use pattern_error::{Error, Kind};
use pattern_server::registry::{ProcessRegistry, ProcessState, admin_router};

#[tokio::test(start_paused = true)]
async fn failures_are_restarted_and_recorded() {
    let registry = ProcessRegistry::new();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    registry.register("consumer", move |stop| {
        let run = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if run < 2 {
                return Err(Error::new(Kind::Unavailable, "broker connection lost"));
            }
            stop.cancelled().await;
            Ok(())
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let info = registry.get("consumer").unwrap();
    assert_eq!(info.state, ProcessState::Running);
    assert_eq!(info.restarts, 2);
    assert_eq!(info.last_error.as_deref(), Some("broker connection lost"));
    assert!(info.started_at.is_some());

    registry.restart("consumer").await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        registry.get("consumer").unwrap().state,
        ProcessState::Running
    );
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    registry.stop_all().await;
    assert_eq!(
        registry.get("consumer").unwrap().state,
        ProcessState::Stopped
    );
    assert_eq!(
        registry.stop("nope").await.unwrap_err().kind(),
        Kind::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn panics_count_and_the_restart_limit_gives_up() {
    let registry = ProcessRegistry::new().max_restarts(2);
    registry.register("crashy", |_stop| async {
        if true {
            panic!("bad state");
        }
        Ok(())
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let info = registry.get("crashy").unwrap();
    assert_eq!(info.state, ProcessState::Failed);
    assert_eq!(info.restarts, 2);
    assert_eq!(info.last_error.as_deref(), Some("panicked"));
}

#[tokio::test]
async fn the_admin_route_requires_the_token() {
    let registry = ProcessRegistry::new();
    registry.register("sweeper", |stop| async move {
        stop.cancelled().await;
        Ok(())
    });
    let client = TestClient::serve(admin_router(
        registry.clone(),
        Secret::new("s3cr3t".to_owned()),
    ))
    .await;
    let anonymous = client.get("/admin/processes").await;
    anonymous.assert_problem(401, "unauthenticated");
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(r#"Bearer realm="admin""#),
        "RFC 9110: a 401 names its scheme"
    );

    for wrong in [
        "Bearer wrong",
        "Bearer s3cr3",
        "Bearer s3cr3tt",
        "Basic s3cr3t",
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", wrong.parse().unwrap());
        let refused = client
            .send(
                http::Method::GET,
                "/admin/processes",
                headers,
                Default::default(),
            )
            .await;
        refused.assert_problem(401, "unauthenticated");
        assert!(refused.header("www-authenticate").is_some(), "{wrong}");
    }

    // The scheme is case-insensitive (RFC 9110).
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", "bearer s3cr3t".parse().unwrap());
    let listed = client
        .send(
            http::Method::GET,
            "/admin/processes",
            headers.clone(),
            Default::default(),
        )
        .await;
    listed.assert_status(200);
    assert_eq!(listed.data()[0]["name"], "sweeper");
    assert_eq!(listed.data()[0]["state"], "running");

    let stopped = client
        .send(
            http::Method::POST,
            "/admin/processes/sweeper/stop",
            headers.clone(),
            Default::default(),
        )
        .await;
    stopped.assert_status(200);
    assert_eq!(stopped.data()["state"], "stopped");
    client
        .send(
            http::Method::POST,
            "/admin/processes/ghost/stop",
            headers,
            Default::default(),
        )
        .await
        .assert_problem(404, "not_found");
}
