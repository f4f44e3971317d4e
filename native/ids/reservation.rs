//! New session ids, reserved cluster-wide with `add` so that a new id can never collide with a
//! live one, not just unlikely.

use std::sync::Arc;

use super::{RandomSource, SessionId};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::stats::{Stats, bump};
use crate::validity::session_exptime;

/// Attempts at drawing an id that is not reserved yet before giving up.
const MAX_ID_ATTEMPTS: u32 = 8;

/// Draws new session ids and reserves them in the cluster.
pub(crate) struct Reservations {
    config: Arc<Config>,
    cluster: Arc<Cluster>,
    stats: Arc<Stats>,
    random: Box<dyn RandomSource>,
}

impl std::fmt::Debug for Reservations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservations").finish_non_exhaustive()
    }
}

impl Reservations {
    pub(crate) fn new(
        config: Arc<Config>,
        cluster: Arc<Cluster>,
        stats: Arc<Stats>,
        random: Box<dyn RandomSource>,
    ) -> Self {
        Reservations {
            config,
            cluster,
            stats,
            random,
        }
    }

    /// A fresh session id on a node chosen for it, reserved cluster-wide with `add`. When no
    /// node is reachable the id is still handed out (unreserved, counted): a memcached outage
    /// must not stop new sessions.
    pub(crate) async fn new_id(&self, route: Option<&str>) -> Result<SessionId> {
        let lifetime = session_exptime(self.config.max_inactive_interval);
        for _ in 0..MAX_ID_ATTEMPTS {
            let node = self.cluster.choose_primary();
            let id =
                SessionId::new(&self.random.random_part(), node.id(), route).ok_or_else(|| {
                    Error::config(
                        "jvmRoute",
                        route.unwrap_or(""),
                        "expected 1 to 32 of [A-Za-z0-9_]",
                    )
                })?;
            let key = self.config.keys.key(KeyKind::IdReservation, &id);
            match self
                .cluster
                .call(&node, |c| c.add(&key, b"", lifetime))
                .await
            {
                Ok(true) => {
                    bump(&self.stats.ids_generated);
                    return Ok(id);
                }
                Ok(false) => {
                    bump(&self.stats.id_collisions);
                    tracing::warn!(
                        "generated session id collided with a reserved one; drawing again"
                    );
                }
                Err(e) if e.is_node_failure() => {
                    if !self.cluster.nodes().iter().any(|n| n.is_up()) {
                        bump(&self.stats.ids_generated);
                        bump(&self.stats.ids_unreserved);
                        return Ok(id);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::IdExhausted(MAX_ID_ATTEMPTS))
    }
}
