//! The request lifecycle, the same in both modes and from both faces: a host calls
//! [`SessionManager::begin`] when a request starts, [`SessionManager::lookup`] when the request
//! first uses a session it does not hold, and [`SessionManager::end`] when it ends.
//!
//! Every decision in between is made here: whether the request takes the session lock, the id
//! the session must have on this host (and so whether a new cookie is sent), when the session is
//! read from memcached and when the host's copy stands, re-reading under the lock, moving a
//! session off a node that is down, whether a failed read means "no session" or "refuse the
//! request", and at the end what is written and in which order, the lock released in the round
//! trip of the last write. The host keeps its own objects (sessions, cookies, response codes)
//! and does what the answers say.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::locking::SessionLock;
use crate::manager::{Loaded, SessionManager};
use crate::session::SessionData;
use crate::sticky::BackupOutcome;

/// What the host knows when a request starts.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart<'a> {
    /// The session id the request carries (cookie or URL), as received: untrusted.
    pub session_id: Option<&'a str>,
    /// The request's URI (`requestUriIgnorePattern`, `lockingMode`).
    pub uri: &'a str,
    /// The host's route (Tomcat's `jvmRoute`), if it has one.
    pub route: Option<&'a str>,
}

/// What the host holds in memory of a session a request looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCopy {
    /// Nothing: the session comes from memcached, if it exists.
    None,
    /// A copy that another request of this host read from memcached and uses now.
    Shared,
    /// A copy newer than memcached's: created here and not stored yet, or kept in this host's
    /// memory between requests (sticky mode; a non-sticky session that is not distributed).
    Held,
}

/// What a request found of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Memcached's copy. When it had to move to another node, [`Loaded::relocated`] names its
    /// new id: the host uses it and sends it as the new cookie.
    Found(Loaded),
    /// The host's copy is the current one: the host uses it as it is.
    Current,
    /// No such session (or none that can be read): the request may create a new one.
    Missing,
    /// The session store could not tell whether the session exists: the host refuses the
    /// request (503) rather than create a new session that would orphan the user's.
    Unavailable,
}

/// What a request did with its session, told at its end.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The request never used its session (a static resource, a health check). Non-sticky: the
    /// request still counts as the session's access, which renews its validity record.
    Unused,
    /// The request used the session, which ends it as `session` under `id`; `previous` is the
    /// id it had when the request began, when the request changed it (a login does).
    Used {
        /// The session's id now.
        id: &'a str,
        /// The session's content now.
        session: SessionData,
        /// Its id before the request changed it.
        previous: Option<&'a str>,
    },
    /// Sticky: the host knows the session under `id` unchanged since its last backup (changed
    /// through no method, holding only immutable values); only its expiry may need renewing.
    Unchanged {
        /// The session's id.
        id: &'a str,
        /// Its lifetime in seconds.
        max_inactive: i32,
    },
    /// Nothing of the session is written: another request of this host hands it back later,
    /// it is kept out of memcached, or it could not be serialized.
    NotStored,
}

/// What the end of a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Done. `moved`: the session moved to another node, and the host must use this id from
    /// now on (and send it as the new cookie if the response is not committed yet).
    Done {
        /// The session's new id, when it moved.
        moved: Option<SessionId>,
        /// Sticky: what the backup did.
        backup: Option<BackupOutcome>,
    },
    /// Sticky: the core has no confirmed copy of the session the host calls unchanged; the
    /// host ends the request again with [`Outcome::Used`] and the session's content.
    NeedsContent,
}

/// A request between [`SessionManager::begin`] and [`SessionManager::end`]. Owned by the host,
/// which hands it back to `end`; a request dropped without its end leaves its lock to expire.
#[derive(Debug, Default)]
pub struct Request {
    ignored: bool,
    invalid_id: bool,
    uri: String,
    /// The id the request carried, parsed.
    requested: Option<SessionId>,
    /// The id the session must have on this host, when it differs from the requested one.
    routed: Option<SessionId>,
    lock: Option<SessionLock>,
    /// A lookup done by `begin` (a session moved off a node that is down), for the host.
    prefetched: Option<Lookup>,
    /// Ids the request looked up, and whether the session was missing.
    looked_up: Vec<(SessionId, bool)>,
    /// Ids handed to the host during the request, so that the ids it gives back are not parsed
    /// (nor counted as hostile) again.
    known: Vec<SessionId>,
}

impl Request {
    /// Whether the request's URI matches `requestUriIgnorePattern`: it never touches memcached,
    /// and the host handles it as if no manager were there.
    pub fn ignored(&self) -> bool {
        self.ignored
    }

    /// The id of the request's session on this host: the requested one, or the one it must
    /// take here. `None` when the request carried none, or a malformed one.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.routed.as_ref().or(self.requested.as_ref())
    }

    /// The id the request carried, parsed.
    pub fn requested_id(&self) -> Option<&SessionId> {
        self.requested.as_ref()
    }

    /// Whether the session must take a new id on this host ([`Request::session_id`]): another
    /// host's route (sticky failover), or a node that is down. The host sends the new cookie.
    pub fn new_cookie(&self) -> bool {
        self.routed.is_some()
    }

    /// Whether the request carried a session id that is malformed or hostile: it has no session.
    pub fn invalid_id(&self) -> bool {
        self.invalid_id
    }

    /// Whether the request holds the session's lock.
    pub fn locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Whether `begin` already read the session (it moved off a node that is down): the host
    /// looks it up at once, to send the new cookie, and the lookup costs nothing more.
    pub fn prefetched(&self) -> bool {
        self.prefetched.is_some()
    }

    /// Records an id handed to the host during the request (a new session's).
    pub fn remember(&mut self, id: &SessionId) {
        if !self.known.contains(id) {
            self.known.push(id.clone());
        }
    }

    /// The id `raw` names: one the request knows already, else parsed (hostile ids counted).
    fn resolve(&self, manager: &SessionManager, raw: &str) -> Result<SessionId> {
        let known = [&self.requested, &self.routed]
            .into_iter()
            .flatten()
            .chain(&self.known)
            .find(|id| id.matches(raw));
        match known {
            Some(id) => Ok(id.clone()),
            None => manager.parse_id(raw),
        }
    }
}

impl SessionManager {
    /// A request starts. Requests matching `requestUriIgnorePattern` are marked ignored. The
    /// session id the request carries is parsed (once: a hostile one is counted once and the
    /// request has no session) and routed: sticky, to this host's route and a node that is up
    /// (Tomcat and memcached failover); non-sticky, the session lock is taken when
    /// `lockingMode` says so, and a session on a node that is down is moved now, while the new
    /// cookie can still be sent. Fails with [`Error::LockTimeout`] only when the lock was not
    /// acquired in time and `lockFailure="refuse"`: the host refuses the request (503).
    pub async fn begin(&self, start: RequestStart<'_>) -> Result<Request> {
        self.track_backups();
        let mut request = Request {
            uri: start.uri.to_owned(),
            ..Request::default()
        };
        if self.config.ignores_uri(start.uri) {
            request.ignored = true;
            return Ok(request);
        }
        let Some(raw) = start.session_id else {
            return Ok(request);
        };
        let Ok(id) = self.parse_id(raw) else {
            request.invalid_id = true;
            return Ok(request);
        };
        if self.config.sticky {
            request.routed = self.route_request(&id, start.route).await;
            request.requested = Some(id);
            return Ok(request);
        }
        if self.locks_request(start.uri) {
            request.lock = match self.lock_for_request(&id).await {
                Ok(lock) => lock,
                Err(e @ Error::LockTimeout(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(session = %id.redacted(), error = %e, "session not locked");
                    None
                }
            };
        }
        let moves = self.route_request(&id, None).await.is_some();
        request.requested = Some(id.clone());
        if moves {
            let found = self.read(&mut request, &id).await;
            request.prefetched = Some(found);
        }
        Ok(request)
    }

    /// The request uses the session `id` (as the host names it), of which the host holds
    /// `host`. Reads memcached unless the host's copy is current: held here, or (non-sticky)
    /// shared with another request of this host while this one holds no lock. Under the lock,
    /// a shared copy is read again (it was read before the lock was this request's). Each id
    /// is read at most once per request.
    pub async fn lookup(&self, request: &mut Request, id: &str, host: HostCopy) -> Lookup {
        let Ok(id) = request.resolve(self, id) else {
            return Lookup::Missing;
        };
        if let Some(found) = request.prefetched.take() {
            return found;
        }
        if let Some((_, missing)) = request.looked_up.iter().find(|(seen, _)| *seen == id) {
            return if *missing {
                Lookup::Missing
            } else {
                Lookup::Current
            };
        }
        let current = match host {
            HostCopy::None => false,
            HostCopy::Held => true,
            HostCopy::Shared => self.config.sticky || request.lock.is_none(),
        };
        if current {
            return Lookup::Current;
        }
        self.read(request, &id).await
    }

    /// Reads a request's session from memcached and classifies the outcome.
    async fn read(&self, request: &mut Request, id: &SessionId) -> Lookup {
        let found = match self.load(id).await {
            Ok(Some(loaded)) => {
                if let Some(moved) = &loaded.relocated {
                    request.remember(moved);
                }
                Lookup::Found(loaded)
            }
            Ok(None) => Lookup::Missing,
            Err(e) => {
                tracing::warn!(session = %id.redacted(), error = %e, "session could not be loaded from memcached");
                // No usable copy anywhere (the backup copy and the near cache were tried) is
                // no session; any other failure may hide one that exists. Sticky hosts hold
                // their sessions: what memcached cannot give them is no session.
                if matches!(e, Error::Corrupt(_)) || self.config.sticky {
                    Lookup::Missing
                } else {
                    Lookup::Unavailable
                }
            }
        };
        request
            .looked_up
            .push((id.clone(), found == Lookup::Missing));
        found
    }

    /// A request ends. Sticky: a used session is backed up (written when it changed, its expiry
    /// renewed when due, in the background unless backups are synchronous). Non-sticky: a used
    /// session is written when it changed (else only its validity record is renewed); a session
    /// the request carried but never used is renewed; then the id it had before the request
    /// changed it is retired; the lock goes in the round trip of the last write, or is handed to
    /// the next request of this host waiting for it. `lockingMode="auto"` learns from it.
    pub async fn end(
        self: &Arc<Self>,
        request: &mut Request,
        outcome: Outcome<'_>,
    ) -> Result<Ended> {
        let done = |moved| Ended::Done {
            moved,
            backup: None,
        };
        if request.ignored {
            return Ok(done(None));
        }
        if self.config.sticky {
            return self.end_sticky(request, outcome).await;
        }
        let lock = request.lock.take();
        let uri = Some(request.uri.as_str());
        match outcome {
            Outcome::Unused | Outcome::Unchanged { .. } => {
                let renews = request.looked_up.is_empty() && request.requested.is_some();
                match (&request.requested, renews) {
                    (Some(id), true) => {
                        if let Err(e) = self.accessed(id, lock, uri).await {
                            tracing::warn!(session = %id.redacted(), error = %e, "session not renewed");
                        }
                    }
                    _ => self.release(lock).await,
                }
                Ok(done(None))
            }
            Outcome::NotStored => {
                self.release(lock).await;
                Ok(done(None))
            }
            Outcome::Used {
                id,
                mut session,
                previous,
            } => {
                let id = match request.resolve(self, id) {
                    Ok(id) => id,
                    Err(e) => {
                        self.release(lock).await;
                        return Err(e);
                    }
                };
                let stored = self.finish(&id, &mut session, lock, uri).await;
                let previous = previous.and_then(|raw| request.resolve(self, raw).ok());
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

    /// The end of a sticky request: the session is backed up.
    async fn end_sticky(
        self: &Arc<Self>,
        request: &mut Request,
        outcome: Outcome<'_>,
    ) -> Result<Ended> {
        let wait =
            (!self.config.session_backup_async).then_some(self.config.session_backup_timeout);
        let outcome = match outcome {
            Outcome::Unused | Outcome::NotStored => None,
            Outcome::Unchanged { id, max_inactive } => {
                let id = request.resolve(self, id)?;
                match self.backup_unchanged_async(&id, max_inactive, wait).await? {
                    Some(outcome) => Some(outcome),
                    None => return Ok(Ended::NeedsContent),
                }
            }
            Outcome::Used { id, session, .. } => {
                let id = request.resolve(self, id)?;
                Some(self.backup_async(&id, &session, wait).await?)
            }
        };
        Ok(Ended::Done {
            moved: None,
            backup: outcome,
        })
    }

    /// Releases a lock the request's writes did not release. A failure is only logged: the
    /// request's outcome matters more than a lock that will expire.
    pub(crate) async fn release(&self, lock: Option<SessionLock>) {
        let Some(lock) = lock else { return };
        let id = lock.id.clone();
        if let Err(e) = self.unlock(lock).await {
            tracing::warn!(session = %id.redacted(), error = %e, "session lock not released");
        }
    }
}
