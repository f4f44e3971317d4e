//! The numeric handles the JNI face hands to Java for managers and requests: keys into
//! registries of owned values, so that a stale or forged handle is an error, never a dangling
//! pointer.
//!
//! Both registries are on every request's path, from every request thread at once, twice per
//! request. One lock each made a busy host's threads contend for them (two threads on two cores
//! took twice as long per request as one), so a thread finds its manager in a cache of its own,
//! and requests live in shards chosen by the thread that began them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use jni::sys::jlong;
use parking_lot::Mutex;

use crate::manager::SessionManager;
use crate::request::Request;

/// Live managers, by handle.
static MANAGERS: LazyLock<Mutex<HashMap<jlong, Arc<SessionManager>>>> =
    LazyLock::new(Default::default);

/// How many managers were removed so far: a thread's cached manager is used only if none was
/// removed since it was cached, so a destroyed manager's handle fails at once everywhere.
static REMOVALS: AtomicU64 = AtomicU64::new(0);

/// The manager a thread looked up last (most threads serve one context), weakly: a cache never
/// keeps a destroyed manager alive.
struct CachedManager {
    handle: jlong,
    removals: u64,
    manager: Weak<SessionManager>,
}

thread_local! {
    static LAST_MANAGER: RefCell<Option<CachedManager>> = const { RefCell::new(None) };
}

/// Registers a manager; returns its handle.
pub(super) fn add_manager(manager: Arc<SessionManager>) -> jlong {
    static NEXT: AtomicI64 = AtomicI64::new(1);
    let handle = NEXT.fetch_add(1, Ordering::Relaxed);
    MANAGERS.lock().insert(handle, manager);
    handle
}

/// Removes a manager: its handle is refused from now on (calls running keep it until they end).
pub(super) fn remove_manager(handle: jlong) {
    let removed = MANAGERS.lock().remove(&handle);
    REMOVALS.fetch_add(1, Ordering::Release);
    drop(removed);
}

/// The live manager `handle` names.
pub(super) fn manager(handle: jlong) -> Option<Arc<SessionManager>> {
    let removals = REMOVALS.load(Ordering::Acquire);
    let cached = LAST_MANAGER.with_borrow(|last| {
        last.as_ref()
            .filter(|c| c.handle == handle && c.removals == removals)
            .and_then(|c| c.manager.upgrade())
    });
    if cached.is_some() {
        return cached;
    }
    let found = MANAGERS.lock().get(&handle).cloned()?;
    LAST_MANAGER.set(Some(CachedManager {
        handle,
        removals,
        manager: Arc::downgrade(&found),
    }));
    Some(found)
}

/// Shards of the requests between their begin and their end, each on cache lines of its own.
const SHARDS: usize = 64;

#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<HashMap<jlong, Request>>);

static REQUESTS: LazyLock<[Shard; SHARDS]> =
    LazyLock::new(|| std::array::from_fn(|_| Shard::default()));

/// Numbers threads as they first begin a request (from 1).
static THREADS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's number (0 until its first request) and the sequence number of its last.
    static THREAD: Cell<(u64, u32)> = const { Cell::new((0, 0)) };
}

/// The shard of a request's handle: that of the thread that began it.
fn shard(handle: jlong) -> &'static Mutex<HashMap<jlong, Request>> {
    let thread = (handle as u64) >> 32;
    &REQUESTS[(thread % SHARDS as u64) as usize].0
}

/// Registers a request begun on this thread; returns its handle: the thread's number above
/// the low 32 bits, and its sequence number in them (which wraps only after 2^32 requests of
/// the thread, long after any request ends).
pub(super) fn put_request(request: Request) -> jlong {
    let (mut thread, sequence) = THREAD.get();
    if thread == 0 {
        thread = THREADS.fetch_add(1, Ordering::Relaxed);
    }
    let sequence = sequence.wrapping_add(1);
    THREAD.set((thread, sequence));
    let handle = ((thread << 32) | u64::from(sequence)) as jlong;
    put_back(handle, request);
    handle
}

/// Registers a request again under its handle, after a call that took it.
pub(super) fn put_back(handle: jlong, request: Request) {
    shard(handle).lock().insert(handle, request);
}

/// Takes a request out of the registry, for a call that hands it back or ends it.
pub(super) fn take_request(handle: jlong) -> Option<Request> {
    shard(handle).lock().remove(&handle)
}

/// Runs `f` on a registered request, if `handle` names one.
pub(super) fn with_request(handle: jlong, f: impl FnOnce(&mut Request)) {
    if let Some(request) = shard(handle).lock().get_mut(&handle) {
        f(request);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigBuilder;

    fn a_manager() -> Arc<SessionManager> {
        let mut builder = ConfigBuilder::default();
        builder.set("memcachedNodes", "n1:127.0.0.1:1").unwrap();
        SessionManager::new(builder.build().unwrap()).unwrap()
    }

    #[test]
    fn a_removed_manager_is_refused_though_this_thread_cached_it() {
        let manager = a_manager();
        let handle = add_manager(Arc::clone(&manager));
        assert!(Arc::ptr_eq(&self::manager(handle).unwrap(), &manager));
        assert!(
            Arc::ptr_eq(&self::manager(handle).unwrap(), &manager),
            "cached"
        );
        let other = add_manager(a_manager());
        assert!(self::manager(other).is_some());
        remove_manager(handle);
        assert!(self::manager(handle).is_none());
        assert!(self::manager(other).is_some(), "the others stay");
        drop(manager);
        remove_manager(other);
        assert!(self::manager(other).is_none());
        assert!(self::manager(987_654_321).is_none());
    }

    #[test]
    fn a_request_is_taken_once_from_any_thread() {
        let first = put_request(Request::new("/a"));
        let second = put_request(Request::new("/b"));
        assert_ne!(first, second);
        assert!(first > 0 && second > 0);
        let elsewhere = std::thread::spawn(|| put_request(Request::new("/c")))
            .join()
            .unwrap();
        assert_ne!(elsewhere >> 32, first >> 32, "numbered by thread");
        let mut seen = None;
        with_request(second, |request| seen = Some(request.uri.clone()));
        assert_eq!(seen.as_deref(), Some("/b"));
        let taken = std::thread::spawn(move || take_request(first).map(|r| r.uri))
            .join()
            .unwrap();
        assert_eq!(taken.as_deref(), Some("/a"), "ended on another thread");
        assert!(take_request(first).is_none(), "taken once");
        put_back(first, Request::new("/a again"));
        assert_eq!(take_request(first).unwrap().uri, "/a again");
        assert!(take_request(second).is_some());
        assert!(take_request(elsewhere).is_some());
    }
}
