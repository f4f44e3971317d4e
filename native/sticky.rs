//! Sticky-mode operations: the host's memory holds the session, memcached a backup of it.
//!
//! After each request the host hands the session to [`SessionManager::backup`]; the core
//! decides from per-attribute hashes whether anything must be sent, and sends it in the
//! background (or waits for it, up to a deadline, in synchronous mode). At the start of a request
//! [`SessionManager::route_request`] tells the host whether the session must take a new id:
//! another host's route (Tomcat failover) or a node that is down (memcached failover).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backup::{Change, Fingerprint, Offer, sticky_lifetime};
use crate::client::expiry;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::manager::SessionManager;
use crate::runtime;
use crate::session::SessionData;
use crate::stats::bump;

/// What a backup did.
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

/// Work of one backup, run in the background or on the caller's thread.
#[derive(Debug)]
pub struct BackupJob {
    id: SessionId,
    key: String,
    work: Work,
    version: u64,
    exptime: u64,
    done: Option<oneshot::Sender<Result<BackupOutcome>>>,
}

#[derive(Debug)]
enum Work {
    /// Write this encoded value.
    Write(Vec<u8>),
    /// Renew the expiry; if memcached lost the item meanwhile, write this session again (or,
    /// without the session, have the next backup write it).
    Touch(Option<SessionData>),
}

impl SessionManager {
    /// Backs up a sticky session after a request: writes it when its stored content changed,
    /// renews its memcached expiry when that comes close, and otherwise sends nothing. With
    /// `wait` the caller waits up to that long for the write; without, it returns at once.
    pub fn backup(
        self: &Arc<Self>,
        id: &SessionId,
        session: &SessionData,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        let key = self.key(KeyKind::Session, id);
        let fingerprint = Fingerprint::of(session);
        let (change, version) = self
            .tracker
            .compare(&key, &fingerprint, session.max_inactive);
        let work = match change {
            Change::Unchanged => {
                bump(&self.stats.session_backups_skipped);
                return Ok(BackupOutcome::Unchanged);
            }
            Change::ExpiryDue => Work::Touch(Some(session.clone())),
            Change::Changed => Work::Write(self.encode_version(id, session, version)?),
        };
        self.submit(id, key, work, version, session.max_inactive, wait)
    }

    /// Backs up a session the host knows to be unchanged since its last backup, without
    /// handing over its content: renews the expiry when due. `None` when the core has no
    /// confirmed copy of it in memcached; the host then calls [`SessionManager::backup`].
    pub fn backup_unchanged(
        self: &Arc<Self>,
        id: &SessionId,
        max_inactive: i32,
        wait: Option<Duration>,
    ) -> Result<Option<BackupOutcome>> {
        let key = self.key(KeyKind::Session, id);
        let Some((change, version)) = self.tracker.unchanged(&key, max_inactive) else {
            return Ok(None);
        };
        if change == Change::Unchanged {
            bump(&self.stats.session_backups_skipped);
            return Ok(Some(BackupOutcome::Unchanged));
        }
        self.submit(id, key, Work::Touch(None), version, max_inactive, wait)
            .map(Some)
    }

    /// Hands a backup job to the background queue (or runs it here when the queue is full), and
    /// waits for it up to `wait`.
    fn submit(
        self: &Arc<Self>,
        id: &SessionId,
        key: String,
        work: Work,
        version: u64,
        max_inactive: i32,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        let (done, outcome) = match wait {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let job = BackupJob {
            id: id.clone(),
            key: key.clone(),
            work,
            version,
            exptime: expiry(sticky_lifetime(max_inactive)),
            done,
        };
        match self.queue.offer(&key, job) {
            Offer::Start(job) => {
                bump(&self.stats.session_backups_queued);
                runtime::handle().spawn(Arc::clone(self).drain_backups(job));
            }
            Offer::Waiting => bump(&self.stats.session_backups_queued),
            Offer::Replaced => {
                bump(&self.stats.session_backups_queued);
                bump(&self.stats.session_backups_coalesced);
            }
            Offer::Full(job) => {
                bump(&self.stats.session_backups_queue_full);
                return runtime::block_on(self.run_backup(job));
            }
        }
        match (outcome, wait) {
            (Some(rx), Some(wait)) => runtime::block_on(async {
                match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(result)) => result,
                    // Superseded by a newer write, or still running: it goes on in the background.
                    _ => Ok(BackupOutcome::Queued),
                }
            }),
            _ => Ok(BackupOutcome::Queued),
        }
    }

    fn encode_version(
        &self,
        id: &SessionId,
        session: &SessionData,
        version: u64,
    ) -> Result<Vec<u8>> {
        let mut versioned = session.clone();
        versioned.version = version;
        self.codec.encode(id.random(), &versioned).inspect_err(|e| {
            bump(&self.stats.too_large);
            tracing::warn!(error = %e, "session not backed up");
        })
    }

    /// Runs a session's backup jobs one after the other until none is waiting.
    async fn drain_backups(self: Arc<Self>, first: BackupJob) {
        let key = first.key.clone();
        let mut job = Some(first);
        while let Some(current) = job {
            // Failures are counted and logged by run_backup, and reach a waiting caller.
            let _ = self.run_backup(current).await;
            job = self.queue.next(&key);
        }
    }

    async fn run_backup(&self, mut job: BackupJob) -> Result<BackupOutcome> {
        let started = Instant::now();
        let result = self.write_backup_job(&job).await;
        match &result {
            Ok(BackupOutcome::Written) => {
                bump(&self.stats.session_backups);
                self.stats.backup_time.record(started.elapsed());
            }
            Ok(BackupOutcome::Refreshed) => bump(&self.stats.session_backups_refreshed),
            Ok(_) => {}
            Err(e) => {
                // Unknown state in memcached: the next request writes the session again.
                self.tracker.failed(&job.key);
                bump(&self.stats.session_backups_failed);
                if matches!(e, Error::NodeDown(_)) {
                    // Already logged when the node went down; the next request moves the session.
                    tracing::debug!(session = %job.id.storage_part(), "session backup skipped: node down");
                } else {
                    tracing::warn!(session = %job.id.storage_part(), error = %e, "session backup failed");
                }
            }
        }
        if let Some(done) = job.done.take() {
            let _ = done.send(result.clone());
        }
        result
    }

    async fn write_backup_job(&self, job: &BackupJob) -> Result<BackupOutcome> {
        let node = self
            .cluster
            .node(job.id.node())
            .ok_or_else(|| Error::NodeDown(job.id.node().to_owned()))?;
        let value = match &job.work {
            Work::Write(value) => value,
            Work::Touch(session) => {
                if self
                    .cluster
                    .call(&node, |c| c.touch(&job.key, job.exptime))
                    .await?
                {
                    self.tracker.refreshed(&job.key);
                    return Ok(BackupOutcome::Refreshed);
                }
                // Evicted, flushed or deleted by another host: write it again.
                let Some(session) = session else {
                    self.tracker.failed(&job.key);
                    return Ok(BackupOutcome::Unchanged);
                };
                &self.encode_version(&job.id, session, job.version)?
            }
        };
        self.cluster
            .call(&node, |c| c.set(&job.key, value, job.exptime))
            .await?;
        self.tracker.refreshed(&job.key);
        Ok(BackupOutcome::Written)
    }

    /// The id a session requested with `id` must have on this host (route `route`): the same
    /// random part, this host's route, and its node unless that node is down or unknown, in which
    /// case the next available node. `None` when the id is right as it is. Sends nothing.
    pub fn route_request(&self, id: &SessionId, route: Option<&str>) -> Option<SessionId> {
        let node_up = self.cluster.node(id.node()).is_some_and(|n| n.is_up());
        let replacement = (!node_up)
            .then(|| self.cluster.next_available(id.node()))
            .flatten();
        let node = replacement.as_ref().map_or(id.node(), |n| n.id());
        let routed = SessionId::new(id.random(), node, route)?;
        if replacement.is_some() {
            bump(&self.stats.sessions_relocated);
            tracing::info!(from = id.node(), to = node, "session moves to another node");
        }
        (routed != *id).then_some(routed)
    }

    /// The host expired a session for inactivity: delete its memcached copies, unless another
    /// host wrote a newer version meanwhile (it took the session over and is still using it).
    pub async fn expire(&self, id: &SessionId) -> Result<()> {
        let key = self.key(KeyKind::Session, id);
        let Some(ours) = self.tracker.version(&key) else {
            return Ok(());
        };
        self.tracker.forget(&key);
        let Some(node) = self.cluster.node(id.node()) else {
            return Ok(());
        };
        match self.read_copy(&node, KeyKind::Session, id).await {
            Ok(Some((_, stored))) if stored.version > ours => {
                bump(&self.stats.expired_newer_kept);
                Ok(())
            }
            Ok(_) | Err(Error::Corrupt(_)) => self.delete_copies(id).await,
            Err(e) => Err(e),
        }
    }

    /// A session took a new id on this host. When its storage key changed (a new random part
    /// after login, or a new node), the copies under the old id are deleted; a new route alone
    /// keeps the key and everything stays.
    pub async fn id_changed(&self, old: &SessionId, new: &SessionId) -> Result<()> {
        if old.storage_part() == new.storage_part() {
            return Ok(());
        }
        self.tracker.forget(&self.key(KeyKind::Session, old));
        match self.delete_copies(old).await {
            Err(e) if e.is_node_failure() => Ok(()),
            other => other,
        }
    }

    /// Forgets what was written for a session that left this host without being deleted (its
    /// id changed, or the host stopped).
    pub fn forget(&self, id: &SessionId) {
        self.tracker.forget(&self.key(KeyKind::Session, id));
    }

    /// Waits up to `timeout` for background backups to finish; returns how many sessions still
    /// have work in flight.
    pub fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while !self.queue.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.queue.len()
    }
}
