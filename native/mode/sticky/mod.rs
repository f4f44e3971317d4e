//! Sticky mode: the host's memory holds the session, memcached a backup of it.
//!
//! After each request the host hands the session to the core, which decides from its
//! fingerprint whether anything must be sent, and sends it in the background (or waits for it,
//! up to a deadline, in synchronous mode). At the start of a request the session may have to
//! take a new id: another host's route (Tomcat failover) or a node that is down or removed
//! (memcached failover).

mod backups;
mod queue;
mod tracker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backups::{Backups, Work};
use tracker::Change;

use super::Mode;
use crate::config::Config;
use crate::copies::near::NearCached;
use crate::copies::{Loaded, Primed};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::request::{BackupOutcome, Ended, Lookup, Outcome, Request};
use crate::runtime;
use crate::session::SessionData;
use crate::stats::{Stats, bump};

/// What the backup of a session the host knows unchanged must do.
enum Unchanged {
    /// Nothing: memcached holds it and its expiry is far.
    Skipped,
    /// Renew its expiry, at this version.
    ExpiryDue(u64),
    /// Nothing confirmed is known of it: the host hands over its content.
    NeedsContent,
}

/// Sticky sessions of one manager.
#[derive(Debug)]
pub struct Sticky {
    config: Arc<Config>,
    store: Arc<NearCached>,
    stats: Arc<Stats>,
    backups: Arc<Backups>,
    /// Set once the host backs sessions up after requests: only then do loads record what
    /// they took over (a host that never backs up, like a C host using store and load, tracks
    /// nothing).
    tracks: AtomicBool,
}

impl Sticky {
    pub(crate) fn new(config: Arc<Config>, store: Arc<NearCached>, stats: Arc<Stats>) -> Self {
        let backups = Backups::start(
            Arc::clone(&store),
            Arc::clone(&stats),
            config.backup_queue_size,
        );
        Sticky {
            config,
            store,
            stats,
            backups,
            tracks: AtomicBool::new(false),
        }
    }

    fn key(&self, id: &SessionId) -> String {
        self.store.copies().key(KeyKind::Session, id)
    }

    /// Backs up a session after a request: writes it when its stored content changed, renews
    /// its memcached expiry when that comes close, and otherwise sends nothing. With `wait` the
    /// caller waits up to that long for the write; without, it returns at once. Blocks the
    /// calling thread; [`Sticky::backup_async`] is the same for async code.
    pub fn backup(
        &self,
        id: &SessionId,
        session: &SessionData,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        runtime::block_on(self.backup_async(id, session.clone(), wait))
    }

    /// [`Sticky::backup`] for async callers, given the session (a write keeps it, so that
    /// it is not copied).
    pub async fn backup_async(
        &self,
        id: &SessionId,
        session: SessionData,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        self.track_backups();
        let key = self.key(id);
        let fingerprint = Fingerprint::of(&session);
        let max_inactive = session.max_inactive;
        let (change, version) = self
            .backups
            .tracker
            .compare(&key, &fingerprint, max_inactive);
        let work = match change {
            Change::Unchanged => {
                bump(&self.stats.session_backups_skipped);
                return Ok(BackupOutcome::Unchanged);
            }
            Change::ExpiryDue => Work::Touch(Some(session)),
            Change::Changed => self.backups.write_of(id, session, version)?,
        };
        let job = self.backups.job(id, key, work, version, max_inactive);
        self.backups.submit(job, wait).await
    }

    /// Backs up a session the host knows to be unchanged since its last backup, without
    /// handing over its content: renews the expiry when due. `None` when the core has no copy
    /// of it in memcached known to match the host's; the host then calls [`Sticky::backup`].
    /// Blocks the calling thread; [`Sticky::backup_unchanged_async`] is the same for async
    /// code.
    pub fn backup_unchanged(
        &self,
        id: &SessionId,
        max_inactive: i32,
        wait: Option<Duration>,
    ) -> Result<Option<BackupOutcome>> {
        runtime::block_on(self.backup_unchanged_async(id, max_inactive, wait))
    }

    /// [`Sticky::backup_unchanged`] for async callers.
    pub async fn backup_unchanged_async(
        &self,
        id: &SessionId,
        max_inactive: i32,
        wait: Option<Duration>,
    ) -> Result<Option<BackupOutcome>> {
        let key = self.key(id);
        let version = match self.unchanged(&key, max_inactive) {
            Unchanged::Skipped => return Ok(Some(BackupOutcome::Unchanged)),
            Unchanged::NeedsContent => return Ok(None),
            Unchanged::ExpiryDue(version) => version,
        };
        let job = self
            .backups
            .job(id, key, Work::Touch(None), version, max_inactive);
        self.backups.submit(job, wait).await.map(Some)
    }

    /// What the backup of a session the host knows unchanged must do; a skipped one is counted.
    fn unchanged(&self, key: &str, max_inactive: i32) -> Unchanged {
        match self.backups.tracker.unchanged(key, max_inactive) {
            None => Unchanged::NeedsContent,
            Some((Change::Unchanged, _)) => {
                bump(&self.stats.session_backups_skipped);
                Unchanged::Skipped
            }
            Some((_, version)) => Unchanged::ExpiryDue(version),
        }
    }

    /// The host expired a session for inactivity: its copies are deleted, in order with its
    /// other writes, unless another host wrote a newer version meanwhile (it took the session
    /// over and is still using it).
    pub async fn expire(&self, id: &SessionId) -> Result<()> {
        let key = self.key(id);
        let Some(ours) = self.backups.tracker.version(&key) else {
            return Ok(());
        };
        self.backups.forget(&key);
        let job = self.backups.job(id, key, Work::Expire(ours), 0, 0);
        self.backups.run_in_order(job).await
    }

    /// Whether another host wrote a newer version of a session this host holds (it took the
    /// session over and is still using it): this host's copy timing out is not the session's
    /// end. False when this host backed nothing of it up, or memcached cannot tell.
    pub(crate) async fn superseded(&self, id: &SessionId) -> bool {
        let Some(ours) = self.backups.tracker.version(&self.key(id)) else {
            return false;
        };
        matches!(self.store.copies().stored_version(id).await, Ok(Some(stored)) if stored > ours)
    }

    /// [`Mode::begin`] when the id's node is known, as it is for nearly every request: no wait.
    /// Hands the id back when its node must be looked up first.
    pub(crate) fn begin_now(
        &self,
        request: &mut Request,
        id: SessionId,
        route: Option<&str>,
    ) -> std::result::Result<(), SessionId> {
        let Some(routed) = super::route_now(self.store.copies(), &id, route) else {
            return Err(id);
        };
        request.routed = routed;
        request.requested = Some(id);
        Ok(())
    }

    /// [`Mode::end`] when it sends nothing: a session unused, not stored, or unchanged with its
    /// expiry far. `None` when it must wait (a write, a renewal): call `end`.
    pub(crate) fn end_now(
        &self,
        request: &Request,
        outcome: &Outcome<'_>,
    ) -> Option<Result<Ended>> {
        let backup = match outcome {
            Outcome::Unused | Outcome::NotStored => None,
            Outcome::Unchanged {
                id, max_inactive, ..
            } => {
                let id = match request.resolve(id, &self.stats) {
                    Ok(id) => id,
                    Err(e) => return Some(Err(e)),
                };
                match self.unchanged(&self.key(&id), *max_inactive) {
                    Unchanged::Skipped => Some(BackupOutcome::Unchanged),
                    Unchanged::NeedsContent | Unchanged::ExpiryDue(_) => return None,
                }
            }
            Outcome::Used { .. } => return None,
        };
        Some(Ok(Ended::Done {
            moved: None,
            backup,
        }))
    }

    /// How long a request waits for its backup: not at all with asynchronous backups.
    fn wait(&self) -> Option<Duration> {
        (!self.config.session_backup_async).then_some(self.config.session_backup_timeout)
    }
}

impl Mode for Sticky {
    fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stores only once: every request declares it, from every thread.
    fn track_backups(&self) {
        if !self.tracks.load(Ordering::Relaxed) {
            self.tracks.store(true, Ordering::Relaxed);
        }
    }

    /// The session takes this host's route, and a node that is up.
    async fn begin(&self, request: &mut Request, id: SessionId, route: Option<&str>) -> Result<()> {
        if let Err(id) = self.begin_now(request, id, route) {
            request.routed = super::route(self.store.copies(), &id, route).await;
            request.requested = Some(id);
        }
        Ok(())
    }

    /// The host holds its sessions: a copy shared with another request is current.
    fn shares(&self, _request: &Request) -> bool {
        true
    }

    /// A session taken over from memcached (Tomcat failover) is recorded, so that the next
    /// backup claims it with a newer version and the host it came from keeps it when that host
    /// expires its stale copy.
    async fn load(&self, id: &SessionId, primed: Option<Primed>) -> Result<Option<Loaded>> {
        let Some(found) = self.store.load(id, primed).await? else {
            return Ok(None);
        };
        if self.tracks.load(Ordering::Relaxed) {
            let current = found.loaded.relocated.as_ref().unwrap_or(id);
            let key = self.key(current);
            let version = found.loaded.session.version;
            self.backups.taken_over(&key, version, found.base);
        }
        Ok(Some(found.loaded))
    }

    /// Sticky hosts hold their sessions: what memcached cannot give them is no session.
    fn unreadable(&self, _error: &Error) -> Lookup {
        Lookup::Missing
    }

    /// A used session is backed up: written when it changed, its expiry renewed when due, in
    /// the background unless backups are synchronous.
    async fn end(&self, request: &mut Request, outcome: Outcome<'_>) -> Result<Ended> {
        if let Some(ended) = self.end_now(request, &outcome) {
            return ended;
        }
        let wait = self.wait();
        let outcome = match outcome {
            Outcome::Unused | Outcome::NotStored => None,
            Outcome::Unchanged {
                id, max_inactive, ..
            } => {
                let id = request.resolve(id, &self.stats)?;
                match self.backup_unchanged_async(&id, max_inactive, wait).await? {
                    Some(outcome) => Some(outcome),
                    None => return Ok(Ended::NeedsContent),
                }
            }
            Outcome::Used { id, session, .. } => {
                let id = request.resolve(id, &self.stats)?;
                Some(self.backup_async(&id, session, wait).await?)
            }
        };
        Ok(Ended::Done {
            moved: None,
            backup: outcome,
        })
    }

    async fn expire(&self, id: &SessionId) -> Result<()> {
        Sticky::expire(self, id).await
    }

    /// In order with the session's writes: one already on its way cannot bring it back.
    async fn remove(&self, id: &SessionId) -> Result<()> {
        let key = self.key(id);
        self.backups.forget(&key);
        let job = self.backups.job(id, key, Work::Delete, 0, 0);
        self.backups.run_in_order(job).await
    }

    fn flush(&self, timeout: Duration) -> usize {
        self.backups.flush(timeout)
    }
}
