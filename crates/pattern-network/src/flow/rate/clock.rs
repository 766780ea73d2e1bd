use std::time::Duration;

use governor::clock::Clock;

/// A governor clock on tokio's time, so limiters and pacers follow paused
/// time in tests (`#[tokio::test(start_paused = true)]`).
///
/// Its instants are the time elapsed since the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant of one of this clock's readings.
    pub fn instant(&self, reading: Duration) -> tokio::time::Instant {
        self.base + reading
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.base)
    }
}
