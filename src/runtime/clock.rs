//! The runtime's clock: the one place that reads the system's clocks. The
//! engine gets [`MonoTime`] values derived here (or from kernel receive
//! timestamps mapped through here).

use crate::time::MonoTime;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    #[allow(clippy::disallowed_methods)] // the runtime's clock is where time is read
    pub fn new() -> Self {
        Clock { origin: Instant::now() }
    }

    /// Monotonic time since the clock was made.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> MonoTime {
        MonoTime::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Wall-clock time since the Unix epoch (for NTP fields and reports).
    #[allow(clippy::disallowed_methods)]
    pub fn wall(&self) -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }

    /// The tokio/std instant of an engine time (for timers).
    pub fn instant_of(&self, t: MonoTime) -> Instant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }

    /// Maps the offset between wall and monotonic time, read once per batch,
    /// so kernel receive timestamps (wall clock) become engine times.
    pub fn wall_to_mono(&self) -> WallToMono {
        let mono = self.now();
        let wall = self.wall();
        WallToMono { mono, wall }
    }
}

/// A (monotonic, wall) pair taken together.
#[derive(Clone, Copy, Debug)]
pub struct WallToMono {
    pub mono: MonoTime,
    pub wall: Duration,
}

impl WallToMono {
    /// Engine time of a kernel timestamp. Timestamps from the future (clock
    /// steps) or absurdly old ones fall back to the batch's own time.
    pub fn map(&self, kernel: Option<Duration>) -> MonoTime {
        match kernel.and_then(|k| self.wall.checked_sub(k)) {
            Some(age) if age < Duration::from_secs(1) => self.mono - age,
            _ => self.mono,
        }
    }
}
