//! Non-sticky requests: memcached is the session store. A request that may change its session
//! loads it under the session lock at its start and stores it at its end, releasing the lock, so
//! concurrent requests of one session on different hosts never overwrite each other's changes.

use crate::backup::Fingerprint;
use crate::config::LockingMode;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::locking::SessionLock;
use crate::manager::{Loaded, SessionManager};
use crate::session::SessionData;

/// Most URIs `lockingMode="auto"` remembers as read-only; past it, it starts over.
const MAX_READ_ONLY_URIS: usize = 10_000;

impl SessionManager {
    /// Takes the session's lock, then loads the session (`None` when memcached does not hold
    /// it; the lock is held either way, so the request may create it). When the session moved to
    /// another node, [`Loaded::relocated`] carries its new id.
    pub async fn load_locked(&self, id: &SessionId) -> Result<(Option<Loaded>, SessionLock)> {
        let lock = self.lock(id).await?;
        match self.load(id).await {
            Ok(loaded) => Ok((loaded, lock)),
            Err(e) => {
                // Loading failed: nobody else must wait for this request's lock.
                self.unlock(lock).await.ok();
                Err(e)
            }
        }
    }

    /// Stores the session (see [`SessionManager::store`]) and releases the lock taken by
    /// [`SessionManager::load_locked`]. The lock is released whatever the store's outcome; the
    /// store's result is returned.
    pub async fn store_and_unlock(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: SessionLock,
    ) -> Result<Option<SessionId>> {
        let stored = self.store(id, session).await;
        let released = self.unlock(lock).await;
        let moved = stored?;
        released?;
        Ok(moved)
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

    /// Non-sticky request end, for a session loaded by this host's request: stores it when the
    /// request changed it (both copies), otherwise only renews its expiry (primary and backup);
    /// then releases the lock, if the request held one. Remembers for `lockingMode="auto"`
    /// whether requests for `uri` change their session. Returns the new id when the session
    /// moved to another node.
    pub async fn finish(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: Option<SessionLock>,
        uri: Option<&str>,
    ) -> Result<Option<SessionId>> {
        let key = self.key(KeyKind::Session, id);
        let unchanged = self.tracker.matches(&key, &Fingerprint::of(session));
        self.tracker.forget(&key);
        let result = if unchanged {
            self.touch(id, session.max_inactive).await.map(|_| None)
        } else {
            self.store(id, session).await
        };
        if let (LockingMode::Auto, Some(uri)) = (&self.config.locking_mode, uri) {
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
        if let Some(lock) = lock {
            // The store's outcome (a new id above all) matters more than a lock that will expire.
            if let Err(e) = self.unlock(lock).await {
                tracing::warn!(session = %id.redacted(), error = %e, "session lock not released");
            }
        }
        result
    }

    /// Takes the lock for a request that locks ([`SessionManager::locks_request`]). When the lock
    /// is not acquired within `lockMaxWait`, `lockFailure` decides: `proceed` (the default)
    /// returns `None` and the request goes on unlocked; `refuse` fails with
    /// [`Error::LockTimeout`]. Both are counted and logged by the lock itself.
    pub async fn lock_for_request(&self, id: &SessionId) -> Result<Option<SessionLock>> {
        match self.lock(id).await {
            Ok(lock) => Ok(Some(lock)),
            Err(Error::LockTimeout(_)) if !self.config.lock_failure_refuses => {
                tracing::warn!(session = %id.redacted(), "request proceeds without the session lock");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
