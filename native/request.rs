//! The request lifecycle, the same in both modes and from both faces: a host calls
//! [`begin`](crate::SessionManager::begin) when a request starts,
//! [`lookup`](crate::SessionManager::lookup) when the request first uses a session it does not
//! hold, and [`end`](crate::SessionManager::end) when it ends. This module holds what these
//! calls take and answer; the modes ([`crate::mode`]) make the decisions.
//!
//! Every decision in between is the core's: whether the request takes the session lock, the id
//! the session must have on this host (and so whether a new cookie is sent), when the session is
//! read from memcached and when the host's copy stands, re-reading under the lock, moving a
//! session off a node that is down, whether a failed read means "no session" or "refuse the
//! request", and at the end what is written and in which order, the lock released in the round
//! trip of the last write. The host keeps its own objects (sessions, cookies, response codes)
//! and does what the answers say.

use crate::copies::{Loaded, Primed};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::locking::SessionLock;
use crate::session::SessionData;
use crate::stats::{Stats, bump};

/// What a sticky session's backup did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupOutcome {
    /// Nothing changed and the memcached expiry is far: nothing was sent.
    Unchanged,
    /// Nothing changed; the memcached expiry was renewed.
    Refreshed,
    /// The session was written.
    Written,
    /// The work was handed to the background (asynchronous mode, or the synchronous wait ran
    /// out); its outcome is counted in the statistics.
    Queued,
}

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
    /// The host knows the session under `id` unchanged (changed through no method, and no value
    /// that can change in place handed out): sticky, since its last backup; non-sticky, since
    /// the read `read` (the lookup's [`SessionData::read`]) it derives from. Only its expiry may
    /// need renewing. When the core cannot vouch for the copy, the end answers
    /// [`Ended::NeedsContent`].
    Unchanged {
        /// The session's id.
        id: &'a str,
        /// Its lifetime in seconds.
        max_inactive: i32,
        /// Non-sticky: the read the host's copy derives from.
        read: Option<u64>,
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
    /// The core has no confirmed copy of the session the host calls unchanged (sticky), or
    /// cannot renew it as read (non-sticky: the read forgotten or of another id, its node down,
    /// or memcached lost it); the host ends the request again with [`Outcome::Used`] and the
    /// session's content, the request keeping its lock until then.
    NeedsContent,
}

/// A request between [`begin`](crate::SessionManager::begin) and
/// [`end`](crate::SessionManager::end). Owned by the host, which hands it back to `end`; a
/// request dropped without its end leaves its lock to expire.
#[derive(Debug, Default)]
pub struct Request {
    pub(crate) ignored: bool,
    pub(crate) invalid_id: bool,
    pub(crate) uri: String,
    /// The id the request carried, parsed.
    pub(crate) requested: Option<SessionId>,
    /// The id the session must have on this host, when it differs from the requested one.
    pub(crate) routed: Option<SessionId>,
    pub(crate) lock: Option<SessionLock>,
    /// A lookup done by `begin` (a session moved off a node that is down), for the host.
    pub(crate) prefetched: Option<Lookup>,
    /// What the session's first read found, sent by `begin` behind the lock's `add`: the
    /// request's load of the session takes it instead of reading again.
    pub(crate) primed: Option<Primed>,
    /// Ids the request looked up, and whether the session was missing.
    pub(crate) looked_up: Vec<(SessionId, bool)>,
    /// Ids handed to the host during the request, so that the ids it gives back are not parsed
    /// (nor counted as hostile) again.
    known: Vec<SessionId>,
    /// Time spent in the manager so far (its begin and lookups), for `request_time`.
    pub(crate) spent: std::time::Duration,
}

impl Request {
    /// A request for `uri`, before anything is known of its session.
    pub(crate) fn new(uri: &str) -> Self {
        Request {
            uri: uri.to_owned(),
            ..Request::default()
        }
    }

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
    pub(crate) fn resolve(&self, raw: &str, stats: &Stats) -> Result<SessionId> {
        let known = [&self.requested, &self.routed]
            .into_iter()
            .flatten()
            .chain(&self.known)
            .find(|id| id.matches(raw));
        match known {
            Some(id) => Ok(id.clone()),
            None => parse_counted(raw, stats),
        }
    }
}

/// Parses a session id from untrusted input, counting refusals (`invalid_ids`).
pub(crate) fn parse_counted(raw: &str, stats: &Stats) -> Result<SessionId> {
    SessionId::parse(raw).ok_or_else(|| {
        bump(&stats.invalid_ids);
        Error::InvalidId
    })
}
