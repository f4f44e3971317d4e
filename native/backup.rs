//! Sticky mode: which sessions changed since they were last written to memcached.
//!
//! In sticky mode the host's memory holds the session and memcached holds a backup. After each
//! request the host hands the session to the core, which compares per-attribute hashes with what
//! it last wrote: an unchanged session costs no network at all, except a `touch` when its
//! memcached expiry comes close.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_64;

use crate::session::SessionData;

/// What the host's session looks like, reduced to hashes: one per attribute (name and value),
/// and one for the metadata that is stored (lifetime, authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    attributes: Vec<(u64, u64)>,
    metadata: u64,
}

impl Fingerprint {
    /// The fingerprint of a session's stored content (last access and version excluded).
    pub fn of(session: &SessionData) -> Self {
        let mut metadata = Vec::with_capacity(64);
        metadata.extend_from_slice(&session.max_inactive.to_le_bytes());
        for part in [&session.auth_type, &session.principal] {
            match part {
                Some(s) => {
                    metadata.push(1);
                    metadata.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    metadata.extend_from_slice(s.as_bytes());
                }
                None => metadata.push(0),
            }
        }
        Fingerprint {
            attributes: session
                .attributes
                .iter()
                .map(|(name, value)| (xxh3_64(name.as_bytes()), xxh3_64(value)))
                .collect(),
            metadata: xxh3_64(&metadata),
        }
    }
}

/// What a backup has to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Memcached holds this content and its expiry is far: nothing to send.
    Unchanged,
    /// Memcached holds this content but its expiry comes close: renew it.
    ExpiryDue,
    /// The content differs from what was last written (or nothing was): write it.
    Changed,
}

#[derive(Debug)]
struct Tracked {
    /// The newest content handed to a write; `None` when memcached's content is not known to
    /// match the host's (never written, taken over, or the last write failed).
    latest: Option<Fingerprint>,
    /// The version of that content; every change gets the next one.
    version: u64,
    /// When memcached's expiry was last set (write or touch).
    refreshed: Instant,
}

impl Tracked {
    /// Unchanged content: is memcached's expiry due for renewal (a quarter lifetime passed)?
    fn expiry(&self, max_inactive: i32) -> Change {
        let quarter = Duration::from_secs(u64::try_from(max_inactive).unwrap_or(0) / 4);
        if max_inactive > 0 && self.refreshed.elapsed() >= quarter {
            Change::ExpiryDue
        } else {
            Change::Unchanged
        }
    }
}

/// What this host last sent to memcached for each session it wrote or loaded, by storage key.
#[derive(Debug, Default)]
pub struct Tracker {
    sessions: Mutex<HashMap<String, Tracked>>,
}

impl Tracker {
    /// Decides what a backup of this content under `key` must do, and the version it carries.
    /// A change is claimed at once (the next caller with the same content finds it unchanged),
    /// so versions grow with every change even while writes are still queued.
    pub fn compare(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        max_inactive: i32,
    ) -> (Change, u64) {
        let mut sessions = self.sessions.lock();
        let tracked = sessions.entry(key.to_owned()).or_insert_with(|| Tracked {
            latest: None,
            version: 0,
            refreshed: Instant::now(),
        });
        if tracked.latest.as_ref() != Some(fingerprint) {
            tracked.latest = Some(fingerprint.clone());
            tracked.version += 1;
            return (Change::Changed, tracked.version);
        }
        (tracked.expiry(max_inactive), tracked.version)
    }

    /// For a session the host knows unchanged since its last backup: whether its expiry is due,
    /// and its version. `None` when nothing confirmed is known of it (never written, or the last
    /// write failed): the host must then hand over its content.
    pub fn unchanged(&self, key: &str, max_inactive: i32) -> Option<(Change, u64)> {
        let sessions = self.sessions.lock();
        let tracked = sessions.get(key).filter(|t| t.latest.is_some())?;
        Some((tracked.expiry(max_inactive), tracked.version))
    }

    /// Records a session taken over from memcached at `version`: the next backup writes it
    /// with a newer version, whatever its content.
    pub fn taken_over(&self, key: &str, version: u64) {
        self.sessions.lock().insert(
            key.to_owned(),
            Tracked {
                latest: None,
                version,
                refreshed: Instant::now(),
            },
        );
    }

    /// Records that memcached's expiry of `key` was just set (by a write or a touch).
    pub fn refreshed(&self, key: &str) {
        if let Some(tracked) = self.sessions.lock().get_mut(key) {
            tracked.refreshed = Instant::now();
        }
    }

    /// Records that a write of `key` failed: memcached's content is unknown, so the next backup
    /// writes again (with a newer version).
    pub fn failed(&self, key: &str) {
        if let Some(tracked) = self.sessions.lock().get_mut(key) {
            tracked.latest = None;
        }
    }

    /// The newest version written or loaded under `key`.
    pub fn version(&self, key: &str) -> Option<u64> {
        self.sessions.lock().get(key).map(|t| t.version)
    }

    /// Forgets `key`: the session left this host.
    pub fn forget(&self, key: &str) {
        self.sessions.lock().remove(key);
    }
}

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

    fn session(attributes: &[(&str, &[u8])]) -> SessionData {
        let mut s = SessionData::new(1800);
        for (k, v) in attributes {
            s.attributes.insert((*k).into(), v.to_vec());
        }
        s
    }

    #[test]
    fn only_stored_content_counts_as_change() {
        let a = session(&[("user", b"alice"), ("cart", b"1")]);
        let mut touched = a.clone();
        touched.last_accessed += 5000;
        touched.version += 3;
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&touched));

        let mut changed = a.clone();
        changed.attributes.insert("cart".into(), b"2".to_vec());
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&changed));

        let mut removed = a.clone();
        removed.attributes.remove("cart");
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&removed));

        let mut logged_in = a.clone();
        logged_in.principal = Some("alice".into());
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&logged_in));
    }

    #[test]
    fn tracker_decides_and_counts_versions() {
        let tracker = Tracker::default();
        let a = Fingerprint::of(&session(&[("k", b"v")]));
        assert_eq!(tracker.compare("s", &a, 1800), (Change::Changed, 1));
        assert_eq!(
            tracker.compare("s", &a, 1800),
            (Change::Unchanged, 1),
            "claimed at once"
        );
        assert_eq!(tracker.compare("s", &a, 0), (Change::Unchanged, 1));
        let b = Fingerprint::of(&session(&[("k", b"w")]));
        assert_eq!(tracker.compare("s", &b, 1800), (Change::Changed, 2));
        tracker.failed("s");
        assert_eq!(
            tracker.compare("s", &b, 1800),
            (Change::Changed, 3),
            "rewritten after a failure"
        );
        tracker.taken_over("t", 7);
        assert_eq!(
            tracker.unchanged("t", 1800),
            None,
            "a taken-over session is claimed"
        );
        assert_eq!(tracker.compare("t", &a, 1800), (Change::Changed, 8));
        assert_eq!(tracker.compare("t", &a, 1800), (Change::Unchanged, 8));
        assert_eq!(tracker.unchanged("t", 1800), Some((Change::Unchanged, 8)));
        tracker.failed("t");
        assert_eq!(
            tracker.unchanged("t", 1800),
            None,
            "must be written with its content"
        );
        assert_eq!(tracker.unchanged("never", 1800), None);
        tracker.forget("s");
        assert_eq!(tracker.version("s"), None);
        assert_eq!(tracker.compare("s", &a, 1800), (Change::Changed, 1));
    }

    #[test]
    fn expiry_comes_due_after_a_quarter_lifetime() {
        let tracker = Tracker::default();
        let a = Fingerprint::of(&session(&[]));
        tracker.compare("s", &a, 4);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(tracker.compare("s", &a, 4).0, Change::ExpiryDue);
        tracker.refreshed("s");
        assert_eq!(tracker.compare("s", &a, 4).0, Change::Unchanged);
    }

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
