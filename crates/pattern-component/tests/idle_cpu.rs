//! Supervising an idle component costs no CPU: no polling loop runs while
//! nothing happens. Measured as the process's CPU time over two seconds of
//! real time (its own test binary, so no other test adds CPU time).

#![cfg(target_os = "linux")]

use std::time::Duration;

use pattern_component::component::from_fn;
use pattern_component::lifecycle::System;

/// User plus system CPU time of this process, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_supervised_system_uses_no_cpu() {
    let system = System::builder()
        .component(from_fn("idle-worker", |ctx| async move {
            ctx.stop_token().cancelled().await;
            Ok(())
        }))
        .component(from_fn("another", |ctx| async move {
            ctx.stop_token().cancelled().await;
            Ok(())
        }))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time() - before;
    eprintln!("CPU time over 2 s idle: {used:?}");
    // 1 % of one core would be 20 ms; a 1 ms polling loop would use far more.
    assert!(
        used <= Duration::from_millis(20),
        "idle system used {used:?} of CPU in 2 s"
    );
    assert!(running.stop().await.is_clean());
}
