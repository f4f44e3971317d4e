//! The near cache: this host's own copies of sessions, for when memcached cannot serve them.
//!
//! [`NearCached`] wraps the session copies in the cluster ([`Copies`]): when the cluster is
//! unreachable (every node down or timing out) or returns corrupt data, sessions are served from
//! here and stored here, so an outage of memcached alone loses nothing a user stored. Copies written here because the cluster could not take them are
//! *dirty*: when nodes answer again they are written back (the newer copy winning over what the
//! cluster holds) and become clean. Clean copies (non-sticky mode keeps one of every session it
//! reads) are only a fallback; memcached stays the truth while it answers.
//!
//! Copies are kept by session, not by storage key: a session that moved to another node (a new
//! id with the same random part) is still found here by a host that only saw it on its old node.
//! The cache is bounded in sessions and bytes; past a bound the least recently used copy goes,
//! clean ones before dirty ones, and the first time a bound is reached it is logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::attributes::{Base, Earlier};
use super::{Copies, Found, Layout, Loaded, Outgoing, Primed, WrittenOver};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::locking::SessionLock;
use crate::runtime;
use crate::session::{SessionData, now_millis};
use crate::stats::{Stats, bump};
use crate::validity::Validity;

/// One session's copy, as stored in memcached (an envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCopy {
    /// The id the session had when it was last stored or served here.
    pub id: SessionId,
    /// The encoded session.
    pub value: Vec<u8>,
    /// Not in the cluster: must be written back.
    pub dirty: bool,
    /// Changes with every put, so a write-back marks clean only what it wrote.
    pub generation: u64,
    /// When the session was last used here, milliseconds since the Unix epoch.
    pub accessed: u64,
    /// Clean, stored attribute by attribute: what memcached held of it (its attributes'
    /// versions), so that a read fetches only the attributes changed since.
    pub(crate) base: Option<Base>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Copies and when they were last used (a tick), by the random part of their session id.
    copies: HashMap<String, (SessionCopy, u64)>,
    bytes: usize,
    tick: u64,
    full_logged: bool,
}

/// Copies of sessions, by session, bounded.
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

    /// Keeps a copy of the session stored as `id`, replacing the one kept before, whatever its
    /// id; `dirty` when the cluster does not hold it, else with what the cluster holds of it
    /// (`base`, stored attribute by attribute). A copy larger than the whole byte bound is not
    /// kept.
    pub(crate) fn put(&self, id: &SessionId, value: Vec<u8>, base: Option<Base>, dirty: bool) {
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
            base: base.filter(|_| !dirty),
        };
        if let Some((old, _)) = inner.copies.insert(id.random().to_owned(), (copy, tick)) {
            inner.bytes -= old.value.len();
        }
        inner.bytes += size;
        self.evict(&mut inner, id.random());
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

    /// The copy of the session `id` names, whatever node it was stored on, if any.
    pub fn get(&self, id: &SessionId) -> Option<SessionCopy> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.copies.get_mut(id.random()).map(|(copy, used)| {
            *used = tick;
            copy.clone()
        })
    }

    /// Records that the session was served from here now, as `id` (so a later write-back
    /// writes it where requests look for it).
    pub fn accessed(&self, id: &SessionId) {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((copy, _)) = inner.copies.get_mut(id.random()) {
            copy.accessed = now_millis();
            if copy.id.node() != id.node() {
                // Another copy than a write-back under way may be writing.
                copy.generation = tick;
            }
            copy.id.clone_from(id);
        }
    }

    /// Forgets the session's copy if it is stored as `id` (whatever the route: the session
    /// ended, or left that id); a copy stored since under the session's new id stays.
    pub fn remove(&self, id: &SessionId) {
        let mut inner = self.inner.lock();
        if inner
            .copies
            .get(id.random())
            .is_some_and(|(copy, _)| copy.id.node() == id.node())
        {
            let (copy, _) = inner.copies.remove(id.random()).expect("present above");
            inner.bytes -= copy.value.len();
        }
    }

    /// Marks the copy `written` clean if it is still the one of that put (written back);
    /// `keep` false forgets it instead.
    pub fn written_back(&self, written: &SessionCopy, keep: bool) {
        let mut inner = self.inner.lock();
        let key = written.id.random();
        let Some((copy, _)) = inner.copies.get_mut(key) else {
            return;
        };
        if copy.generation != written.generation {
            return;
        }
        if keep {
            copy.dirty = false;
        } else if let Some((copy, _)) = inner.copies.remove(key) {
            inner.bytes -= copy.value.len();
        }
    }

    /// The copies the cluster does not hold.
    pub fn dirty(&self) -> Vec<SessionCopy> {
        self.inner
            .lock()
            .copies
            .values()
            .filter(|(copy, _)| copy.dirty)
            .map(|(copy, _)| copy.clone())
            .collect()
    }

    /// Copies held and their bytes, for statistics.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.copies.len(), inner.bytes)
    }
}

/// The copies of sessions in the cluster, wrapped by this host's near cache: loads fall back to
/// the cache when the cluster cannot serve, stores that the cluster cannot take are kept here
/// (dirty) and written back by a background task when nodes answer again.
#[derive(Debug)]
pub(crate) struct NearCached {
    copies: Copies,
    cache: NearCache,
    stats: Arc<Stats>,
    /// Non-sticky: a clean copy of every session read or written is kept (sticky hosts hold
    /// their sessions in memory already).
    keeps_clean: bool,
    write_back: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for NearCached {
    fn drop(&mut self) {
        if let Some(task) = self.write_back.get_mut().take() {
            task.abort();
        }
    }
}

/// What the cluster says of a session it holds no copy of, while this host has one.
enum Recheck {
    /// The session ended (invalidated, moved to another id, expired): the copy is no loss.
    Ended,
    /// It holds the session after all: written since it was first read.
    Found(Box<Found>),
    /// It lost the session: the copy stands in.
    Lost,
}

impl NearCached {
    /// Wraps `copies` in a near cache of at most `max_sessions` copies and `max_bytes` bytes
    /// (`nearCacheMaxSessions`, `nearCacheMaxBytes`), and starts writing dirty copies back
    /// whenever a node answers again, and every `every` in case a write-back was cut short.
    pub(crate) fn start(
        copies: Copies,
        max_sessions: usize,
        max_bytes: usize,
        every: Duration,
        stats: Arc<Stats>,
    ) -> Arc<Self> {
        let recovered = copies.cluster.recovery_signal();
        let keeps_clean = copies.layout() == Layout::Replicated;
        let layer = Arc::new(NearCached {
            copies,
            cache: NearCache::new(max_sessions, max_bytes, Arc::clone(&stats)),
            stats,
            keeps_clean,
            write_back: Mutex::new(None),
        });
        let task =
            runtime::handle().spawn(write_back_forever(Arc::downgrade(&layer), recovered, every));
        *layer.write_back.lock() = Some(task);
        layer
    }

    /// The copies in the cluster, for what the near cache has no part in (renewals, reads of
    /// validity records).
    pub(crate) fn copies(&self) -> &Copies {
        &self.copies
    }

    /// Copies held and their bytes, for statistics.
    pub(crate) fn size(&self) -> (usize, usize) {
        self.cache.size()
    }

    /// Loads a session (see [`Copies::read`], which takes `primed`) within the budget of one
    /// load; when the cluster cannot serve it (unreachable, corrupt) or lost it (flushed,
    /// restarted empty), this host's copy stands in. The session found counts as accessed now:
    /// its copy exists, so the session is alive, and the request reading it is its access.
    pub(crate) async fn load(
        &self,
        id: &SessionId,
        primed: Option<Primed>,
    ) -> Result<Option<Found>> {
        let started = Instant::now();
        let deadline = started + self.copies.budget();
        // Stored attribute by attribute, this host's clean copy spares fetching what it holds.
        let kept = self
            .copies
            .split()
            .then(|| self.cache.get(id))
            .flatten()
            .filter(|copy| !copy.dirty);
        let earlier = kept.as_ref().and_then(|copy| {
            Some(Earlier {
                value: &copy.value,
                base: copy.base.as_ref()?,
            })
        });
        let found = self.copies.read(id, earlier, primed);
        let found = self.copies.until(deadline, found).await;
        let Some(mut found) = self.or_near_copy(id, found, deadline).await? else {
            bump(&self.stats.sessions_missing);
            return Ok(None);
        };
        found.loaded.session.last_accessed = now_millis();
        bump(&self.stats.sessions_loaded);
        self.stats.load_time.record(started.elapsed());
        Ok(Some(found))
    }

    /// Writes a session where its copies live (see [`Copies::write`]) within the budget of one
    /// store, bumping its version, and releasing `lock` with the primary write when it can (the
    /// lock is then taken out of the option). `base` is what memcached holds of a session stored
    /// attribute by attribute, as read by this request. When the cluster cannot take it, the
    /// session is kept here until it answers again: nothing the user stored is lost. When the
    /// session's node is down the session moves to the next available node and its new id is
    /// returned; the host must use it from now on.
    pub(crate) async fn store(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        base: Option<&Base>,
        lock: &mut Option<SessionLock>,
    ) -> Result<Option<SessionId>> {
        let started = Instant::now();
        session.version += 1;
        let value = self.copies.encode(id, session)?;
        let deadline = started + self.copies.budget();
        let out = Outgoing::new(session, &value, base);
        let written = match self
            .copies
            .until(deadline, self.copies.write(id, out, lock))
            .await
        {
            Ok(written) => written,
            Err(e) if e.is_cluster_failure() && self.cache.enabled() => {
                self.keep_dirty(id, value);
                tracing::debug!(session = %id.redacted(), error = %e, "session kept in the near cache");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        bump(&self.stats.sessions_stored);
        self.stats.store_time.record(started.elapsed());
        let target = written.id;
        if self.keeps_clean {
            self.cache.put(&target, value, written.base, false);
        } else {
            self.cache.remove(&target);
        }
        if target == *id {
            return Ok(None);
        }
        bump(&self.stats.sessions_relocated);
        tracing::info!(from = id.node(), to = target.node(), "session relocated");
        self.delete(id).await.ok();
        Ok(Some(target))
    }

    /// Writes a sticky session in place (see [`Copies::write_in_place`]); when the cluster
    /// cannot take it, it is kept here until the cluster answers again.
    pub(crate) async fn store_in_place(
        &self,
        id: &SessionId,
        out: Outgoing<'_>,
        exptime: u64,
    ) -> Result<Option<Base>> {
        match self.copies.write_in_place(id, out, exptime).await {
            Ok(base) => {
                self.cache.remove(id);
                Ok(base)
            }
            Err(e) => {
                if e.is_cluster_failure() {
                    self.keep_dirty(id, out.whole.to_vec());
                }
                Err(e)
            }
        }
    }

    /// Deletes every copy of a session (see [`Copies::delete`]); this host's copy goes too,
    /// unless it was taken as another id.
    pub(crate) async fn delete(&self, id: &SessionId) -> Result<()> {
        self.cache.remove(id);
        self.copies.delete(id).await
    }

    /// Keeps a copy the cluster could not take, to write back when it answers again.
    fn keep_dirty(&self, id: &SessionId, value: Vec<u8>) {
        self.cache.put(id, value, None, true);
        bump(&self.stats.near_cache_stored);
    }

    /// What a load found in the cluster, or, when the cluster could not serve the session
    /// (unreachable, corrupt) or lost it (flushed, restarted empty), this host's copy of it.
    /// Checks that the cluster does not say the session ended run until `deadline`.
    async fn or_near_copy(
        &self,
        id: &SessionId,
        found: Result<Option<Found>>,
        deadline: Instant,
    ) -> Result<Option<Found>> {
        let failure = match found {
            Ok(Some(found)) => return Ok(Some(self.keep_clean(id, found))),
            Ok(None) => None,
            Err(e) if e.is_cluster_failure() || matches!(e, Error::Corrupt(_)) => Some(e),
            Err(e) => return Err(e),
        };
        // A copy stands in only for an id naming a node of this cluster.
        let copy = self
            .copies
            .cluster
            .node(id.node())
            .and_then(|_| self.cache.get(id));
        let Some(copy) = copy else {
            return failure.map_or(Ok(None), Err);
        };
        if let Some(e) = failure {
            // The cluster cannot tell: the copy is served.
            return self.serve(id, copy).map(Some).ok_or(e);
        }
        match self.copies.until(deadline, self.recheck(id, &copy)).await {
            Ok(Recheck::Ended) => Ok(None),
            Ok(Recheck::Found(found)) => Ok(Some(self.keep_clean(id, *found))),
            Ok(Recheck::Lost) | Err(_) => Ok(self.serve(id, copy)),
        }
    }

    /// Asks the cluster, which holds no copy of the session `id` names, whether that is because
    /// the session ended. Only an ended or expired validity record says so, under `id` or under
    /// the id this host's copy was taken as (an ended session must not come back under another
    /// node's id). A live record without its session means the session was written since it was
    /// read (another host's write-back, say), so it is read again.
    async fn recheck(&self, id: &SessionId, copy: &SessionCopy) -> Result<Recheck> {
        let now = now_millis();
        let ended = |record: Option<Validity>| record.is_some_and(|r| r.expired(now));
        let record = self.copies.record(id).await;
        if ended(record) {
            // A copy taken as another id (the session's newer one) stays.
            self.cache.remove(id);
            return Ok(Recheck::Ended);
        }
        let moved = copy.id.node() != id.node();
        if moved && ended(self.copies.record(&copy.id).await) {
            self.cache.remove(&copy.id);
            return Ok(Recheck::Ended);
        }
        if record.is_some() {
            if let Some(found) = self.copies.read(id, None, None).await? {
                return Ok(Recheck::Found(Box::new(found)));
            }
        }
        // No record, or no session after all (evicted alone): the cluster lost it.
        Ok(Recheck::Lost)
    }

    /// Non-sticky: keeps a clean copy of a session found in the cluster, as the id it has now.
    fn keep_clean(&self, id: &SessionId, found: Found) -> Found {
        if self.keeps_clean {
            let current = found.loaded.relocated.as_ref().unwrap_or(id);
            self.cache
                .put(current, found.value.clone(), found.base.clone(), false);
        }
        found
    }

    /// The session `id` names served from this host's copy, unless the copy expired by its own
    /// lifetime.
    fn serve(&self, id: &SessionId, copy: SessionCopy) -> Option<Found> {
        let session = self.copies.codec.decode(id.random(), &copy.value).ok()?;
        let expired = Validity {
            last_accessed: copy.accessed.max(session.last_accessed),
            max_inactive: session.max_inactive,
            copies_expire: 0,
        }
        .expired(now_millis());
        if expired {
            self.cache.remove(&copy.id);
            return None;
        }
        self.cache.accessed(id);
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
            base: None,
        })
    }

    /// Writes the dirty copies whose node answers back to the cluster, unless the cluster holds
    /// a newer copy or says the session ended, then keeps them as clean copies (non-sticky) or
    /// drops them. A copy that lost a race with a request's write stays dirty and is compared
    /// again next time.
    async fn write_back(&self) {
        let cluster = &self.copies.cluster;
        if !cluster.nodes().iter().any(|n| n.is_up()) {
            return;
        }
        let dirty = self.cache.dirty();
        if dirty.is_empty() {
            return;
        }
        let mut written = 0;
        for copy in dirty {
            let Some(node) = cluster.node(copy.id.node()).filter(|n| n.is_up()) else {
                continue;
            };
            let Ok(ours) = self.copies.codec.decode(copy.id.random(), &copy.value) else {
                self.cache.remove(&copy.id);
                continue;
            };
            match self
                .copies
                .write_over(&node, &copy.id, &copy.value, &ours)
                .await
            {
                Ok(WrittenOver::Written) => {
                    written += 1;
                    bump(&self.stats.near_cache_written_back);
                    self.cache.written_back(&copy, self.keeps_clean);
                }
                Ok(WrittenOver::Superseded) => {
                    bump(&self.stats.near_cache_superseded);
                    self.cache.written_back(&copy, false);
                }
                Ok(WrittenOver::Raced) | Err(_) => {}
            }
        }
        if written > 0 {
            tracing::info!(sessions = written, "near cache written back to memcached");
        }
    }
}

/// Writes the near cache back whenever a node answers again, and every `every` in case a
/// write-back was cut short; ends with the layer.
async fn write_back_forever(
    layer: std::sync::Weak<NearCached>,
    recovered: Arc<tokio::sync::Notify>,
    every: Duration,
) {
    loop {
        tokio::select! {
            () = recovered.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        let Some(layer) = layer.upgrade() else {
            return;
        };
        layer.write_back().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SessionId {
        on(n, "n1")
    }

    fn on(n: u8, node: &str) -> SessionId {
        SessionId::parse(&format!("{n:032X}-{node}")).unwrap()
    }

    #[test]
    fn keeps_within_its_bounds_dropping_clean_copies_first() {
        let cache = NearCache::new(2, 1000, Arc::default());
        cache.put(&id(1), vec![0; 10], None, true);
        cache.put(&id(2), vec![0; 10], None, false);
        cache.put(&id(3), vec![0; 10], None, false);
        assert!(cache.get(&id(1)).is_some(), "dirty copies go last");
        assert!(
            cache.get(&id(2)).is_none(),
            "least recently used clean copy went"
        );
        assert_eq!(cache.size(), (2, 20));
        cache.put(&id(4), vec![0; 995], None, false);
        assert_eq!(cache.size(), (1, 995), "the byte bound holds");
        cache.put(&id(5), vec![0; 1001], None, true);
        assert!(cache.get(&id(5)).is_none(), "larger than the whole cache");
    }

    #[test]
    fn write_back_marks_clean_only_what_it_wrote() {
        let cache = NearCache::new(10, 1000, Arc::default());
        cache.put(&id(1), vec![1], None, true);
        let written = cache.dirty().pop().unwrap();
        cache.put(&id(1), vec![2], None, true);
        cache.written_back(&written, true);
        assert_eq!(cache.dirty().len(), 1, "a newer copy came meanwhile");
        let newer = cache.dirty().pop().unwrap();
        cache.written_back(&newer, true);
        assert!(cache.dirty().is_empty());
        assert_eq!(cache.get(&id(1)).unwrap().value, vec![2]);
        cache.written_back(&newer, false);
        assert!(cache.get(&id(1)).is_none());
    }

    #[test]
    fn a_session_is_found_on_any_node_and_forgotten_only_under_its_id() {
        let cache = NearCache::new(10, 1000, Arc::default());
        cache.put(&on(1, "n1"), vec![1], None, false);
        let moved = on(1, "n2");
        assert_eq!(cache.get(&moved).unwrap().id, on(1, "n1"));
        cache.accessed(&moved);
        assert_eq!(cache.get(&moved).unwrap().id, moved, "served as its new id");
        cache.remove(&on(1, "n1"));
        assert!(
            cache.get(&moved).is_some(),
            "its old id left, not the session"
        );
        cache.remove(&moved);
        assert!(cache.get(&moved).is_none());
        assert_eq!(cache.size(), (0, 0));
    }

    #[test]
    fn disabled_keeps_nothing() {
        let cache = NearCache::new(0, 1000, Arc::default());
        cache.put(&id(1), vec![1], None, true);
        assert!(cache.get(&id(1)).is_none());
    }
}
