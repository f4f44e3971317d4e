//! Sticky mode: every change of a session's memcached copy (writes, renewals, deletions) goes
//! through one queue, in order per session, so a deletion is never overtaken by a write that
//! was already on its way. Jobs run in the background, or on the caller when the queue is full.
//!
//! The background is one task per manager, started with it, that runs every session's jobs
//! side by side: handing it a job costs a message (and a wake-up only when it is idle), not a
//! task of its own, and the replies to many writes sent together wake it once.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::queue::{Offer, Queue, Ranked};
use super::tracker::Tracker;
use crate::copies::Outgoing;
use crate::copies::attributes::Base;
use crate::copies::near::NearCached;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::request::BackupOutcome;
use crate::runtime;
use crate::session::SessionData;
use crate::stats::{Stats, bump};

/// How long an asynchronous backup waits for others to go out with it (see
/// [`Backups::background`]).
const GATHER: Duration = Duration::from_millis(1);

/// One change of a session's memcached copies, run in the background or on the caller's thread.
#[derive(Debug)]
pub(crate) struct BackupJob {
    id: SessionId,
    key: String,
    work: Work,
    version: u64,
    exptime: u64,
    done: Option<oneshot::Sender<Result<BackupOutcome>>>,
}

#[derive(Debug)]
pub(crate) enum Work {
    /// Write this session (at the job's version), of which `whole` is the whole envelope.
    Write {
        session: Box<SessionData>,
        whole: Vec<u8>,
    },
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
            Work::Write { .. } => 1,
            // Nothing overtakes or replaces a deletion.
            Work::Delete | Work::Expire(_) => 2,
        }
    }
}

/// The backups of one manager's sticky sessions: what was last written of each, and the queue
/// of work in flight.
#[derive(Debug)]
pub(crate) struct Backups {
    store: Arc<NearCached>,
    stats: Arc<Stats>,
    pub(crate) tracker: Tracker,
    queue: Queue<BackupJob>,
    /// Stored attribute by attribute: what memcached holds of each session this host wrote or
    /// took over, by storage key, so that a backup sends only the attributes that changed.
    written: Mutex<HashMap<String, Base>>,
    /// The background task's inbox: the first job of a session with nothing in flight.
    background: mpsc::UnboundedSender<BackupJob>,
}

impl Backups {
    /// The backups of a manager, with their background task (which ends when they are dropped).
    pub(crate) fn start(store: Arc<NearCached>, stats: Arc<Stats>, capacity: usize) -> Arc<Self> {
        let (background, inbox) = mpsc::unbounded_channel();
        Arc::new_cyclic(|backups| {
            runtime::handle().spawn(Self::background(backups.clone(), inbox));
            Backups {
                store,
                stats,
                tracker: Tracker::default(),
                queue: Queue::new(capacity),
                written: Mutex::default(),
                background,
            }
        })
    }

    /// The background task: runs each job it receives, then the session's jobs queued behind
    /// it, every session's side by side. Ends when the backups are dropped and their last jobs
    /// are done.
    ///
    /// A job nobody waits for (an asynchronous backup) first waits [`GATHER`] for others: the
    /// jobs handed over meanwhile wake nobody (a wake-up of this task cost the request thread
    /// and this one a switch each) and go out together, in one write per node.
    async fn background(backups: Weak<Self>, mut inbox: mpsc::UnboundedReceiver<BackupJob>) {
        let mut running = FuturesUnordered::new();
        loop {
            tokio::select! {
                job = inbox.recv() => {
                    let Some(job) = job else { break };
                    if job.done.is_none() {
                        tokio::time::sleep(GATHER).await;
                    }
                    let Some(backups) = backups.upgrade() else { break };
                    running.push(Arc::clone(&backups).contained(job));
                    while let Ok(job) = inbox.try_recv() {
                        running.push(Arc::clone(&backups).contained(job));
                    }
                }
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        }
        while running.next().await.is_some() {}
    }

    /// [`Backups::drain`], a panic of which ends only its session's jobs (logged, the session
    /// free to queue new ones), not the background task and every other session's.
    async fn contained(self: Arc<Self>, first: BackupJob) {
        let key = first.key.clone();
        if AssertUnwindSafe(Arc::clone(&self).drain(first))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!("session backup panicked (contained); its queued writes are dropped");
            self.unknown(&key);
            while self.queue.next(&key).is_some() {}
        }
    }

    /// Hands a session's first job to the background task.
    fn in_background(&self, job: BackupJob) {
        if let Err(mpsc::error::SendError(job)) = self.background.send(job) {
            // Only while the backups are dropped, when no caller is left to queue anything.
            self.queue.next(&job.key);
        }
    }

    /// A write of `session` as `version` of it (encoded now: a session past `maxSessionSize`
    /// fails here, on the caller).
    pub(crate) fn write_of(
        &self,
        id: &SessionId,
        session: SessionData,
        version: u64,
    ) -> Result<Work> {
        let mut versioned = session;
        versioned.version = version;
        let whole = self
            .store
            .copies()
            .encode(id, &versioned)
            .inspect_err(|e| tracing::warn!(error = %e, "session not backed up"))?;
        Ok(Work::Write {
            session: Box::new(versioned),
            whole,
        })
    }

    /// Records what memcached holds of the session under `key`, read by a takeover (none: not
    /// known, the next backup writes everything).
    pub(crate) fn taken_over(&self, key: &str, version: u64, base: Option<Base>) {
        self.tracker.taken_over(key, version);
        let mut written = self.written.lock();
        match base {
            Some(base) => written.insert(key.to_owned(), base.written_over()),
            None => written.remove(key),
        };
    }

    /// Forgets the session under `key`: it left this host.
    pub(crate) fn forget(&self, key: &str) {
        self.tracker.forget(key);
        self.written.lock().remove(key);
    }

    /// A job for the session `id` stored under `key`; `max_inactive` sets the expiry it writes.
    pub(crate) fn job(
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
            exptime: self.store.copies().copies_exptime(max_inactive),
            done: None,
        }
    }

    /// Runs a backup job in order with the session's other jobs, waiting up to `wait` (none:
    /// returns at once) for it.
    pub(crate) async fn submit(
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
    pub(crate) async fn run_in_order(self: &Arc<Self>, mut job: BackupJob) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        job.done = Some(tx);
        let outcome = match self.enqueue(job).await {
            Some(result) => result,
            None => rx.await.unwrap_or(Ok(BackupOutcome::Queued)),
        };
        outcome.map(|_| ())
    }

    /// Queues a job. Returns its outcome when it ran on the caller (the queue was full) or was
    /// dropped; `None` when it runs in the background.
    async fn enqueue(self: &Arc<Self>, job: BackupJob) -> Option<Result<BackupOutcome>> {
        let key = job.key.clone();
        match self.queue.offer(&key, job) {
            Offer::Start { job, full: false } => {
                bump(&self.stats.session_backups_queued);
                self.in_background(job);
                None
            }
            Offer::Start { job, full: true } => {
                // Over capacity: this caller does the work, still in order for its session.
                bump(&self.stats.session_backups_queue_full);
                // Boxed: a rare path that writes, kept out of every caller's future.
                let result = Box::pin(self.run(job)).await;
                if let Some(next) = self.queue.next(&key) {
                    self.in_background(next);
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

    /// Runs a session's jobs one after the other until none is waiting.
    async fn drain(self: Arc<Self>, first: BackupJob) {
        let key = first.key.clone();
        let mut job = Some(first);
        while let Some(current) = job {
            // Failures are counted and logged by run, and reach a waiting caller.
            let _ = self.run(current).await;
            job = self.queue.next(&key);
        }
    }

    async fn run(&self, mut job: BackupJob) -> Result<BackupOutcome> {
        let started = Instant::now();
        let result = match &job.work {
            Work::Delete => self
                .store
                .delete(&job.id)
                .await
                .map(|()| BackupOutcome::Unchanged),
            Work::Expire(ours) => self
                .expire(&job.id, *ours)
                .await
                .map(|()| BackupOutcome::Unchanged),
            Work::Write { .. } | Work::Touch(_) => {
                let result = self.write(&job).await;
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
            }
            Ok(BackupOutcome::Refreshed) => bump(&self.stats.session_backups_refreshed),
            Ok(_) => {}
            Err(e) => {
                // The near cache writes it back when the cluster answers, requests or not.
                self.unknown(&job.key);
                if matches!(e, Error::NodeDown(_)) {
                    // Already logged when the node went down; the next request moves the session.
                    tracing::debug!(session = %job.id.redacted(), "session backup skipped: node down");
                } else {
                    tracing::warn!(session = %job.id.redacted(), error = %e, "session backup failed");
                }
            }
        }
    }

    /// A backup of the session under `key` failed, so what memcached holds of it is unknown:
    /// counted, and its next backup writes it again, whole.
    fn unknown(&self, key: &str) {
        bump(&self.stats.session_backups_failed);
        self.tracker.failed(key);
        self.written.lock().remove(key);
    }

    async fn write(&self, job: &BackupJob) -> Result<BackupOutcome> {
        let base = self.written.lock().get(&job.key).cloned();
        let rewrite;
        let (session, whole) = match &job.work {
            Work::Write { session, whole } => (&**session, whole),
            Work::Touch(session) => {
                let copies = self.store.copies();
                if copies
                    .touch_in_place(&job.id, job.exptime, base.as_ref())
                    .await?
                {
                    self.tracker.refreshed(&job.key);
                    return Ok(BackupOutcome::Refreshed);
                }
                // Evicted, flushed or deleted by another host: write it again, whole.
                self.written.lock().remove(&job.key);
                let Some(session) = session else {
                    self.tracker.failed(&job.key);
                    return Ok(BackupOutcome::Unchanged);
                };
                rewrite = self.write_of(&job.id, session.clone(), job.version)?;
                let Work::Write { session, whole } = &rewrite else {
                    unreachable!("write_of makes a write")
                };
                (&**session, whole)
            }
            Work::Delete | Work::Expire(_) => unreachable!("deletions are run by run"),
        };
        let base = base.filter(|_| matches!(job.work, Work::Write { .. }));
        let out = Outgoing::new(session, whole, base.as_ref());
        // Written whole (past the attribute limit), no attribute's item is renewed: the next
        // write attribute by attribute must write them all.
        match self.store.store_in_place(&job.id, out, job.exptime).await? {
            Some(base) => self.written.lock().insert(job.key.clone(), base),
            None => self.written.lock().remove(&job.key),
        };
        self.tracker.refreshed(&job.key);
        Ok(BackupOutcome::Written)
    }

    /// Deletes a session's copies unless memcached holds a newer version than `ours`.
    async fn expire(&self, id: &SessionId, ours: u64) -> Result<()> {
        let copies = self.store.copies();
        if copies.cluster.node(id.node()).is_none() {
            return Ok(());
        }
        match copies.stored_version(id).await {
            Ok(Some(stored)) if stored > ours => {
                bump(&self.stats.expired_newer_kept);
                Ok(())
            }
            Ok(_) | Err(Error::Corrupt(_)) => self.store.delete(id).await,
            Err(e) => Err(e),
        }
    }

    /// Waits up to `timeout` for background work to finish; returns how many sessions still
    /// have work in flight.
    pub(crate) fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while !self.queue.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.queue.len()
    }
}
