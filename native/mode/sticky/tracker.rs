//! Sticky mode: which sessions changed since they were last written to memcached.
//!
//! In sticky mode the host's memory holds the session and memcached holds a backup. After each
//! request the host hands the session to the core, which compares its fingerprint with what it
//! last wrote: an unchanged session costs no network at all, except a `touch` when its memcached
//! expiry comes close.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_64;

use crate::fingerprint::Fingerprint;

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

/// Shards of the tracker, each on cache lines of its own: every request of every thread looks
/// its session up, and one lock made them contend.
const SHARDS: usize = 16;

#[repr(align(128))]
#[derive(Debug, Default)]
struct Shard(Mutex<HashMap<String, Tracked>>);

/// What this host last sent to memcached for each session it wrote or loaded, by storage key.
#[derive(Debug, Default)]
pub struct Tracker {
    shards: [Shard; SHARDS],
}

impl Tracker {
    /// The sessions of the shard `key` falls in.
    fn sessions(&self, key: &str) -> &Mutex<HashMap<String, Tracked>> {
        let hash = xxh3_64(key.as_bytes());
        &self.shards[(hash % SHARDS as u64) as usize].0
    }

    /// Decides what a backup of this content under `key` must do, and the version it carries.
    /// A change is claimed at once (the next caller with the same content finds it unchanged),
    /// so versions grow with every change even while writes are still queued.
    pub fn compare(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        max_inactive: i32,
    ) -> (Change, u64) {
        let mut sessions = self.sessions(key).lock();
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
        let sessions = self.sessions(key).lock();
        let tracked = sessions.get(key).filter(|t| t.latest.is_some())?;
        Some((tracked.expiry(max_inactive), tracked.version))
    }

    /// Records a session taken over from memcached at `version`: the next backup writes it
    /// with a newer version, whatever its content.
    pub fn taken_over(&self, key: &str, version: u64) {
        self.sessions(key).lock().insert(
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
        if let Some(tracked) = self.sessions(key).lock().get_mut(key) {
            tracked.refreshed = Instant::now();
        }
    }

    /// Records that a write of `key` failed: memcached's content is unknown, so the next backup
    /// writes again (with a newer version).
    pub fn failed(&self, key: &str) {
        if let Some(tracked) = self.sessions(key).lock().get_mut(key) {
            tracked.latest = None;
        }
    }

    /// The newest version written or loaded under `key`.
    pub fn version(&self, key: &str) -> Option<u64> {
        self.sessions(key).lock().get(key).map(|t| t.version)
    }

    /// Forgets `key`: the session left this host.
    pub fn forget(&self, key: &str) {
        self.sessions(key).lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::tests::session;

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
}
