//! The two modes, sticky and non-sticky: two implementations of one interface (`Mode`), each
//! owning its state. A mode decides, for each step of a request, what the session's copies
//! ([`crate::copies`]) and its lock ([`crate::locking`]) must do.

pub mod nonsticky;
pub mod sticky;

use std::time::Duration;

use crate::copies::{Copies, Loaded, Primed};
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::request::{Ended, HostCopy, Lookup, Outcome, Request};
use crate::session::now_millis;
use crate::stats::{Stats, bump};

pub use nonsticky::NonSticky;
pub use sticky::Sticky;

/// What a mode does at each step of a request and of a session's life. The steps every mode
/// takes the same way are written once here.
pub(crate) trait Mode {
    /// The manager's counters.
    fn stats(&self) -> &Stats;

    /// The host ends its requests through the core: loads record what they hand out, so that
    /// the end of a request can tell what changed.
    fn track_backups(&self);

    /// A request carrying the parsed session id `id` starts on a host with route `route`:
    /// routes it, and takes its lock where the mode locks. Fails only when the lock was not
    /// acquired in time and `lockFailure="refuse"`.
    async fn begin(&self, request: &mut Request, id: SessionId, route: Option<&str>) -> Result<()>;

    /// Whether a copy of the session that another request of this host shares is current for
    /// `request`.
    fn shares(&self, request: &Request) -> bool;

    /// Loads a session (see [`crate::copies::near::NearCached::load`]), taking what `primed`
    /// found instead of reading it again.
    async fn load(&self, id: &SessionId, primed: Option<Primed>) -> Result<Option<Loaded>>;

    /// What a request finds of a session whose load failed with `error`.
    fn unreadable(&self, error: &Error) -> Lookup;

    /// A request ends, having done `outcome` with its session.
    async fn end(&self, request: &mut Request, outcome: Outcome<'_>) -> Result<Ended>;

    /// The host expired the session for inactivity.
    async fn expire(&self, id: &SessionId) -> Result<()>;

    /// Deletes every copy of a session.
    async fn remove(&self, id: &SessionId) -> Result<()>;

    /// Waits up to `timeout` for background writes; returns how many sessions still have work
    /// in flight.
    fn flush(&self, timeout: Duration) -> usize;

    /// The request uses the session `raw` (as the host names it), of which the host holds
    /// `host`. Reads memcached unless the host's copy is current: held here, or shared with
    /// another request of this host when the mode says so. Each id is read at most once per
    /// request.
    async fn lookup(&self, request: &mut Request, raw: &str, host: HostCopy) -> Lookup {
        let Ok(id) = request.resolve(raw, self.stats()) else {
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
            HostCopy::Shared => self.shares(request),
        };
        if current {
            return Lookup::Current;
        }
        self.read(request, &id).await
    }

    /// Reads a request's session from memcached and classifies the outcome.
    async fn read(&self, request: &mut Request, id: &SessionId) -> Lookup {
        let found = match self.load(id, request.primed.take()).await {
            Ok(Some(loaded)) => {
                if let Some(moved) = &loaded.relocated {
                    request.remember(moved);
                }
                Lookup::Found(loaded)
            }
            Ok(None) => Lookup::Missing,
            Err(e) => {
                tracing::warn!(session = %id.redacted(), error = %e, "session could not be loaded from memcached");
                self.unreadable(&e)
            }
        };
        request
            .looked_up
            .push((id.clone(), found == Lookup::Missing));
        found
    }

    /// A session ended on this host: invalidated by the application (every copy is deleted) or
    /// timed out, `max_inactive` seconds after its last access at `last_accessed` (epoch ms).
    async fn ended(&self, id: &SessionId, last_accessed: u64, max_inactive: i32) -> Result<()> {
        if timed_out(last_accessed, max_inactive) {
            self.expire(id).await
        } else {
            self.delete(id).await
        }
    }

    /// Deletes every copy of a session, counted.
    async fn delete(&self, id: &SessionId) -> Result<()> {
        self.remove(id).await?;
        bump(&self.stats().sessions_deleted);
        Ok(())
    }

    /// A session took a new id on this host. When its storage key changed (a new random part
    /// after login, or a new node), the copies under the old id are deleted; a new route alone
    /// keeps the key and everything stays.
    async fn id_changed(&self, old: &SessionId, new: &SessionId) -> Result<()> {
        if old.storage_part() == new.storage_part() {
            return Ok(());
        }
        if old.random() == new.random() {
            bump(&self.stats().sessions_relocated);
            tracing::info!(session = %new.redacted(), from = old.node(), "session moved to another node");
        }
        match self.remove(old).await {
            Err(e) if e.is_node_failure() => Ok(()),
            other => other,
        }
    }
}

/// Whether a session last accessed at `last_accessed` (epoch ms) with a lifetime of
/// `max_inactive` seconds has timed out by now (an end before that is an invalidation).
pub(crate) fn timed_out(last_accessed: u64, max_inactive: i32) -> bool {
    let idle = now_millis().saturating_sub(last_accessed);
    u64::try_from(max_inactive).is_ok_and(|s| s > 0 && idle >= s * 1000)
}

/// The mode a manager runs in.
#[derive(Debug)]
pub(crate) enum Modes {
    Sticky(Sticky),
    NonSticky(NonSticky),
}

/// Runs `$body` with `$mode` bound to the manager's mode, whichever it is.
macro_rules! with_mode {
    ($modes:expr, $mode:ident => $body:expr) => {
        match $modes {
            $crate::mode::Modes::Sticky($mode) => $body,
            $crate::mode::Modes::NonSticky($mode) => $body,
        }
    };
}
pub(crate) use with_mode;

/// The id a session requested with `id` must have on a host of route `route`: the same random
/// part, that route, and its node unless that node is down, removed or unknown, in which case
/// the next available node. `None` when the id is right as it is. Sends nothing, except that a
/// node this manager does not know is first looked up in the shared node list (rate-limited),
/// so a session stored on a node added since this host started stays there.
pub(crate) async fn route(
    copies: &Copies,
    id: &SessionId,
    route: Option<&str>,
) -> Option<SessionId> {
    if let Some(routed) = route_now(copies, id, route) {
        return routed;
    }
    let node_up = copies
        .membership
        .node(id.node())
        .await
        .is_some_and(|n| n.is_up());
    routed(copies, id, route, node_up)
}

/// [`route`] when this manager knows the id's node, as it does for nearly every request: no
/// wait. `None` when the node must be looked up first.
pub(crate) fn route_now(
    copies: &Copies,
    id: &SessionId,
    route: Option<&str>,
) -> Option<Option<SessionId>> {
    let node_up = copies.cluster.is_up(id.node())?;
    Some(routed(copies, id, route, node_up))
}

/// The id `id` takes on a host of route `route`, its node being up or not.
fn routed(
    copies: &Copies,
    id: &SessionId,
    route: Option<&str>,
    node_up: bool,
) -> Option<SessionId> {
    if node_up && id.route() == route {
        return None;
    }
    let replacement = (!node_up)
        .then(|| copies.cluster.next_available(id.node()))
        .flatten();
    let node = replacement.as_ref().map_or(id.node(), |n| n.id());
    let routed = SessionId::new(id.random(), node, route)?;
    (routed != *id).then_some(routed)
}
