//! Non-sticky requests: memcached is the session store. A request that may change its session
//! loads it under the session lock at its start and stores it at its end, releasing the lock, so
//! concurrent requests of one session on different hosts never overwrite each other's changes.

use crate::error::Result;
use crate::ids::SessionId;
use crate::locking::SessionLock;
use crate::manager::{Loaded, SessionManager};
use crate::session::SessionData;

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
    /// [`SessionManager::load_locked`]. The lock is released whatever the store's outcome; the
    /// store's result is returned.
    pub async fn store_and_unlock(
        &self,
        id: &SessionId,
        session: &mut SessionData,
        lock: SessionLock,
    ) -> Result<Option<SessionId>> {
        let stored = self.store(id, session).await;
        let released = self.unlock(lock).await;
        let moved = stored?;
        released?;
        Ok(moved)
    }
}
