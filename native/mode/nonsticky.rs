//! Non-sticky mode: memcached is the session store. A request that may change its session takes
//! the session lock at its start and stores the session at its end, releasing the lock in the
//! same round trip, so concurrent requests of one session on different hosts never overwrite
//! each other's changes. A request that did not change its session renews only its validity
//! record.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::Mode;
use crate::config::{Config, LockingMode};
use crate::copies::attributes::Base;
use crate::copies::near::NearCached;
use crate::copies::{Loaded, PrimaryRead, Primed};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::ids::SessionId;
use crate::locking::{Locks, SessionLock};
use crate::request::{Ended, Lookup, Outcome, Request};
use crate::session::SessionData;
use crate::stats::Stats;
use crate::validity::Validity;

/// Most URIs `lockingMode="auto"` remembers as read-only; past it, it starts over.
const MAX_READ_ONLY_URIS: usize = 10_000;
/// Most reads remembered as handed out and not yet handed back; past it, the oldest go (a
/// session handed back from a forgotten read is written as it is).
const MAX_HANDED_OUT: usize = 100_000;

/// Non-sticky sessions of one manager.
#[derive(Debug)]
pub struct NonSticky {
    config: Arc<Config>,
    store: Arc<NearCached>,
    locks: Arc<Locks>,
    stats: Arc<Stats>,
    /// What each read of a session found, by its number ([`SessionData::read`]), until the
    /// host hands back the content derived from it.
    handed_out: Mutex<BTreeMap<u64, HandedOut>>,
    /// The number of the last read handed out.
    reads: AtomicU64,
    /// `lockingMode="auto"`: URIs whose last request finished without changing its session.
    read_only_uris: Mutex<HashSet<String>>,
    /// Set once the host ends its requests through the core: only then do loads record what
    /// they handed out (a C host using store and load hands nothing back).
    tracks: AtomicBool,
}

impl NonSticky {
    pub(crate) fn new(
        config: Arc<Config>,
        store: Arc<NearCached>,
        locks: Arc<Locks>,
        stats: Arc<Stats>,
    ) -> Self {
        NonSticky {
            config,
            store,
            locks,
            stats,
            handed_out: Mutex::default(),
            reads: AtomicU64::new(0),
            read_only_uris: Mutex::default(),
            tracks: AtomicBool::new(false),
        }
    }

    /// Whether a request for `uri` takes the session lock (`lockingMode`): never, always,
    /// when the URI matches the pattern, or (`auto`) unless the URI's last request finished
    /// without changing its session.
    pub fn locks_request(&self, uri: &str) -> bool {
        match &self.config.locking_mode {
            LockingMode::None => false,
            LockingMode::All => true,
            LockingMode::UriPattern(pattern) => pattern.is_match(uri),
            LockingMode::Auto => !self.read_only_uris.lock().contains(uri),
        }
    }

    /// Takes the lock for a request that locks ([`NonSticky::locks_request`]). When the lock is
    /// not acquired within `lockMaxWait`, `lockFailure` decides: `proceed` (the default)
    /// returns `None` and the request goes on unlocked; `refuse` fails with
    /// [`Error::LockTimeout`]. Both are counted and logged by the lock itself.
    pub async fn lock_for_request(&self, id: &SessionId) -> Result<Option<SessionLock>> {
        Ok(self.lock_reading(id).await?.map(|(lock, _)| lock))
    }

    /// [`NonSticky::lock_for_request`], reading the session on its node in the round trip that
    /// takes the lock: what the request's load of the session then takes (a request under the
    /// lock reads its session anew anyway).
    async fn lock_reading(&self, id: &SessionId) -> Result<Option<(SessionLock, Option<Primed>)>> {
        let copies = self.store.copies();
        let read = copies.primary_read(id);
        let keys = read.as_ref().map(PrimaryRead::keys);
        let command = read.as_ref().zip(keys.as_ref()).map(|(r, k)| r.command(k));
        match self.locks.lock_reading(id, command).await {
            Ok((lock, items)) => {
                let primed = read.zip(items).map(|(read, items)| read.primed(items));
                Ok(Some((lock, primed)))
            }
            Err(Error::LockTimeout(_)) if !self.config.lock_failure_refuses => {
                tracing::warn!(session = %id.redacted(), "request proceeds without the session lock");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Loads a session, taking what `primed` found instead of reading it again; one read from
    /// the cluster, when the host ends its requests here, is numbered and what it found kept
    /// until the host hands the session back (see [`SessionData::read`]).
    async fn hand_out(&self, id: &SessionId, primed: Option<Primed>) -> Result<Option<Loaded>> {
        let Some(found) = self.store.load(id, primed).await? else {
            return Ok(None);
        };
        let mut loaded = found.loaded;
        if !self.tracks.load(Ordering::Relaxed) || found.from_near {
            return Ok(Some(loaded));
        }
        let handed = HandedOut {
            id: loaded.relocated.clone().unwrap_or_else(|| id.clone()),
            fingerprint: Fingerprint::of(&loaded.session),
            version: loaded.session.version,
            validity: found.validity,
            base: found.base,
        };
        let read = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        loaded.session.read = Some(read);
        let mut handed_out = self.handed_out.lock();
        while handed_out.len() >= MAX_HANDED_OUT {
            handed_out.pop_first();
        }
        handed_out.insert(read, handed);
        Ok(Some(loaded))
    }

    /// The end of a request that used a session: stores it when the request changed it since
    /// the read it derives from (both copies and the validity record), otherwise renews only
    /// its validity record (and its copies' expiry when that comes close); then releases the
    /// lock, if the request held one, in the same round trip where it can. Remembers for
    /// `lockingMode="auto"` whether requests for `uri` change their session. Returns the new id
    /// when the session moved to another node.
    pub async fn finish(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: Option<SessionLock>,
        uri: Option<&str>,
    ) -> Result<Option<SessionId>> {
        let read = session
            .read
            .take()
            .and_then(|read| self.handed_out.lock().remove(&read))
            // Under another id (a login changed it) memcached holds nothing of it yet.
            .filter(|read| read.id.storage_part() == id.storage_part());
        let mut lock = lock;
        let mut unchanged = false;
        let result = match read {
            Some(read) if read.fingerprint == Fingerprint::of(session) => {
                unchanged = true;
                session.version = read.version;
                let base = read.base.as_ref();
                let (max_inactive, validity) = (session.max_inactive, read.validity.as_ref());
                let copies = self.store.copies();
                match copies
                    .renew(id, max_inactive, validity, base, &mut lock)
                    .await
                {
                    Ok(true) => Ok(None),
                    // Its node is down, or memcached lost it: write it.
                    Ok(false) => self.store.store(id, session, base, &mut lock).await,
                    Err(e) => Err(e),
                }
            }
            Some(read) => {
                session.version = read.version;
                let base = read.base.as_ref();
                self.store.store(id, session, base, &mut lock).await
            }
            None => self.store.store(id, session, None, &mut lock).await,
        };
        self.learn(uri, unchanged);
        self.locks.release(lock).await;
        result
    }

    /// The end of a request whose session the host knows unchanged since the read `read` it
    /// derives from: renews the session as [`NonSticky::finish`] renews an unchanged one, with
    /// what that read found. `false` (the lock still held) when the read is forgotten or was of
    /// another id, or when the session's node is down or memcached lost it: its content must be
    /// stored.
    async fn renew_read(
        &self,
        id: &SessionId,
        read: u64,
        max_inactive: i32,
        lock: &mut Option<SessionLock>,
    ) -> Result<bool> {
        let handed = self.handed_out.lock().remove(&read);
        let Some(handed) = handed.filter(|h| h.id.storage_part() == id.storage_part()) else {
            return Ok(false);
        };
        let (validity, base) = (handed.validity.as_ref(), handed.base.as_ref());
        let copies = self.store.copies();
        let renewed = copies.renew(id, max_inactive, validity, base, lock).await;
        if let Ok(false) = renewed {
            // The write that follows derives from the same read.
            self.handed_out.lock().insert(read, handed);
        }
        renewed
    }

    /// The end of a request that carried the session's id but never used the session: the
    /// request still counts as the session's access, which renews only the session's validity
    /// record, not loading the session. Then releases the lock, if the request held one. For
    /// `lockingMode="auto"`, requests for `uri` count as read-only. `false` when memcached holds
    /// no live session under `id` (or its node is down: the next request that uses it moves
    /// it).
    pub async fn accessed(
        &self,
        id: &SessionId,
        lock: Option<SessionLock>,
        uri: Option<&str>,
    ) -> Result<bool> {
        self.accessed_primed(id, lock, uri, None).await
    }

    /// [`NonSticky::accessed`], taking the validity record from what the round trip that took
    /// the lock read (`primed`) instead of reading it again.
    async fn accessed_primed(
        &self,
        id: &SessionId,
        lock: Option<SessionLock>,
        uri: Option<&str>,
        primed: Option<Primed>,
    ) -> Result<bool> {
        self.learn(uri, true);
        let mut lock = lock;
        let result = self
            .store
            .copies()
            .renew_unread(id, &mut lock, primed)
            .await;
        self.locks.release(lock).await;
        result
    }

    /// `lockingMode="auto"`: remembers whether the last request for `uri` left its session
    /// unchanged (such URIs stop locking) or not.
    fn learn(&self, uri: Option<&str>, unchanged: bool) {
        let (LockingMode::Auto, Some(uri)) = (&self.config.locking_mode, uri) else {
            return;
        };
        let mut read_only = self.read_only_uris.lock();
        if !unchanged {
            read_only.remove(uri);
        } else {
            if read_only.len() >= MAX_READ_ONLY_URIS {
                read_only.clear();
            }
            read_only.insert(uri.to_owned());
        }
    }
}

impl Mode for NonSticky {
    fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stores only once: every request declares it, from every thread.
    fn track_backups(&self) {
        if !self.tracks.load(Ordering::Relaxed) {
            self.tracks.store(true, Ordering::Relaxed);
        }
    }

    /// The session lock is taken when `lockingMode` says so, and a session on a node that is
    /// down is moved now, while the new cookie can still be sent.
    async fn begin(
        &self,
        request: &mut Request,
        id: SessionId,
        _route: Option<&str>,
    ) -> Result<()> {
        if self.locks_request(&request.uri) {
            // Boxed: waiting for a lock is long next to an allocation, and most requests
            // take none.
            (request.lock, request.primed) = match Box::pin(self.lock_reading(&id)).await {
                Ok(Some((lock, primed))) => (Some(lock), primed),
                Ok(None) => (None, None),
                Err(e @ Error::LockTimeout(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(session = %id.redacted(), error = %e, "session not locked");
                    (None, None)
                }
            };
        }
        // Non-sticky requests go to any host: the route carries no meaning and stays.
        let moves = super::route(self.store.copies(), &id, id.route())
            .await
            .is_some();
        request.requested = Some(id.clone());
        if moves {
            let found = self.read(request, &id).await;
            request.prefetched = Some(found);
        }
        Ok(())
    }

    /// A copy another request of this host read is current unless this request holds the
    /// lock: it was read before the lock was this request's.
    fn shares(&self, request: &Request) -> bool {
        request.lock.is_none()
    }

    /// A session read from the cluster is numbered, so that its end writes it only if it
    /// changed (one served from the near cache is always written: the cluster lacks it).
    async fn load(&self, id: &SessionId, primed: Option<Primed>) -> Result<Option<Loaded>> {
        self.hand_out(id, primed).await
    }

    /// No usable copy anywhere (the second copy and the near cache were tried) is no session;
    /// any other failure may hide one that exists, so the request is refused rather than given
    /// a new session that would orphan the user's.
    fn unreadable(&self, error: &Error) -> Lookup {
        if matches!(error, Error::Corrupt(_)) {
            Lookup::Missing
        } else {
            Lookup::Unavailable
        }
    }

    /// A used session is written when it changed (else only its validity record is renewed);
    /// one the host calls unchanged since its read is renewed as that read found it, or its
    /// content is asked for; a session the request carried but never used is renewed; then the
    /// id it had before the request changed it is retired. The lock goes in the round trip of the last write, or is
    /// handed to the next request of this host waiting for it. `lockingMode="auto"` learns.
    async fn end(&self, request: &mut Request, outcome: Outcome<'_>) -> Result<Ended> {
        let done = |moved| Ended::Done {
            moved,
            backup: None,
        };
        let lock = request.lock.take();
        let uri = Some(request.uri.as_str());
        match outcome {
            Outcome::Unchanged {
                id,
                max_inactive,
                read: Some(read),
            } => {
                let mut lock = lock;
                let renewed = match request.resolve(id, &self.stats) {
                    Ok(id) => Box::pin(self.renew_read(&id, read, max_inactive, &mut lock)).await,
                    Err(e) => Err(e),
                };
                if let Ok(false) = renewed {
                    // The content is asked for, and stored under this lock.
                    request.lock = lock;
                    return Ok(Ended::NeedsContent);
                }
                self.learn(uri, true);
                self.locks.release(lock).await;
                renewed.map(|_| done(None))
            }
            Outcome::Unused | Outcome::Unchanged { .. } => {
                let renews = request.looked_up.is_empty() && request.requested.is_some();
                match (&request.requested, renews) {
                    (Some(id), true) => {
                        // Boxed, as every wait on the network: this future stays small.
                        let primed = request.primed.take();
                        let accessed = self.accessed_primed(id, lock, uri, primed);
                        if let Err(e) = Box::pin(accessed).await {
                            tracing::warn!(session = %id.redacted(), error = %e, "session not renewed");
                        }
                    }
                    _ => self.locks.release(lock).await,
                }
                Ok(done(None))
            }
            Outcome::NotStored => {
                self.locks.release(lock).await;
                Ok(done(None))
            }
            Outcome::Used {
                id,
                mut session,
                previous,
            } => {
                let id = match request.resolve(id, &self.stats) {
                    Ok(id) => id,
                    Err(e) => {
                        self.locks.release(lock).await;
                        return Err(e);
                    }
                };
                let stored = self.finish(&id, &mut session, lock, uri).await;
                let previous = previous.and_then(|raw| request.resolve(raw, &self.stats).ok());
                if let Some(previous) = previous {
                    let current = stored.as_ref().ok().cloned().flatten();
                    let current = current.unwrap_or_else(|| id.clone());
                    if let Err(e) = self.id_changed(&previous, &current).await {
                        tracing::warn!(session = %previous.redacted(), error = %e, "copies under the old id not removed");
                    }
                }
                stored.map(done)
            }
        }
    }

    /// The host never expires non-sticky sessions it does not hold; memcached's expiry of the
    /// validity record does.
    async fn expire(&self, _id: &SessionId) -> Result<()> {
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<()> {
        self.store.delete(id).await
    }

    /// Nothing runs in the background.
    fn flush(&self, _timeout: Duration) -> usize {
        0
    }
}

/// What a read of a session found, so that the end of the request that hands it back can tell
/// what changed.
#[derive(Debug, Clone)]
struct HandedOut {
    /// The id it was read under.
    id: SessionId,
    fingerprint: Fingerprint,
    version: u64,
    /// Its validity record as read with it, if one was.
    validity: Option<Validity>,
    /// Stored attribute by attribute: what memcached held of it.
    base: Option<Base>,
}
