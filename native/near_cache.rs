//! The near cache: this host's own copies of sessions, for when memcached cannot serve them.
//!
//! When the cluster is unreachable (every node down or timing out) or returns corrupt data, the
//! manager serves sessions from here and stores them here, so an outage of memcached alone
//! loses nothing a user stored. Copies written here because the cluster could not take them are
//! *dirty*: when nodes answer again they are written back (the newer copy winning over what the
//! cluster holds) and become clean. Clean copies (non-sticky mode keeps one of every session it
//! reads) are only a fallback; memcached stays the truth while it answers.
//!
//! The cache is bounded in sessions and bytes; past a bound the least recently used copy goes,
//! clean ones before dirty ones, and the first time a bound is reached it is logged.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::manager::{Found, Loaded, SessionManager};
use crate::session::{SessionData, now_millis};
use crate::stats::{Stats, bump};
use crate::validity::{Validity, copies_exptime};

/// One session's copy, as stored in memcached (an envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCopy {
    /// The session's id.
    pub id: SessionId,
    /// The encoded session.
    pub value: Vec<u8>,
    /// Not in the cluster: must be written back.
    pub dirty: bool,
    /// Changes with every put, so a write-back marks clean only what it wrote.
    pub generation: u64,
    /// When the session was last used here, milliseconds since the Unix epoch.
    pub accessed: u64,
}

#[derive(Debug, Default)]
struct Inner {
    copies: HashMap<String, (SessionCopy, u64)>,
    bytes: usize,
    tick: u64,
    full_logged: bool,
}

/// Copies of sessions by storage key, bounded.
#[derive(Debug)]
pub struct NearCache {
    max_sessions: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
    stats: Arc<Stats>,
}

impl NearCache {
    /// A cache of at most `max_sessions` copies and `max_bytes` bytes of values; 0 sessions
    /// disables it.
    pub fn new(max_sessions: usize, max_bytes: usize, stats: Arc<Stats>) -> Self {
        NearCache {
            max_sessions,
            max_bytes,
            inner: Mutex::default(),
            stats,
        }
    }

    /// Keeps a copy of the session stored under `key`, replacing any older one; `dirty` when the
    /// cluster does not hold it. A copy larger than the whole byte bound is not kept.
    pub fn put(&self, key: &str, id: &SessionId, value: Vec<u8>, dirty: bool) {
        if self.max_sessions == 0 || value.len() > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let generation = tick;
        let size = value.len();
        let copy = SessionCopy {
            id: id.clone(),
            value,
            dirty,
            generation,
            accessed: now_millis(),
        };
        if let Some((old, _)) = inner.copies.insert(key.to_owned(), (copy, tick)) {
            inner.bytes -= old.value.len();
        }
        inner.bytes += size;
        self.evict(&mut inner, key);
    }

    /// Drops least recently used copies (clean ones first) until the cache is within its
    /// bounds, sparing `keep`.
    fn evict(&self, inner: &mut Inner, keep: &str) {
        while inner.copies.len() > self.max_sessions || inner.bytes > self.max_bytes {
            if !inner.full_logged {
                inner.full_logged = true;
                tracing::warn!(
                    max_sessions = self.max_sessions,
                    max_bytes = self.max_bytes,
                    "near cache full: least recently used session copies are dropped (clean \
                     ones first); raise nearCacheMaxSessions or nearCacheMaxBytes"
                );
            }
            let victim = inner
                .copies
                .iter()
                .filter(|(key, _)| key.as_str() != keep)
                .min_by_key(|(_, (copy, used))| (copy.dirty, *used))
                .map(|(key, _)| key.clone());
            let Some(victim) = victim else { return };
            if let Some((copy, _)) = inner.copies.remove(&victim) {
                inner.bytes -= copy.value.len();
                bump(&self.stats.near_cache_evicted);
                if copy.dirty {
                    tracing::warn!(session = %copy.id.redacted(), "near cache full: a session not yet written back to memcached was dropped");
                }
            }
        }
    }

    /// Whether copies are kept at all.
    pub fn enabled(&self) -> bool {
        self.max_sessions > 0
    }

    /// The copy under `key`, if any.
    pub fn get(&self, key: &str) -> Option<SessionCopy> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.copies.get_mut(key).map(|(copy, used)| {
            *used = tick;
            copy.clone()
        })
    }

    /// Records that the session under `key` was used now (served from here).
    pub fn accessed(&self, key: &str) {
        if let Some((copy, _)) = self.inner.lock().copies.get_mut(key) {
            copy.accessed = now_millis();
        }
    }

    /// Forgets the copy under `key` (the session ended, or the cluster holds it now).
    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.lock();
        if let Some((copy, _)) = inner.copies.remove(key) {
            inner.bytes -= copy.value.len();
        }
    }

    /// Marks the copy under `key` clean if it is still the one of `generation` (written back);
    /// `keep` false forgets it instead.
    pub fn written_back(&self, key: &str, generation: u64, keep: bool) {
        let mut inner = self.inner.lock();
        let Some((copy, _)) = inner.copies.get_mut(key) else {
            return;
        };
        if copy.generation != generation {
            return;
        }
        if keep {
            copy.dirty = false;
        } else if let Some((copy, _)) = inner.copies.remove(key) {
            inner.bytes -= copy.value.len();
        }
    }

    /// The copies the cluster does not hold, by storage key.
    pub fn dirty(&self) -> Vec<(String, SessionCopy)> {
        self.inner
            .lock()
            .copies
            .iter()
            .filter(|(_, (copy, _))| copy.dirty)
            .map(|(key, (copy, _))| (key.clone(), copy.clone()))
            .collect()
    }

    /// Copies held and their bytes, for statistics.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.copies.len(), inner.bytes)
    }
}

/// Whether `theirs` is newer than `ours`: accessed later, or as late with a newer version.
fn newer(theirs: &SessionData, ours: &SessionData) -> bool {
    (theirs.last_accessed, theirs.version) > (ours.last_accessed, ours.version)
}

/// Writes the near cache back whenever a node answers again, and every `every` in case a
/// write-back was cut short; ends with the manager.
pub(crate) async fn write_back_forever(
    manager: std::sync::Weak<SessionManager>,
    recovered: Arc<tokio::sync::Notify>,
    every: std::time::Duration,
) {
    loop {
        tokio::select! {
            () = recovered.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        let Some(manager) = manager.upgrade() else {
            return;
        };
        manager.write_back().await;
    }
}

impl SessionManager {
    /// What a load found in the cluster, or, when the cluster could not serve the session
    /// (unreachable, corrupt) or lost it (flushed, restarted empty), this host's copy of it.
    pub(crate) async fn or_near_copy(
        &self,
        id: &SessionId,
        found: Result<Option<Found>>,
    ) -> Result<Option<Found>> {
        let key = self.key(KeyKind::Session, id);
        match found {
            Ok(Some(found)) => {
                if !self.config.sticky {
                    let current = found.loaded.relocated.as_ref().unwrap_or(id);
                    if current != id {
                        self.near.remove(&key);
                    }
                    let current_key = self.key(KeyKind::Session, current);
                    self.near
                        .put(&current_key, current, found.value.clone(), false);
                }
                Ok(Some(found))
            }
            Ok(None) => {
                let Some(copy) = self.near.get(&key) else {
                    return Ok(None);
                };
                if self.ended_in_cluster(id).await {
                    self.near.remove(&key);
                    return Ok(None);
                }
                // No record of it at all: the cluster lost it.
                Ok(self.serve_near(&key, id, copy))
            }
            Err(e) if e.is_cluster_failure() || matches!(e, Error::Corrupt(_)) => {
                match self.near.get(&key) {
                    Some(copy) => self.serve_near(&key, id, copy).map(Some).ok_or(e),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the cluster still has a validity record of the session (ended, expired or
    /// alive): then its lack of the session is no loss.
    async fn ended_in_cluster(&self, id: &SessionId) -> bool {
        let Some(node) = self.cluster.node(id.node()).filter(|n| n.is_up()) else {
            return false;
        };
        let key = self.key(KeyKind::Validity, id);
        // A node that fails now tells nothing: the copy is served.
        matches!(self.cluster.call(&node, |c| c.get(&key)).await, Ok(Some(_)))
    }

    /// A session served from this host's copy, unless the copy expired by its own lifetime.
    fn serve_near(&self, key: &str, id: &SessionId, copy: SessionCopy) -> Option<Found> {
        let session = self.codec.decode(id.random(), &copy.value).ok()?;
        let expired = Validity {
            last_accessed: copy.accessed.max(session.last_accessed),
            max_inactive: session.max_inactive,
            copies_expire: 0,
        }
        .expired(now_millis());
        if expired {
            self.near.remove(key);
            return None;
        }
        self.near.accessed(key);
        bump(&self.stats.near_cache_served);
        tracing::debug!(session = %id.redacted(), "session served from the near cache");
        Some(Found {
            loaded: Loaded {
                session,
                relocated: None,
            },
            validity: None,
            value: copy.value,
            from_near: true,
        })
    }

    /// Writes the near cache's dirty copies whose node answers back to the cluster, unless the
    /// cluster holds a newer copy, then keeps them as clean copies (non-sticky) or drops them.
    pub(crate) async fn write_back(&self) {
        if !self.cluster.nodes().iter().any(|n| n.is_up()) {
            return;
        }
        let dirty = self.near.dirty();
        if dirty.is_empty() {
            return;
        }
        let mut written = 0;
        for (key, copy) in dirty {
            let Some(node) = self.cluster.node(copy.id.node()).filter(|n| n.is_up()) else {
                continue;
            };
            let Ok(ours) = self.codec.decode(copy.id.random(), &copy.value) else {
                self.near.remove(&key);
                continue;
            };
            match self.read_copy(&node, KeyKind::Session, &copy.id).await {
                Ok(Some((_, theirs))) if newer(&theirs, &ours) => {
                    bump(&self.stats.near_cache_superseded);
                    self.near.written_back(&key, copy.generation, false);
                    continue;
                }
                Ok(_) | Err(Error::Corrupt(_)) => {}
                Err(_) => continue,
            }
            let exptime = copies_exptime(ours.max_inactive);
            let validity =
                (!self.config.sticky).then(|| self.validity_now(ours.max_inactive, None));
            let wrote = self
                .write_on(
                    &node,
                    &copy.id,
                    &copy.value,
                    exptime,
                    validity.as_ref(),
                    &mut None,
                )
                .await;
            if wrote.is_ok() {
                if !self.config.sticky {
                    self.write_backup(&copy.id, &copy.value, exptime).await;
                }
                written += 1;
                bump(&self.stats.near_cache_written_back);
                self.near
                    .written_back(&key, copy.generation, !self.config.sticky);
            }
        }
        if written > 0 {
            tracing::info!(sessions = written, "near cache written back to memcached");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        SessionId::parse(&format!("{:032X}-n1", n)).unwrap()
    }

    #[test]
    fn keeps_within_its_bounds_dropping_clean_copies_first() {
        let cache = NearCache::new(2, 1000, Arc::default());
        cache.put("a", &id(1), vec![0; 10], true);
        cache.put("b", &id(2), vec![0; 10], false);
        cache.put("c", &id(3), vec![0; 10], false);
        assert!(cache.get("a").is_some(), "dirty copies go last");
        assert!(
            cache.get("b").is_none(),
            "least recently used clean copy went"
        );
        assert_eq!(cache.size(), (2, 20));
        cache.put("d", &id(4), vec![0; 995], false);
        assert_eq!(cache.size(), (1, 995), "the byte bound holds");
        cache.put("e", &id(5), vec![0; 1001], true);
        assert!(cache.get("e").is_none(), "larger than the whole cache");
    }

    #[test]
    fn write_back_marks_clean_only_what_it_wrote() {
        let cache = NearCache::new(10, 1000, Arc::default());
        cache.put("a", &id(1), vec![1], true);
        let (_, written) = cache.dirty().pop().unwrap();
        cache.put("a", &id(1), vec![2], true);
        cache.written_back("a", written.generation, true);
        assert_eq!(cache.dirty().len(), 1, "a newer copy came meanwhile");
        let (_, newer) = cache.dirty().pop().unwrap();
        cache.written_back("a", newer.generation, true);
        assert!(cache.dirty().is_empty());
        assert_eq!(cache.get("a").unwrap().value, vec![2]);
        cache.written_back("a", newer.generation, false);
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn disabled_keeps_nothing() {
        let cache = NearCache::new(0, 1000, Arc::default());
        cache.put("a", &id(1), vec![1], true);
        assert!(cache.get("a").is_none());
    }
}
