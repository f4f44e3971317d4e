//! Sticky mode: the background queue of writes to memcached, in order per session.

use std::collections::HashMap;

use parking_lot::Mutex;

/// How a queued job relates to others of the same session.
pub trait Ranked {
    /// Jobs of rank 0 run only when the session has nothing in flight (they are dropped
    /// otherwise: the work in flight makes them needless). A job replaces a waiting job of the
    /// same or a lower rank, and is dropped behind a waiting job of a higher rank.
    fn rank(&self) -> u8;
}

/// Outcome of [`Queue::offer`].
#[derive(Debug)]
pub enum Offer<J> {
    /// Nothing was in flight for the key: the caller runs `J`, then [`Queue::next`] until
    /// empty. `full` says the queue was over capacity: the caller should run it on its own
    /// thread rather than in the background.
    Start {
        /// The job to run.
        job: J,
        /// Whether the queue is over capacity.
        full: bool,
    },
    /// A job is running for the key: this one waits behind it.
    Waiting,
    /// A job is running for the key: this one replaced an older one waiting behind it.
    Replaced,
    /// The job is needless or outranked by the work in flight, and was not queued.
    Dropped(J),
}

/// Background work, at most one job running and one waiting per session: a newer job replaces
/// a waiting one of no higher rank (only the latest content matters), and jobs of one session
/// never overtake each other. Bounded by the number of sessions with work in flight; over the
/// bound, callers run their job themselves, still in order.
#[derive(Debug)]
pub struct Queue<J> {
    capacity: usize,
    /// Keys with a running job, and the job waiting behind it.
    slots: Mutex<HashMap<String, Option<J>>>,
}

impl<J: Ranked> Queue<J> {
    /// A queue for at most `capacity` sessions at once.
    pub fn new(capacity: usize) -> Self {
        Queue {
            capacity,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Offers a job for `key`.
    pub fn offer(&self, key: &str, job: J) -> Offer<J> {
        let mut slots = self.slots.lock();
        if let Some(waiting) = slots.get_mut(key) {
            return match waiting {
                _ if job.rank() == 0 => Offer::Dropped(job),
                Some(older) if older.rank() > job.rank() => Offer::Dropped(job),
                Some(_) => {
                    *waiting = Some(job);
                    Offer::Replaced
                }
                None => {
                    *waiting = Some(job);
                    Offer::Waiting
                }
            };
        }
        let full = slots.len() >= self.capacity;
        slots.insert(key.to_owned(), None);
        Offer::Start { job, full }
    }

    /// The job waiting behind the one that just finished for `key`; `None` releases the key.
    pub fn next(&self, key: &str) -> Option<J> {
        let mut slots = self.slots.lock();
        let next = slots.get_mut(key).and_then(Option::take);
        if next.is_none() {
            slots.remove(key);
        }
        next
    }

    /// Number of sessions with work in flight.
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_orders_coalesces_and_bounds() {
        struct Job(u8, u32);
        impl Ranked for Job {
            fn rank(&self) -> u8 {
                self.0
            }
        }
        let started = |offer| {
            matches!(
                offer,
                Offer::Start {
                    job: Job(_, _),
                    full: false
                }
            )
        };
        let q = Queue::new(2);
        assert!(started(q.offer("a", Job(1, 1))));
        assert!(
            matches!(q.offer("a", Job(0, 2)), Offer::Dropped(_)),
            "touch while busy"
        );
        assert!(matches!(q.offer("a", Job(1, 3)), Offer::Waiting));
        assert!(matches!(q.offer("a", Job(1, 4)), Offer::Replaced));
        assert!(
            matches!(q.offer("a", Job(2, 5)), Offer::Replaced),
            "a delete replaces a write"
        );
        assert!(
            matches!(q.offer("a", Job(1, 6)), Offer::Dropped(_)),
            "no write after a delete"
        );
        assert!(started(q.offer("b", Job(0, 7))), "a touch runs when idle");
        assert!(matches!(
            q.offer("c", Job(1, 8)),
            Offer::Start { full: true, .. }
        ));
        assert!(
            matches!(q.next("a"), Some(Job(2, 5))),
            "only the latest waiting job runs"
        );
        assert!(q.next("a").is_none());
        assert!(q.next("b").is_none());
        assert!(q.next("c").is_none());
        assert!(q.is_empty());
    }
}
