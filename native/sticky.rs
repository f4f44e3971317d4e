//! Sticky-mode operations: the host's memory holds the session, memcached a backup of it.
//!
//! After each request the host hands the session to [`SessionManager::backup`]; the core
//! decides from per-attribute hashes whether anything must be sent, and sends it in the
//! background (or waits for it, up to a deadline, in synchronous mode). At the start of a request
//! [`SessionManager::route_request`] tells the host whether the session must take a new id:
//! another host's route (Tomcat failover) or a node that is down or removed (memcached
//! failover).
//!
//! Everything that changes a session's memcached copy (writes, renewals, deletions) goes
//! through one queue, in order per session, so a deletion is never overtaken by a write that
//! was already on its way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backup::{Change, Fingerprint, Offer, Ranked};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::keys::KeyKind;
use crate::manager::SessionManager;
use crate::runtime;
use crate::session::SessionData;
use crate::stats::bump;
use crate::validity::copies_exptime;

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

/// One change of a session's memcached copies, run in the background or on the caller's thread.
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
    /// Delete every copy (invalidation, or an old id).
    Delete,
    /// The host expired the session: delete every copy unless memcached holds a version newer
    /// than this one (another host took the session over).
    Expire(u64),
}

impl Ranked for BackupJob {
    fn rank(&self) -> u8 {
        match self.work {
            // A renewal is needless while anything else is in flight.
            Work::Touch(_) => 0,
            Work::Write(_) => 1,
            // Nothing overtakes or replaces a deletion.
            Work::Delete | Work::Expire(_) => 2,
        }
    }
}

impl SessionManager {
    /// Backs up a sticky session after a request: writes it when its stored content changed,
    /// renews its memcached expiry when that comes close, and otherwise sends nothing. With
    /// `wait` the caller waits up to that long for the write; without, it returns at once.
    /// Blocks the calling thread; [`SessionManager::backup_async`] is the same for async code.
    pub fn backup(
        self: &Arc<Self>,
        id: &SessionId,
        session: &SessionData,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        runtime::block_on(self.backup_async(id, session, wait))
    }

    /// [`SessionManager::backup`] for async callers.
    pub async fn backup_async(
        self: &Arc<Self>,
        id: &SessionId,
        session: &SessionData,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        self.track_backups();
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
        let job = self.job(id, key, work, version, session.max_inactive);
        self.submit(job, wait).await
    }

    /// Backs up a session the host knows to be unchanged since its last backup, without
    /// handing over its content: renews the expiry when due. `None` when the core has no
    /// copy of it in memcached known to match the host's; the host then calls
    /// [`SessionManager::backup`]. Blocks the calling thread;
    /// [`SessionManager::backup_unchanged_async`] is the same for async code.
    pub fn backup_unchanged(
        self: &Arc<Self>,
        id: &SessionId,
        max_inactive: i32,
        wait: Option<Duration>,
    ) -> Result<Option<BackupOutcome>> {
        runtime::block_on(self.backup_unchanged_async(id, max_inactive, wait))
    }

    /// [`SessionManager::backup_unchanged`] for async callers.
    pub async fn backup_unchanged_async(
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
        let job = self.job(id, key, Work::Touch(None), version, max_inactive);
        self.submit(job, wait).await.map(Some)
    }

    /// A job for the session `id` stored under `key`; `max_inactive` sets the expiry it writes.
    fn job(
        &self,
        id: &SessionId,
        key: String,
        work: Work,
        version: u64,
        max_inactive: i32,
    ) -> BackupJob {
        BackupJob {
            id: id.clone(),
            key,
            work,
            version,
            exptime: copies_exptime(max_inactive),
            done: None,
        }
    }

    /// Runs a backup job in order with the session's other jobs, waiting up to `wait` (none:
    /// returns at once) for it.
    async fn submit(
        self: &Arc<Self>,
        mut job: BackupJob,
        wait: Option<Duration>,
    ) -> Result<BackupOutcome> {
        let done = wait.map(|_| {
            let (tx, rx) = oneshot::channel();
            job.done = Some(tx);
            rx
        });
        if let Some(result) = self.enqueue(job).await {
            return result;
        }
        match (done, wait) {
            (Some(done), Some(wait)) => match tokio::time::timeout(wait, done).await {
                Ok(Ok(result)) => result,
                // Replaced by a newer job, or still running: it goes on in the background.
                _ => Ok(BackupOutcome::Queued),
            },
            _ => Ok(BackupOutcome::Queued),
        }
    }

    /// Runs a job in order with the session's other jobs and returns its outcome. A job
    /// replaced by a newer one, or dropped as needless, counts as done.
    pub(crate) async fn run_in_order(
        self: &Arc<Self>,
        mut job: BackupJob,
    ) -> Result<BackupOutcome> {
        let (tx, rx) = oneshot::channel();
        job.done = Some(tx);
        match self.enqueue(job).await {
            Some(result) => result,
            None => rx.await.unwrap_or(Ok(BackupOutcome::Queued)),
        }
    }

    /// Queues a job. Returns its outcome when it ran on the caller (the queue was full) or was
    /// dropped; `None` when it runs in the background.
    async fn enqueue(self: &Arc<Self>, job: BackupJob) -> Option<Result<BackupOutcome>> {
        let key = job.key.clone();
        match self.queue.offer(&key, job) {
            Offer::Start { job, full: false } => {
                bump(&self.stats.session_backups_queued);
                runtime::handle().spawn(Arc::clone(self).drain_backups(job));
                None
            }
            Offer::Start { job, full: true } => {
                // Over capacity: this caller does the work, still in order for its session.
                bump(&self.stats.session_backups_queue_full);
                let result = self.run_backup(job).await;
                if let Some(next) = self.queue.next(&key) {
                    runtime::handle().spawn(Arc::clone(self).drain_backups(next));
                }
                Some(result)
            }
            Offer::Waiting => {
                bump(&self.stats.session_backups_queued);
                None
            }
            Offer::Replaced => {
                bump(&self.stats.session_backups_queued);
                bump(&self.stats.session_backups_coalesced);
                None
            }
            Offer::Dropped(_) => Some(Ok(BackupOutcome::Unchanged)),
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
        let result = match &job.work {
            Work::Delete => self
                .delete_copies(&job.id)
                .await
                .map(|()| BackupOutcome::Unchanged),
            Work::Expire(ours) => self
                .expire_copies(&job.id, *ours)
                .await
                .map(|()| BackupOutcome::Unchanged),
            Work::Write(_) | Work::Touch(_) => {
                let result = self.write_backup_job(&job).await;
                self.account(&job, &result, started);
                result
            }
        };
        if let Some(done) = job.done.take() {
            let _ = done.send(result.clone());
        }
        result
    }

    /// Counts and logs the outcome of a write or renewal.
    fn account(&self, job: &BackupJob, result: &Result<BackupOutcome>, started: Instant) {
        match result {
            Ok(BackupOutcome::Written) => {
                bump(&self.stats.session_backups);
                self.stats.backup_time.record(started.elapsed());
                self.near.remove(&job.id);
            }
            Ok(BackupOutcome::Refreshed) => bump(&self.stats.session_backups_refreshed),
            Ok(_) => {}
            Err(e) => {
                // Unknown state in memcached: the next request writes the session again, and
                // the near cache writes it back when the cluster answers, requests or not.
                self.tracker.failed(&job.key);
                if let (Work::Write(value), true) = (&job.work, e.is_cluster_failure()) {
                    self.near.put(&job.id, value.clone(), true);
                    bump(&self.stats.near_cache_stored);
                }
                bump(&self.stats.session_backups_failed);
                if matches!(e, Error::NodeDown(_)) {
                    // Already logged when the node went down; the next request moves the session.
                    tracing::debug!(session = %job.id.redacted(), "session backup skipped: node down");
                } else {
                    tracing::warn!(session = %job.id.redacted(), error = %e, "session backup failed");
                }
            }
        }
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
            Work::Delete | Work::Expire(_) => unreachable!("deletions are run by run_backup"),
        };
        self.cluster
            .call(&node, |c| c.set(&job.key, value, job.exptime))
            .await?;
        self.tracker.refreshed(&job.key);
        Ok(BackupOutcome::Written)
    }

    /// Deletes every copy of a session in order with its other jobs.
    pub(crate) async fn delete_in_order(
        self: &Arc<Self>,
        id: &SessionId,
        key: String,
    ) -> Result<()> {
        let job = self.job(id, key, Work::Delete, 0, 0);
        self.run_in_order(job).await.map(|_| ())
    }

    /// Deletes a session's copies unless memcached holds a newer version than `ours`.
    async fn expire_copies(&self, id: &SessionId, ours: u64) -> Result<()> {
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

    /// The id a session requested with `id` must have on this host (route `route`): the same
    /// random part, this host's route, and its node unless that node is down, removed or
    /// unknown, in which case the next available node. `None` when the id is right as it is.
    /// Sends nothing, except that a node this manager does not know is first looked up in the
    /// shared node list (rate-limited), so a session stored on a node added since this host
    /// started stays there.
    pub async fn route_request(&self, id: &SessionId, route: Option<&str>) -> Option<SessionId> {
        let node_up = self.session_node(id).await.is_some_and(|n| n.is_up());
        let replacement = (!node_up)
            .then(|| self.cluster.next_available(id.node()))
            .flatten();
        let node = replacement.as_ref().map_or(id.node(), |n| n.id());
        // Non-sticky requests go to any host: the route carries no meaning and stays.
        let route = if self.config.sticky {
            route
        } else {
            id.route()
        };
        let routed = SessionId::new(id.random(), node, route)?;
        (routed != *id).then_some(routed)
    }

    /// A session ended on this host: invalidated by the application (every copy is deleted) or
    /// timed out, `max_inactive` seconds after its last access at `last_accessed` (epoch ms;
    /// then see [`SessionManager::expire`]).
    pub async fn ended(
        self: &Arc<Self>,
        id: &SessionId,
        last_accessed: u64,
        max_inactive: i32,
    ) -> Result<()> {
        let idle = crate::session::now_millis().saturating_sub(last_accessed);
        let timed_out = u64::try_from(max_inactive).is_ok_and(|s| s > 0 && idle >= s * 1000);
        if timed_out {
            self.expire(id).await
        } else {
            self.delete(id).await
        }
    }

    /// The host expired a session for inactivity: delete its memcached copies, unless another
    /// host wrote a newer version meanwhile (it took the session over and is still using it).
    pub async fn expire(self: &Arc<Self>, id: &SessionId) -> Result<()> {
        let key = self.key(KeyKind::Session, id);
        let Some(ours) = self.tracker.version(&key) else {
            return Ok(());
        };
        self.tracker.forget(&key);
        let job = self.job(id, key, Work::Expire(ours), 0, 0);
        self.run_in_order(job).await.map(|_| ())
    }

    /// A session took a new id on this host. When its storage key changed (a new random part
    /// after login, or a new node), the copies under the old id are deleted; a new route alone
    /// keeps the key and everything stays.
    pub async fn id_changed(self: &Arc<Self>, old: &SessionId, new: &SessionId) -> Result<()> {
        if old.storage_part() == new.storage_part() {
            return Ok(());
        }
        if old.random() == new.random() {
            bump(&self.stats.sessions_relocated);
            tracing::info!(session = %new.redacted(), from = old.node(), "session moved to another node");
        }
        let key = self.key(KeyKind::Session, old);
        self.tracker.forget(&key);
        match self.delete_in_order(old, key).await {
            Err(e) if e.is_node_failure() => Ok(()),
            other => other,
        }
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
