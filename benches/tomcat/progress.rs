//! Progress lines stamped with the seconds since the benchmark started, so a long run shows
//! where its time goes.

use std::fmt::Display;
use std::time::Instant;

/// The clock of the progress lines.
pub struct Progress {
    start: Instant,
}

impl Progress {
    /// Starts the clock.
    pub fn start() -> Self {
        Progress {
            start: Instant::now(),
        }
    }

    /// Prints `[  12s] what`.
    pub fn say(&self, what: impl Display) {
        println!("[{:4}s] {what}", self.start.elapsed().as_secs());
    }
}
