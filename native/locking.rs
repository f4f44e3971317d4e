//! Session locks for non-sticky sessions: a memcached `add` of the lock key with an expiry, and,
//! among the requests of one host, a queue in which the lock is handed from one to the next.
//!
//! The lock's value is a random token, so a holder whose lock expired and was taken over never
//! releases the new holder's lock. Requests of one session waiting on the same host do not poll
//! memcached: they wait for their turn in arrival order, and a holder that ends while another
//! request of its host waits renews the lock item (a `touch`, in the round trip of its last
//! write) and hands it over instead of deleting it. Requests on other hosts poll with a jittered
//! exponential backoff, so that waiters started together do not retry together.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::client::{Answer, Command, Item};
use crate::cluster::{Cluster, Node};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::membership::Membership;
use crate::stats::{Stats, bump};

/// Memcached counts expiry in whole seconds and may end an item up to one second early; a lock
/// younger than its expiration by this much is certainly still there.
const EXPIRY_MARGIN: Duration = Duration::from_secs(2);

/// A lock item this host holds in memcached between two of its requests: handed over by the
/// request that ended to the next one waiting.
#[derive(Debug)]
struct Handed {
    node: String,
    token: String,
    /// When the item's expiry was last set (before the command that set it was sent).
    renewed: std::time::Instant,
}

/// One session's turn among this host's requests; its content is the lock item handed over.
type Slot = tokio::sync::Mutex<Option<Handed>>;

/// The queues of this host's requests at each session's lock, by lock key.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

/// A request's turn at a session's lock on this host: while it lives, no other request of this
/// host holds the session's lock.
#[derive(Debug)]
struct Turn {
    key: String,
    guard: Option<OwnedMutexGuard<Option<Handed>>>,
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

impl Turns {
    /// Waits for this host's turn at the lock `key` until `deadline`; `None` when it did not
    /// come in time. The turn may come with the lock item, handed over by the previous holder.
    async fn wait(&self, key: &str, deadline: Instant) -> Option<(Turn, Option<Handed>)> {
        let slot = Arc::clone(self.slots.lock().entry(key.to_owned()).or_default());
        let guard = tokio::time::timeout_at(deadline, slot.lock_owned()).await;
        let mut turn = Turn {
            key: key.to_owned(),
            guard: None,
            slots: Arc::clone(&self.slots),
        };
        // A turn that did not come still cleans up when dropped.
        let mut guard = guard.ok()?;
        let handed = guard.take();
        turn.guard = Some(guard);
        Some((turn, handed))
    }
}

impl Turn {
    /// Whether another request of this host waits for this turn.
    fn awaited(&self) -> bool {
        let slots = self.slots.lock();
        // The map holds one reference and this turn's guard another; waiters hold the rest.
        slots
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) > 2)
    }

    /// Ends the turn, leaving `handed` to the next request of this host.
    fn pass(mut self, handed: Option<Handed>) {
        if let Some(mut guard) = self.guard.take() {
            *guard = handed;
        }
    }
}

impl Drop for Turn {
    /// Forgets the session's queue once nobody holds or waits for it, unless it keeps a lock
    /// item handed to a request that gave up meanwhile (the next request of this host takes it).
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.slots.lock();
        let idle = slots.get(&self.key).is_some_and(|slot| {
            Arc::strong_count(slot) == 1 && slot.try_lock().is_ok_and(|handed| handed.is_none())
        });
        if idle {
            slots.remove(&self.key);
        }
    }
}

/// A held session lock; give it back to [`unlock`](crate::SessionManager::unlock), or hand it to
/// a write that releases it in its own round trip.
#[derive(Debug)]
pub struct SessionLock {
    pub(crate) id: SessionId,
    pub(crate) node: String,
    pub(crate) key: String,
    pub(crate) token: String,
    /// When acquisition began, or the item's expiry was last renewed: the lock cannot expire
    /// before `lockExpiration` from then.
    pub(crate) requested: std::time::Instant,
    turn: Option<Turn>,
}

/// How a lock is given up: deleted, or renewed and handed to the next request of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Delete the item.
    Delete,
    /// Renew the item (`touch`) and hand it to the next request of this host.
    HandOver,
}

impl SessionLock {
    /// The session this lock is for.
    pub fn session_id(&self) -> &SessionId {
        &self.id
    }

    /// Whether the lock is certainly still held by us, given its `expiration`, so a plain
    /// `delete` (or `touch`) releases it without first checking its token.
    pub(crate) fn certainly_held(&self, expiration: Duration) -> bool {
        self.requested.elapsed() + EXPIRY_MARGIN < expiration
    }

    /// How to give this lock up now: handed over when another request of this host waits for
    /// it and the item is certainly still ours.
    pub(crate) fn release(&self, expiration: Duration) -> Release {
        let awaited = self.turn.as_ref().is_some_and(Turn::awaited);
        if awaited && self.certainly_held(expiration) {
            Release::HandOver
        } else {
            Release::Delete
        }
    }

    /// The lock was given up as `release` said, by a command sent at `sent`; `renewed` is
    /// whether a hand-over's `touch` found the item. The next request of this host waiting
    /// takes it (or, when it was deleted or lost, acquires it anew).
    pub(crate) fn released(mut self, release: Release, sent: std::time::Instant, renewed: bool) {
        let handed = (release == Release::HandOver && renewed).then(|| Handed {
            node: std::mem::take(&mut self.node),
            token: std::mem::take(&mut self.token),
            renewed: sent,
        });
        if let Some(turn) = self.turn.take() {
            turn.pass(handed);
        }
    }
}

/// The session locks of one manager: this host's queues at each lock, and the lock items in
/// memcached.
#[derive(Debug)]
pub(crate) struct Locks {
    config: Arc<Config>,
    cluster: Arc<Cluster>,
    membership: Arc<Membership>,
    stats: Arc<Stats>,
    turns: Turns,
}

impl Locks {
    pub(crate) fn new(
        config: Arc<Config>,
        cluster: Arc<Cluster>,
        membership: Arc<Membership>,
        stats: Arc<Stats>,
    ) -> Self {
        Locks {
            config,
            cluster,
            membership,
            stats,
            turns: Turns::default(),
        }
    }

    /// Takes the session's lock: this host's turn at it, then an `add` of the lock key
    /// (expiring after `lockExpiration`) on the node that serves the session, retried with
    /// jittered exponential backoff until `lockMaxWait`, unless the previous holder on this
    /// host handed the lock over.
    pub(crate) async fn lock(&self, id: &SessionId) -> Result<SessionLock> {
        Ok(self.lock_reading(id, None).await?.0)
    }

    /// [`Locks::lock`], sending `read` (a retrieval command) behind each `add` in the same round
    /// trip when the lock lives on the session's own node: memcached runs a connection's
    /// commands in order, so what the `add` that took the lock is followed by was read under
    /// the lock. Returns the items it found then; `None` when it was not sent with the `add`
    /// that took the lock (a lock handed over, or on another node).
    pub(crate) async fn lock_reading(
        &self,
        id: &SessionId,
        read: Option<Command<'_>>,
    ) -> Result<(SessionLock, Option<Vec<Item>>)> {
        let started = std::time::Instant::now();
        let node = match self.membership.node(id.node()).await.filter(|n| n.is_up()) {
            Some(node) => node,
            None => self
                .cluster
                .next_available(id.node())
                .ok_or(Error::Unavailable)?,
        };
        let wanted = Wanted {
            id: id.clone(),
            node: node.id().to_owned(),
            key: self.config.keys.key(crate::keys::KeyKind::Lock, id),
            expiration: self.config.lock_expiration,
            backoff: Backoff {
                initial: self.config.lock_backoff_initial,
                max: self.config.lock_backoff_max,
                max_wait: self.config.lock_max_wait,
            },
        };
        let key = wanted.key.clone();
        let exptime = self.config.lock_expiration.as_secs();
        let read = read.filter(|_| node.id() == id.node());
        let items = Mutex::new(None);
        let outcome = self
            .turns
            .acquire(wanted, |token| {
                let (node, key, read, items) = (&node, &key, &read, &items);
                async move {
                    let add = Command::Add {
                        key,
                        value: token.as_bytes(),
                        exptime,
                    };
                    let commands: Vec<Command<'_>> = std::iter::once(add).chain(*read).collect();
                    let answers = self.cluster.call(node, |c| c.pipeline(&commands)).await?;
                    // The pipeline checked each answer's kind: `Stored` or `NotStored`.
                    if answers.first() == Some(&Answer::Stored) {
                        if let Some(Answer::Items(found)) = answers.into_iter().nth(1) {
                            *items.lock() = Some(found);
                        }
                        return Ok(true);
                    }
                    // An `add` retried after a broken connection may have been stored the first
                    // time: the lock is then ours already.
                    let holder = self.cluster.call(node, |c| c.get(key)).await?;
                    if holder.as_deref() == Some(token.as_bytes()) {
                        return Ok(true);
                    }
                    bump(&self.stats.lock_retries);
                    Ok(false)
                }
            })
            .await;
        self.stats.lock_wait_time.record(started.elapsed());
        match outcome {
            Ok(Acquired::Taken(lock)) => {
                bump(&self.stats.locks_acquired);
                Ok((lock, items.into_inner()))
            }
            Ok(Acquired::HandedOver(lock)) => {
                bump(&self.stats.locks_acquired);
                bump(&self.stats.locks_handed_over);
                Ok((lock, None))
            }
            Err(e) => {
                if matches!(e, Error::LockTimeout(_)) {
                    bump(&self.stats.lock_timeouts);
                    tracing::warn!(session = %id.redacted(), "session lock not acquired in time");
                }
                Err(e)
            }
        }
    }

    /// Releases a lock, unless it expired and another holder has it now (counted as lost). When
    /// another request of this host waits for it, the lock is renewed and handed over instead.
    pub(crate) async fn unlock(&self, lock: SessionLock) -> Result<()> {
        let node = self
            .cluster
            .node(&lock.node)
            .ok_or_else(|| Error::NodeDown(lock.node.clone()))?;
        let expiration = self.config.lock_expiration;
        if lock.certainly_held(expiration) {
            let release = lock.release(expiration);
            let sent = std::time::Instant::now();
            let done = match release {
                Release::Delete => self.cluster.call(&node, |c| c.delete(&lock.key)).await,
                Release::HandOver => {
                    let exptime = expiration.as_secs();
                    self.cluster
                        .call(&node, |c| c.touch(&lock.key, exptime))
                        .await
                }
            };
            lock.released(release, sent, *done.as_ref().unwrap_or(&false));
            done?;
            return Ok(());
        }
        match self.cluster.call(&node, |c| c.get(&lock.key)).await? {
            Some(value) if value == lock.token.as_bytes() => {
                self.cluster.call(&node, |c| c.delete(&lock.key)).await?;
            }
            _ => {
                bump(&self.stats.locks_lost);
                tracing::warn!(session = %lock.id.redacted(), "session lock expired before release");
            }
        }
        Ok(())
    }

    /// Releases a lock a request's writes did not release. A failure is only logged: the
    /// request's outcome matters more than a lock that will expire.
    pub(crate) async fn release(&self, lock: Option<SessionLock>) {
        let Some(lock) = lock else { return };
        let id = lock.id.clone();
        if let Err(e) = self.unlock(lock).await {
            tracing::warn!(session = %id.redacted(), error = %e, "session lock not released");
        }
    }
}

/// A lock's release riding as the last command of a pipeline to one node, so that a request's
/// last write and its unlock cost one round trip.
#[derive(Debug)]
pub(crate) struct Rider {
    release: Release,
    key: String,
    expiration: Duration,
}

impl Rider {
    /// The release of `lock` in a pipeline to `node`: when the lock lives there and is certainly
    /// still ours (deleted, or renewed and handed to the next request of this host).
    pub(crate) fn on(
        lock: &Option<SessionLock>,
        node: &Node,
        expiration: Duration,
    ) -> Option<Self> {
        lock.as_ref()
            .filter(|l| l.node == node.id() && l.certainly_held(expiration))
            .map(|l| Rider {
                release: l.release(expiration),
                key: l.key.clone(),
                expiration,
            })
    }

    /// The pipelined command that gives the lock up.
    pub(crate) fn command(&self) -> Command<'_> {
        match self.release {
            Release::Delete => Command::Delete(&self.key),
            Release::HandOver => Command::Touch {
                key: &self.key,
                exptime: self.expiration.as_secs(),
            },
        }
    }

    /// The pipeline, sent at `sent` with this release last, answered `answers`: the lock is
    /// given up (taken out of the option).
    pub(crate) fn done(
        self,
        lock: &mut Option<SessionLock>,
        sent: std::time::Instant,
        answers: &[Answer],
    ) {
        if let Some(held) = lock.take() {
            let renewed = answers.last() == Some(&Answer::Found(true));
            held.released(self.release, sent, renewed);
        }
    }
}

/// Pauses between lock attempts: doubling from `initial` up to `max`, each drawn at random
/// between half and one and a half of that.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First pause.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
    /// Total time after which acquisition gives up.
    pub max_wait: Duration,
}

/// What a lock acquisition needs to know of the lock it wants.
#[derive(Debug)]
pub(crate) struct Wanted {
    pub(crate) id: SessionId,
    pub(crate) node: String,
    pub(crate) key: String,
    pub(crate) expiration: Duration,
    pub(crate) backoff: Backoff,
}

/// How an acquisition ended.
#[derive(Debug)]
pub(crate) enum Acquired {
    /// Taken in memcached.
    Taken(SessionLock),
    /// Handed over by the previous holder on this host.
    HandedOver(SessionLock),
}

impl Turns {
    /// Takes a lock: first this host's turn (the previous holder may hand the item over), then,
    /// unless handed over, the item itself by calling `attempt` with a token until it reports
    /// success, backing off between attempts. Fails with [`Error::LockTimeout`] once
    /// `max_wait` has passed.
    pub(crate) async fn acquire<F, Fut>(&self, wanted: Wanted, mut attempt: F) -> Result<Acquired>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<bool>>,
    {
        let started = std::time::Instant::now();
        let give_up = Instant::now() + wanted.backoff.max_wait;
        let timeout = Error::LockTimeout(wanted.backoff.max_wait);
        let (turn, handed) = self.wait(&wanted.key, give_up).await.ok_or(timeout)?;
        let mut lock = SessionLock {
            id: wanted.id,
            node: wanted.node,
            key: wanted.key,
            token: String::new(),
            requested: started,
            turn: Some(turn),
        };
        if let Some(handed) = handed {
            let young = handed.renewed.elapsed() + EXPIRY_MARGIN < wanted.expiration;
            if handed.node == lock.node && young {
                lock.token = handed.token;
                lock.requested = handed.renewed;
                return Ok(Acquired::HandedOver(lock));
            }
        }
        lock.token = crate::ids::upper_hex(&random_bytes());
        poll(wanted.backoff, give_up, || attempt(lock.token.clone())).await?;
        Ok(Acquired::Taken(lock))
    }
}

/// Calls `attempt` until it reports success, backing off between attempts; fails with
/// [`Error::LockTimeout`] at `give_up`.
async fn poll<F, Fut>(backoff: Backoff, give_up: Instant, mut attempt: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let mut jitter = Jitter::new();
    let mut pause = backoff.initial;
    loop {
        if attempt().await? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(Error::LockTimeout(backoff.max_wait));
        }
        tokio::time::sleep(jitter.spread(pause).min(give_up - now)).await;
        pause = (pause * 2).min(backoff.max);
    }
}

/// 16 bytes from the operating system's CSPRNG.
fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// Spreads pauses at random (xorshift, seeded from the OS), so hosts that found a lock taken
/// at the same moment do not all retry at the same moment.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let seed = u64::from_le_bytes(random_bytes()[..8].try_into().expect("8 bytes"));
        Jitter(seed | 1)
    }

    /// A pause drawn uniformly between half and one and a half of `pause`.
    fn spread(&mut self, pause: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let permille = 500 + self.0 % 1001;
        pause * u32::try_from(permille).expect("at most 1500") / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(initial: u64, max: u64, max_wait: u64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(initial),
            max: Duration::from_millis(max),
            max_wait: Duration::from_millis(max_wait),
        }
    }

    fn wanted(key: &str) -> Wanted {
        Wanted {
            id: SessionId::parse("0123456789ABCDEF0123456789ABCDEF-n1").unwrap(),
            node: "n1".into(),
            key: key.into(),
            expiration: Duration::from_secs(5),
            backoff: backoff(5, 40, 200),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_with_jitter_then_gives_up() {
        let b = backoff(5, 40, 200);
        let start = Instant::now();
        let mut times = Vec::new();
        let result = poll(b, start + b.max_wait, || {
            times.push(start.elapsed().as_millis());
            async { Ok(false) }
        })
        .await;
        assert!(matches!(result, Err(Error::LockTimeout(_))));
        let pauses: Vec<u128> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (pause, nominal) in pauses.iter().zip([5u128, 10, 20, 40, 40]) {
            assert!(
                (nominal / 2 - 1..=nominal * 3 / 2 + 1).contains(pause),
                "{pauses:?}"
            );
        }
        assert_eq!(*times.last().unwrap(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_when_the_lock_frees() {
        let mut calls = 0;
        poll(
            backoff(1, 1, 1000),
            Instant::now() + Duration::from_secs(1),
            || {
                calls += 1;
                let free = calls == 4;
                async move { Ok(free) }
            },
        )
        .await
        .unwrap();
        assert_eq!(calls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_of_one_host_queue_and_take_the_lock_handed_over() {
        let turns = Turns::default();
        let first = turns.acquire(wanted("k"), |_| async { Ok(true) }).await;
        let Ok(Acquired::Taken(first)) = first else {
            panic!("{first:?}")
        };
        assert_eq!(first.release(Duration::from_secs(5)), Release::Delete);
        let waiter = {
            let turns = &turns;
            async move {
                turns
                    .acquire(wanted("k"), |_| async {
                        panic!("handed over, never polled")
                    })
                    .await
            }
        };
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(first.release(Duration::from_secs(5)), Release::HandOver);
            let token = first.token.clone();
            first.released(Release::HandOver, std::time::Instant::now(), true);
            token
        };
        let (second, token) = tokio::join!(waiter, release);
        let Ok(Acquired::HandedOver(second)) = second else {
            panic!("{second:?}")
        };
        assert_eq!(second.token, token, "the same item, renewed");
        second.released(Release::Delete, std::time::Instant::now(), true);
        assert!(turns.slots.lock().is_empty(), "nothing left behind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_after_max_wait() {
        let turns = Turns::default();
        let Ok(Acquired::Taken(held)) = turns.acquire(wanted("k"), |_| async { Ok(true) }).await
        else {
            panic!()
        };
        let waiter = turns.acquire(wanted("k"), |_| async { Ok(true) }).await;
        assert!(matches!(waiter, Err(Error::LockTimeout(_))));
        held.released(Release::Delete, std::time::Instant::now(), true);
        assert!(turns.slots.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_lost_in_the_hand_over_is_taken_anew() {
        let turns = Turns::default();
        let Ok(Acquired::Taken(held)) = turns.acquire(wanted("k"), |_| async { Ok(true) }).await
        else {
            panic!()
        };
        let waiter = async { turns.acquire(wanted("k"), |_| async { Ok(true) }).await };
        let release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            held.released(Release::HandOver, std::time::Instant::now(), false);
        };
        let (next, ()) = tokio::join!(waiter, release);
        assert!(matches!(next, Ok(Acquired::Taken(_))), "{next:?}");
    }
}
