//! Session locks for non-sticky sessions: a memcached `add` of the lock key with an expiry,
//! retried with exponential backoff up to a bound.
//!
//! The lock's value is a random token, so a holder whose lock expired and was taken over never
//! releases the new holder's lock.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::ids::SessionId;

/// A held session lock; give it back to the manager's `unlock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLock {
    pub(crate) id: SessionId,
    pub(crate) node: String,
    pub(crate) key: String,
    pub(crate) token: String,
    /// When acquisition began: the lock cannot expire before `lockExpiration` from then.
    pub(crate) requested: std::time::Instant,
}

/// Memcached counts expiry in whole seconds and may end an item up to one second early; a lock
/// younger than its expiration by this much is certainly still there.
const EXPIRY_MARGIN: Duration = Duration::from_secs(2);

impl SessionLock {
    /// The session this lock is for.
    pub fn session_id(&self) -> &SessionId {
        &self.id
    }

    /// Whether the lock is certainly still held by us, given its `expiration`, so a plain
    /// `delete` releases it without first checking its token.
    pub(crate) fn certainly_held(&self, expiration: Duration) -> bool {
        self.requested.elapsed() + EXPIRY_MARGIN < expiration
    }
}

/// Pauses between lock attempts: doubling from `initial` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First pause.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
    /// Total time after which acquisition gives up.
    pub max_wait: Duration,
}

/// Calls `attempt` until it reports success, backing off between attempts; fails with
/// [`Error::LockTimeout`] once `max_wait` has passed.
pub async fn acquire<F, Fut>(backoff: Backoff, mut attempt: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let give_up = Instant::now() + backoff.max_wait;
    let mut pause = backoff.initial;
    loop {
        if attempt().await? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(Error::LockTimeout(backoff.max_wait));
        }
        tokio::time::sleep(pause.min(give_up - now)).await;
        pause = (pause * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_then_gives_up() {
        let backoff = Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(40),
            max_wait: Duration::from_millis(200),
        };
        let start = Instant::now();
        let mut times = Vec::new();
        let result = acquire(backoff, || {
            times.push(start.elapsed().as_millis());
            async { Ok(false) }
        })
        .await;
        assert!(matches!(result, Err(Error::LockTimeout(_))));
        assert_eq!(&times[..6], &[0, 5, 15, 35, 75, 115]);
        assert_eq!(*times.last().unwrap(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_when_the_lock_frees() {
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
            max_wait: Duration::from_secs(1),
        };
        let mut calls = 0;
        acquire(backoff, || {
            calls += 1;
            let free = calls == 4;
            async move { Ok(free) }
        })
        .await
        .unwrap();
        assert_eq!(calls, 4);
    }
}
