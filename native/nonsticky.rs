//! Non-sticky requests: memcached is the session store. A request that may change its session
//! loads it under the session lock at its start and stores it at its end, releasing the lock, so
//! concurrent requests of one session on different hosts never overwrite each other's changes.

use crate::backup::Fingerprint;
use crate::client::{Answer, Command};
use crate::config::LockingMode;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::locking::SessionLock;
use crate::manager::{Loaded, SessionManager};
use crate::session::{SessionData, now_millis};
use crate::stats::bump;
use crate::validity::copies_exptime;

/// Most URIs `lockingMode="auto"` remembers as read-only; past it, it starts over.
const MAX_READ_ONLY_URIS: usize = 10_000;
/// Most sessions remembered as loaded and not yet handed back; past it, the oldest knowledge
/// goes (a session handed back unknown is written, never lost).
const MAX_CHECKED_OUT: usize = 100_000;

/// What a session loaded for a request held, so its end can tell whether the request changed it.
#[derive(Debug)]
pub(crate) struct CheckedOut {
    fingerprint: Fingerprint,
    version: u64,
    /// When memcached drops its copies, seconds since the Unix epoch (0: unknown or never).
    copies_expire: u64,
}

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
    /// [`SessionManager::load_locked`], in the same round trip as the write where it can. The
    /// lock is released whatever the store's outcome; the store's result is returned.
    pub async fn store_and_unlock(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: SessionLock,
    ) -> Result<Option<SessionId>> {
        let mut lock = Some(lock);
        let stored = self.store_releasing(id, session, &mut lock).await;
        let released = match lock {
            Some(lock) => self.unlock(lock).await,
            None => Ok(()),
        };
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

    /// Records a session loaded for a request that hands it back with
    /// [`SessionManager::finish`].
    pub(crate) fn check_out(&self, key: String, session: &SessionData, copies_expire: u64) {
        let mut checked_out = self.checked_out.lock();
        if checked_out.len() >= MAX_CHECKED_OUT {
            checked_out.clear();
        }
        checked_out.insert(
            key,
            CheckedOut {
                fingerprint: Fingerprint::of(session),
                version: session.version,
                copies_expire,
            },
        );
    }

    /// Non-sticky request end, for a session loaded by this host's request: stores it when the
    /// request changed it (both copies and the validity record), otherwise renews only its
    /// validity record (and its copies' expiry when that comes close); then releases the lock,
    /// if the request held one, in the same round trip where it can. Remembers for
    /// `lockingMode="auto"` whether requests for `uri` change their session. Returns the new id
    /// when the session moved to another node.
    pub async fn finish(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: Option<SessionLock>,
        uri: Option<&str>,
    ) -> Result<Option<SessionId>> {
        let key = self.key(KeyKind::Session, id);
        let checked_out = self.checked_out.lock().remove(&key);
        let mut lock = lock;
        let mut unchanged = false;
        let result = match checked_out {
            Some(loaded) if loaded.fingerprint == Fingerprint::of(session) => {
                unchanged = true;
                session.version = loaded.version;
                let renewed = self
                    .renew(id, session.max_inactive, loaded.copies_expire, &mut lock)
                    .await;
                match renewed {
                    Ok(true) => Ok(None),
                    // Its node is down, or memcached lost it: write it.
                    Ok(false) => self.store_releasing(id, session, &mut lock).await,
                    Err(e) => Err(e),
                }
            }
            loaded => {
                session.version = loaded.map_or(session.version, |l| l.version);
                self.store_releasing(id, session, &mut lock).await
            }
        };
        self.learn(uri, unchanged);
        self.release(lock).await;
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

    /// Renews a session accessed now without rewriting it: its validity record, and its copies'
    /// expiry when `copies_expire` comes close; releases `lock` in the same round trip when it
    /// can (taking it out of the option). `false` when the session's node is down or memcached
    /// no longer holds the session.
    pub(crate) async fn renew(
        &self,
        id: &SessionId,
        max_inactive: i32,
        copies_expire: u64,
        lock: &mut Option<SessionLock>,
    ) -> Result<bool> {
        let Some(node) = self.cluster.node(id.node()).filter(|n| n.is_up()) else {
            return Ok(false);
        };
        let now = now_millis() / 1000;
        let mut validity = self.validity_now(max_inactive, Some(copies_expire));
        let renew_copies = validity.copies_due(now);
        if renew_copies {
            validity = self.validity_now(max_inactive, None);
        }
        let (validity_key, record, lifetime) = self.validity_item(id, &validity);
        let key = self.key(KeyKind::Session, id);
        let copies_ttl = copies_exptime(max_inactive);
        let mut commands = vec![Command::Set {
            key: &validity_key,
            value: &record,
            exptime: lifetime,
        }];
        if renew_copies {
            commands.push(Command::Touch {
                key: &key,
                exptime: copies_ttl,
            });
        }
        let release = self.releasable(lock, &node);
        let lock_key = lock.as_ref().map(|l| l.key.clone()).unwrap_or_default();
        if let Some(release) = release {
            commands.push(self.release_command(&lock_key, release));
        }
        let sent = std::time::Instant::now();
        let backup_key = self.key(KeyKind::Backup, id);
        let renew_backup = async {
            let backup = self
                .cluster
                .next_available(id.node())
                .filter(|_| renew_copies);
            if let Some(backup) = backup {
                // A missing backup copy is written again by the next change.
                let touched = self
                    .cluster
                    .call(&backup, |c| c.touch(&backup_key, copies_ttl));
                touched.await.ok();
            }
        };
        let (answers, ()) = tokio::join!(
            self.cluster.call(&node, |c| c.pipeline(&commands)),
            renew_backup
        );
        let answers = match answers {
            Ok(answers) => answers,
            Err(e) if e.is_node_failure() => return Ok(false),
            Err(e) => return Err(e),
        };
        self.released_with(lock, release, sent, &answers);
        if renew_copies && answers.get(1) == Some(&Answer::Found(false)) {
            // Memcached lost the session: its record must not outlive it.
            self.cluster
                .call(&node, |c| c.delete(&validity_key))
                .await
                .ok();
            return Ok(false);
        }
        bump(&self.stats.sessions_touched);
        Ok(true)
    }

    /// Non-sticky end of a request that carried the session's id but never used the session:
    /// the request still counts as the session's access, which renews only the session's
    /// validity record (read first for the session's lifetime), not loading the session. Then
    /// releases the lock, if the request held one. For `lockingMode="auto"`, requests for `uri`
    /// count as read-only. `false` when memcached holds no live session under `id` (or its node
    /// is down: the next request that uses it moves it).
    pub async fn accessed(
        &self,
        id: &SessionId,
        lock: Option<SessionLock>,
        uri: Option<&str>,
    ) -> Result<bool> {
        self.learn(uri, true);
        let mut lock = lock;
        let result = self.renew_unused(id, &mut lock).await;
        self.release(lock).await;
        result
    }

    async fn renew_unused(&self, id: &SessionId, lock: &mut Option<SessionLock>) -> Result<bool> {
        let Some(node) = self.session_node(id).await.filter(|n| n.is_up()) else {
            return Ok(false);
        };
        match self.read_validity(&node, id).await? {
            Some(validity) if validity.expired(now_millis()) => Ok(false),
            Some(validity) => {
                self.renew(id, validity.max_inactive, validity.copies_expire, lock)
                    .await
            }
            None => {
                // No record (lost with an evicted item, or the session predates non-sticky
                // mode): the session's copy tells; rare, so read it.
                match self.find_copy(id).await? {
                    Some(found) if found.loaded.relocated.is_none() => {
                        self.renew(id, found.loaded.session.max_inactive, 0, lock)
                            .await
                    }
                    _ => Ok(false),
                }
            }
        }
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
