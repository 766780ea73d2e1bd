//! The dynamic supervisor (`supervision::Supervisor`), case by case, in
//! paused time: strategies, intensity and escalation, nesting, stops with
//! timeouts, and calls at their extremes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pattern_component::lifecycle::StopOutcome;
use pattern_component::supervision::{
    Child, ChildState, Escalation, Restart, RestartStrategy, Supervisor,
};
use pattern_error::{Error, Kind};
use support::{Behaviour, Record};
use tokio::time::{Instant, sleep};

const FOREVER: Behaviour = Behaviour {
    ends_after: None,
    exits: false,
    slow_stop: None,
};

fn crashes_after(ms: u64) -> Behaviour {
    Behaviour {
        ends_after: Some(ms),
        exits: false,
        slow_stop: None,
    }
}

/// A child named `name` behaving as `behaviour`, recorded in a new record.
fn child(name: &str, behaviour: Behaviour) -> (Child, Arc<Record>) {
    let record = Arc::new(Record::default());
    let r = record.clone();
    let child = Child::new(name, move |stop| {
        let record = r.clone();
        let alive = record.enter();
        behaviour.run(alive, record, stop)
    });
    (child, record)
}

/// A child that ignores its stop token.
fn deaf(name: &str) -> (Child, Arc<Record>) {
    let record = Arc::new(Record::default());
    let r = record.clone();
    let child = Child::new(name, move |_stop| {
        let alive = r.enter();
        async move {
            let _alive = alive;
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    (child, record)
}

/// Each time (ms) at most 3 ms after the expected one: the timer's
/// millisecond ticks round each wait up.
fn assert_near(actual: &[u128], expected: &[u128]) {
    let near = actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| (*e..=e + 3).contains(a));
    assert!(near, "{actual:?}, expected {expected:?}");
}

fn state(supervisor: &Supervisor, name: &str) -> ChildState {
    supervisor.child(name).unwrap().state
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_the_failed_child_with_a_backoff_that_starts_over() {
    let supervisor = Supervisor::builder()
        .intensity(3, Duration::from_secs(10))
        .restart_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build();
    let (steady, steady_runs) = child("steady", FOREVER);
    let (flaky, flaky_runs) = child("flaky", crashes_after(1_000));
    supervisor.add(steady).await.unwrap();
    supervisor.add(flaky).await.unwrap();
    let start = Instant::now();
    // Crashes at 1 s, 2.1 s, 3.3 s (backoffs 100, 200 ms), the next run
    // after 400 ms more.
    sleep(Duration::from_millis(3_350)).await;
    assert_eq!(flaky_runs.starts(), 3);
    assert_eq!(state(&supervisor, "flaky"), ChildState::Restarting);
    let endings = flaky_runs.endings.lock().unwrap().clone();
    let at: Vec<u128> = endings
        .iter()
        .map(|(t, _)| (*t - start).as_millis())
        .collect();
    assert_near(&at, &[1_000, 2_100, 3_300]);
    assert_eq!(
        steady_runs.starts(),
        1,
        "one for one: the other child untouched"
    );
    assert_eq!(supervisor.child("flaky").unwrap().restarts, 3);
    // The fourth crash (4.7 s) within 10 s gives up: the supervisor stops
    // every child.
    sleep(Duration::from_millis(1_340)).await;
    assert_eq!(supervisor.gave_up(), None);
    sleep(Duration::from_millis(20)).await;
    assert!(supervisor.gave_up().unwrap().contains("flaky"));
    assert_eq!(state(&supervisor, "flaky"), ChildState::Failed);
    assert_eq!(state(&supervisor, "steady"), ChildState::Stopped);
    assert_eq!(steady_runs.alive() + flaky_runs.alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_backoff_starts_over_after_a_stable_run() {
    let supervisor = Supervisor::builder()
        .intensity(10, Duration::from_secs(5))
        .restart_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = starts.clone();
    let start = Instant::now();
    // Two quick crashes, a stable run of 10 s, then two quick crashes.
    supervisor
        .add(Child::new("worker", move |_stop| {
            let run = {
                let mut starts = s.lock().unwrap();
                starts.push((Instant::now() - start).as_millis());
                starts.len()
            };
            async move {
                sleep(Duration::from_millis(if run == 3 { 10_000 } else { 10 })).await;
                Err(Error::new(Kind::Internal, "crashed"))
            }
        }))
        .await
        .unwrap();
    sleep(Duration::from_secs(11)).await;
    // Backoffs of 100 and 200 ms; after the run of 10 s, 100 ms again (not
    // 400), then 200.
    assert_near(&starts.lock().unwrap(), &[0, 110, 320, 10_420, 10_630]);
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_every_child_and_never_a_temporary_one() {
    let supervisor = Supervisor::builder()
        .strategy(RestartStrategy::OneForAll)
        .restart_backoff(Duration::from_millis(50), Duration::from_millis(50))
        .build();
    let (first, first_runs) = child("first", FOREVER);
    let (temporary, temporary_runs) = child("temporary", FOREVER);
    let (flaky, flaky_runs) = child("flaky", crashes_after(1_000));
    supervisor.add(first).await.unwrap();
    supervisor
        .add(temporary.restart(Restart::Never))
        .await
        .unwrap();
    supervisor.add(flaky).await.unwrap();
    sleep(Duration::from_millis(1_020)).await;
    // Stopped with the group, waiting out the backoff.
    assert_eq!(state(&supervisor, "first"), ChildState::Restarting);
    assert_eq!(state(&supervisor, "temporary"), ChildState::Stopped);
    sleep(Duration::from_millis(100)).await;
    assert_eq!((first_runs.starts(), flaky_runs.starts()), (2, 2));
    assert_eq!(
        temporary_runs.starts(),
        1,
        "a temporary child is never restarted"
    );
    assert_eq!(state(&supervisor, "temporary"), ChildState::Stopped);
    assert_eq!(supervisor.child("first").unwrap().restarts, 1);
    // An operator may start it again.
    supervisor.restart("temporary").await.unwrap();
    assert_eq!(temporary_runs.starts(), 2);
    assert!(first_runs.most() <= 1 && flaky_runs.most() <= 1);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_children_added_after_the_failed_one() {
    let supervisor = Supervisor::builder()
        .strategy(RestartStrategy::RestForOne)
        .restart_backoff(Duration::from_millis(50), Duration::from_millis(50))
        .build();
    let (before, before_runs) = child("before", FOREVER);
    let (flaky, flaky_runs) = child("flaky", crashes_after(1_000));
    let (after, after_runs) = child("after", FOREVER);
    for c in [before, flaky, after] {
        supervisor.add(c).await.unwrap();
    }
    sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        (
            before_runs.starts(),
            flaky_runs.starts(),
            after_runs.starts()
        ),
        (1, 2, 2)
    );
    let names: Vec<String> = supervisor.children().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["before", "flaky", "after"], "start order kept");
}

#[tokio::test(start_paused = true)]
async fn per_child_escalation_leaves_the_others_running() {
    let supervisor = Supervisor::builder()
        .escalation(Escalation::Child)
        .intensity(2, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    let (steady, steady_runs) = child("steady", FOREVER);
    let (flaky, flaky_runs) = child("flaky", crashes_after(100));
    supervisor.add(steady).await.unwrap();
    supervisor.add(flaky).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(flaky_runs.starts(), 3, "two restarts, then it stays down");
    assert_eq!(state(&supervisor, "flaky"), ChildState::Failed);
    assert_eq!(
        supervisor.child("flaky").unwrap().last_error.as_deref(),
        Some("crashed")
    );
    assert_eq!(state(&supervisor, "steady"), ChildState::Running);
    assert_eq!(steady_runs.alive(), 1);
    assert_eq!(supervisor.gave_up(), None);
    // An operator's restart gives it a fresh budget: two more restarts.
    supervisor.restart("flaky").await.unwrap();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(flaky_runs.starts(), 6);
}

#[tokio::test(start_paused = true)]
async fn intensity_at_zero_and_at_its_maximum() {
    let zero = Supervisor::builder()
        .intensity(0, Duration::from_secs(60))
        .build();
    let (flaky, runs) = child("flaky", crashes_after(10));
    zero.add(flaky).await.unwrap();
    sleep(Duration::from_millis(100)).await;
    assert_eq!(runs.starts(), 1, "no restart allowed");
    assert!(zero.gave_up().is_some());

    let never = Supervisor::builder()
        .intensity(u32::MAX, Duration::MAX)
        .restart_backoff(Duration::ZERO, Duration::ZERO)
        .build();
    let (flaky, runs) = child("flaky", crashes_after(1));
    never.add(flaky).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    assert!(runs.starts() > 500, "restarted for ever: {}", runs.starts());
    assert_eq!(never.gave_up(), None);
    assert_eq!(runs.most(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_function_or_its_future_is_a_failure() {
    let supervisor = Supervisor::builder()
        .escalation(Escalation::Child)
        .intensity(1, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    supervisor
        .add(Child::new(
            "eager",
            |_stop| -> std::future::Ready<Result<(), Error>> { panic!("before any future") },
        ))
        .await
        .unwrap();
    supervisor
        .add(Child::new("lazy", |_stop| async {
            panic!("inside the future")
        }))
        .await
        .unwrap();
    sleep(Duration::from_millis(100)).await;
    for (name, text) in [
        ("eager", "before any future"),
        ("lazy", "inside the future"),
    ] {
        let info = supervisor.child(name).unwrap();
        assert_eq!(
            (info.state, info.restarts),
            (ChildState::Failed, 1),
            "{name}"
        );
        assert_eq!(info.last_error.unwrap(), format!("panicked: {text}"));
    }
    // The supervisor itself carries on.
    let (steady, _) = child("steady", FOREVER);
    supervisor.add(steady).await.unwrap();
    assert_eq!(state(&supervisor, "steady"), ChildState::Running);
}

#[tokio::test(start_paused = true)]
async fn adding_a_taken_name_conflicts_and_replacing_runs_one_instance() {
    let supervisor = Supervisor::builder()
        .stop_timeout(Duration::from_secs(2))
        .build();
    let (old, old_runs) = deaf("job");
    supervisor.add(old).await.unwrap();
    let (again, _) = child("job", FOREVER);
    let err = supervisor.add(again).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Conflict);
    // The old run ignores its token: aborted after the stop timeout, and
    // only then does the new one start.
    let (new, new_runs) = child("job", FOREVER);
    let asked = Instant::now();
    supervisor.replace(new).await.unwrap();
    assert_eq!(asked.elapsed(), Duration::from_secs(2));
    assert_eq!((old_runs.alive(), new_runs.alive()), (0, 1));
    assert_eq!(supervisor.children().len(), 1);
    // Removed, then added again.
    assert_eq!(
        supervisor.remove("job").await.unwrap(),
        StopOutcome::Stopped
    );
    assert!(supervisor.child("job").is_none());
    assert_eq!(
        supervisor.stop("job").await.unwrap_err().kind(),
        Kind::NotFound
    );
    assert_eq!(
        supervisor.restart("job").await.unwrap_err().kind(),
        Kind::NotFound
    );
    assert_eq!(
        supervisor.remove("job").await.unwrap_err().kind(),
        Kind::NotFound
    );
    let (back, back_runs) = child("job", FOREVER);
    supervisor.add(back).await.unwrap();
    assert_eq!(back_runs.alive(), 1);
}

#[tokio::test(start_paused = true)]
async fn stop_timeouts_of_zero_and_max() {
    let supervisor = Supervisor::builder().build();
    let (deaf_child, deaf_runs) = deaf("deaf");
    let (polite, polite_runs) = child("polite", FOREVER);
    supervisor
        .add(deaf_child.stop_timeout(Duration::ZERO))
        .await
        .unwrap();
    supervisor
        .add(polite.stop_timeout(Duration::MAX))
        .await
        .unwrap();
    assert_eq!(
        supervisor.stop("deaf").await.unwrap(),
        StopOutcome::Abandoned
    );
    assert_eq!(
        supervisor.stop("polite").await.unwrap(),
        StopOutcome::Stopped
    );
    assert_eq!(deaf_runs.alive() + polite_runs.alive(), 0);
    let info = supervisor.child("deaf").unwrap();
    assert_eq!(info.state, ChildState::Stopped);
    assert!(info.last_error.unwrap().starts_with("aborted"));
    // Stopping a stopped child, twice.
    assert_eq!(
        supervisor.stop("deaf").await.unwrap(),
        StopOutcome::NotRunning
    );
    assert_eq!(
        supervisor.stop("deaf").await.unwrap(),
        StopOutcome::NotRunning
    );
    // Restarted after its stop.
    supervisor.restart("polite").await.unwrap();
    assert_eq!(polite_runs.alive(), 1);
}

#[tokio::test(start_paused = true)]
async fn stop_all_stops_deaf_children_together_within_one_timeout() {
    let supervisor = Supervisor::builder()
        .stop_timeout(Duration::from_secs(3))
        .build();
    let mut records = Vec::new();
    for i in 0..5 {
        let (c, r) = deaf(&format!("deaf-{i}"));
        supervisor.add(c).await.unwrap();
        records.push(r);
    }
    let asked = Instant::now();
    let outcomes = supervisor.stop_all().await;
    assert_eq!(asked.elapsed(), Duration::from_secs(3), "all at once");
    assert!(outcomes.iter().all(|(_, o)| *o == StopOutcome::Abandoned));
    assert!(records.iter().all(|r| r.alive() == 0));
}

#[tokio::test(start_paused = true)]
async fn a_stop_cancels_a_pending_restart() {
    let supervisor = Supervisor::builder()
        .restart_backoff(Duration::from_secs(5), Duration::from_secs(5))
        .build();
    let (flaky, runs) = child("flaky", crashes_after(10));
    supervisor.add(flaky).await.unwrap();
    sleep(Duration::from_millis(100)).await;
    assert_eq!(state(&supervisor, "flaky"), ChildState::Restarting);
    assert_eq!(
        supervisor.stop("flaky").await.unwrap(),
        StopOutcome::NotRunning
    );
    assert_eq!(state(&supervisor, "flaky"), ChildState::Stopped);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(runs.starts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_that_gives_up_is_restarted_by_its_parent() {
    let inner = Supervisor::builder()
        .name("inner")
        .intensity(1, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    let (flaky, flaky_runs) = child("flaky", crashes_after(100));
    let (steady, steady_runs) = child("steady", FOREVER);
    inner.add(flaky).await.unwrap();
    inner.add(steady).await.unwrap();
    let parent = Supervisor::builder()
        .name("parent")
        .intensity(2, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(500), Duration::from_millis(500))
        .build();
    parent.add(inner.clone().into_child("inner")).await.unwrap();
    // The inner gives up at the second crash (~210 ms), its run fails, and
    // the parent starts it again (fresh budget) after 500 ms.
    sleep(Duration::from_millis(300)).await;
    assert!(inner.gave_up().is_some());
    assert_eq!(state(&parent, "inner"), ChildState::Restarting);
    assert_eq!(steady_runs.alive(), 0);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(inner.gave_up(), None);
    assert_eq!(state(&parent, "inner"), ChildState::Running);
    assert_eq!(steady_runs.alive(), 1);
    assert!(
        parent
            .child("inner")
            .unwrap()
            .last_error
            .unwrap()
            .contains("gave up")
    );
    // Twice more and the parent gives up too; nothing runs.
    sleep(Duration::from_secs(5)).await;
    assert!(parent.gave_up().is_some());
    assert_eq!(steady_runs.alive() + flaky_runs.alive(), 0);
    assert!(steady_runs.most() <= 1 && flaky_runs.most() <= 1);
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_stops_its_children_when_its_parent_stops_or_aborts_it() {
    for stop_timeout in [Duration::from_secs(5), Duration::ZERO] {
        let inner = Supervisor::builder().build();
        let (steady, steady_runs) = child("steady", FOREVER);
        inner.add(steady).await.unwrap();
        let parent = Supervisor::builder().build();
        parent
            .add(inner.clone().into_child("inner").stop_timeout(stop_timeout))
            .await
            .unwrap();
        sleep(Duration::from_millis(10)).await;
        assert_eq!(steady_runs.alive(), 1);
        parent.stop("inner").await.unwrap();
        sleep(Duration::from_millis(10)).await;
        assert_eq!(steady_runs.alive(), 0, "stop timeout {stop_timeout:?}");
        assert_eq!(state(&inner, "steady"), ChildState::Stopped);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_the_children() {
    let supervisor = Supervisor::builder().build();
    let (steady, runs) = child("steady", FOREVER);
    supervisor.add(steady).await.unwrap();
    assert_eq!(runs.alive(), 1);
    drop(supervisor);
    sleep(Duration::from_millis(10)).await;
    assert_eq!(runs.alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_never_started_needs_no_runtime_until_used() {
    let supervisor = std::thread::spawn(|| Supervisor::builder().build())
        .join()
        .unwrap();
    assert!(supervisor.children().is_empty());
    assert!(supervisor.stop_all().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_never_run_two_instances_of_a_name() {
    let supervisor = Supervisor::builder()
        .stop_timeout(Duration::from_millis(20))
        .restart_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .intensity(u32::MAX, Duration::from_secs(1))
        .build();
    let names = ["a", "b", "c"];
    let records: Vec<Arc<Record>> = names.iter().map(|_| Arc::default()).collect();
    let make = |i: usize, deafness: bool| {
        let record = records[i].clone();
        Child::new(names[i], move |stop| {
            let record = record.clone();
            let alive = record.enter();
            async move {
                let _alive = alive;
                if deafness {
                    std::future::pending::<()>().await;
                }
                tokio::select! {
                    () = stop.cancelled() => Ok(()),
                    () = sleep(Duration::from_millis(3)) => Err(Error::new(Kind::Internal, "crashed")),
                }
            }
        })
    };
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..32usize {
        let supervisor = supervisor.clone();
        let children: Vec<Child> = (0..names.len()).map(|i| make(i, caller % 5 == 0)).collect();
        callers.spawn(async move {
            let mut children = children.into_iter();
            for step in 0..6usize {
                let i = (caller + step) % names.len();
                match (caller + step) % 4 {
                    0 => drop(supervisor.replace(children.next().unwrap()).await),
                    1 => drop(supervisor.restart(names[i]).await),
                    2 => drop(supervisor.stop(names[i]).await),
                    _ => drop(supervisor.remove(names[i]).await),
                }
            }
        });
    }
    while callers.join_next().await.is_some() {}
    supervisor.stop_all().await;
    for (i, record) in records.iter().enumerate() {
        assert!(record.most() <= 1, "{}: two instances at once", names[i]);
        assert_eq!(record.alive(), 0, "{}: outlived stop_all", names[i]);
    }
}

/// A child calling its own supervisor holds up nobody: a child that stops
/// itself (waiting for its own end, with no stop timeout) leaves the
/// supervisor answering every other call, and a slow stop of one child
/// delays no call about another.
#[tokio::test(start_paused = true)]
async fn calls_never_wait_for_a_child() {
    let supervisor = Supervisor::builder().build();
    let weak = supervisor.downgrade();
    supervisor
        .add(
            Child::new("selfish", move |_stop| {
                let weak = weak.clone();
                async move {
                    sleep(Duration::from_millis(10)).await;
                    let supervisor = weak.upgrade().expect("held by the test");
                    supervisor.stop("selfish").await.map(drop)
                }
            })
            .stop_timeout(Duration::MAX),
        )
        .await
        .unwrap();
    sleep(Duration::from_millis(20)).await;
    assert_eq!(state(&supervisor, "selfish"), ChildState::Stopping);
    let asked = Instant::now();
    let (other, other_runs) = child("other", FOREVER);
    supervisor.add(other).await.unwrap();
    let (slow, _) = deaf("deaf");
    supervisor
        .add(slow.stop_timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    let stopping = {
        let supervisor = supervisor.clone();
        tokio::spawn(async move { supervisor.stop("deaf").await })
    };
    tokio::task::yield_now().await;
    assert_eq!(
        supervisor.stop("other").await.unwrap(),
        StopOutcome::Stopped
    );
    supervisor.restart("other").await.unwrap();
    assert_eq!(asked.elapsed(), Duration::ZERO, "nothing waited");
    assert_eq!(other_runs.alive(), 1);
    assert_eq!(stopping.await.unwrap().unwrap(), StopOutcome::Abandoned);
    assert_eq!(asked.elapsed(), Duration::from_secs(5));
}

/// A child holding a weak handle does not keep its supervisor alive.
#[tokio::test(start_paused = true)]
async fn a_weak_handle_in_a_child_lets_the_supervisor_go() {
    let supervisor = Supervisor::builder().build();
    let weak = supervisor.downgrade();
    let (record, r) = {
        let record = Arc::new(Record::default());
        (record.clone(), record)
    };
    supervisor
        .add(Child::new("holder", move |stop| {
            let (weak, record) = (weak.clone(), r.clone());
            let alive = record.enter();
            async move {
                let _alive = alive;
                stop.cancelled().await;
                drop(weak);
                Ok(())
            }
        }))
        .await
        .unwrap();
    assert_eq!(record.alive(), 1);
    drop(supervisor);
    sleep(Duration::from_millis(10)).await;
    assert_eq!(record.alive(), 0);
}

/// A parent restarting a nested supervisor whose old run it aborted: the
/// old run's late stop never stops the new run's children (the stop names
/// its run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_stop_of_an_old_nested_run_leaves_the_new_one_alone() {
    for round in 0..50 {
        let inner = Supervisor::builder().build();
        let (steady, runs) = child("steady", FOREVER);
        inner.add(steady).await.unwrap();
        let parent = Supervisor::builder().build();
        parent
            .add(
                inner
                    .clone()
                    .into_child("inner")
                    .stop_timeout(Duration::ZERO),
            )
            .await
            .unwrap();
        parent.restart("inner").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            state(&inner, "steady"),
            ChildState::Running,
            "round {round}"
        );
        assert_eq!(runs.alive(), 1, "round {round}");
        parent.stop_all().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(runs.alive(), 0, "round {round}");
    }
}

/// After giving up, an operator's restart brings the supervisor back with
/// a fresh budget.
#[tokio::test(start_paused = true)]
async fn an_operators_restart_revives_a_supervisor_that_gave_up() {
    let supervisor = Supervisor::builder()
        .intensity(1, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    let (flaky, runs) = child("flaky", crashes_after(100));
    supervisor.add(flaky).await.unwrap();
    sleep(Duration::from_millis(300)).await;
    assert!(supervisor.gave_up().is_some());
    supervisor.restart("flaky").await.unwrap();
    assert_eq!(supervisor.gave_up(), None);
    // One restart allowed again before it gives up a second time.
    sleep(Duration::from_millis(150)).await;
    assert_eq!(runs.starts(), 4);
    assert_eq!(state(&supervisor, "flaky"), ChildState::Running);
    sleep(Duration::from_millis(100)).await;
    assert!(supervisor.gave_up().is_some());
}

/// A child waiting out a longer backoff of its own when its group
/// restarts keeps that backoff, and its restart is counted once.
#[tokio::test(start_paused = true)]
async fn a_group_restart_keeps_a_longer_backoff_of_a_member() {
    let supervisor = Supervisor::builder()
        .strategy(RestartStrategy::RestForOne)
        .intensity(10, Duration::from_secs(60))
        .restart_backoff(Duration::from_secs(1), Duration::from_secs(10))
        .build();
    let start = Instant::now();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (first, _) = child("first", crashes_after(1_500));
    supervisor.add(first).await.unwrap();
    let s = starts.clone();
    supervisor
        .add(Child::new("second", move |_stop| {
            s.lock().unwrap().push((Instant::now() - start).as_millis());
            async {
                sleep(Duration::from_millis(100)).await;
                Err(Error::new(Kind::Internal, "crashed"))
            }
        }))
        .await
        .unwrap();
    // second: crashes at 0.1 s (back at 1.1 s) and 1.2 s (back at 3.2 s);
    // first crashes at 1.5 s and is back at 2.5 s; second waits its own
    // 3.2 s.
    sleep(Duration::from_millis(3_000)).await;
    assert_eq!(supervisor.child("second").unwrap().restarts, 2);
    sleep(Duration::from_millis(250)).await;
    assert_near(&starts.lock().unwrap(), &[0, 1_100, 3_200]);
}

/// Per child, a child past its intensity under one for all stops its
/// group with it.
#[tokio::test(start_paused = true)]
async fn per_child_escalation_stops_the_group_of_a_child_that_gave_up() {
    let supervisor = Supervisor::builder()
        .strategy(RestartStrategy::OneForAll)
        .escalation(Escalation::Child)
        .intensity(1, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    let (steady, steady_runs) = child("steady", FOREVER);
    let (flaky, _) = child("flaky", crashes_after(100));
    supervisor.add(steady).await.unwrap();
    supervisor.add(flaky).await.unwrap();
    sleep(Duration::from_millis(500)).await;
    assert_eq!(state(&supervisor, "flaky"), ChildState::Failed);
    assert_eq!(state(&supervisor, "steady"), ChildState::Stopped);
    assert_eq!(steady_runs.alive(), 0);
    assert_eq!(
        supervisor.gave_up(),
        None,
        "per child: the supervisor goes on"
    );
}

/// A child an operator stopped stays down through its group's restart and
/// through a new run of its (nested) supervisor.
#[tokio::test(start_paused = true)]
async fn a_child_an_operator_stopped_stays_down() {
    let inner = Supervisor::builder()
        .strategy(RestartStrategy::OneForAll)
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build();
    let (held, held_runs) = child("held", FOREVER);
    let (flaky, _) = child("flaky", crashes_after(100));
    inner.add(held).await.unwrap();
    inner.add(flaky).await.unwrap();
    inner.stop("held").await.unwrap();
    sleep(Duration::from_millis(150)).await;
    assert_eq!(held_runs.starts(), 1, "not restarted with its group");
    let parent = Supervisor::builder().build();
    parent.add(inner.clone().into_child("inner")).await.unwrap();
    parent.restart("inner").await.unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(held_runs.starts(), 1, "not started by a new run");
    assert_eq!(state(&inner, "held"), ChildState::Stopped);
    inner.restart("held").await.unwrap();
    assert_eq!(held_runs.alive(), 1);
}
