//! The C face: opaque handles, status codes and error messages over the core.
//!
//! Conventions, for every function:
//! - Handles are created by a `*_new` function and released by the matching `*_free`.
//! - The return value is an `msm_status`; `error`, when not NULL, receives NULL on success and a
//!   message on failure, owned by the caller and released with `msm_string_free`.
//! - Strings passed in are NUL-terminated UTF-8 and borrowed for the call only.
//! - No panic crosses this boundary: it becomes `MSM_STATUS_PANIC`.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::broadcast::{EventKind, SessionEvent};
use crate::config::ConfigBuilder;
use crate::copies::Loaded;
use crate::error::Error;
use crate::locking::SessionLock;
use crate::manager::SessionManager;
use crate::request::{Ended, HostCopy, Lookup, Outcome, Request, RequestStart};
use crate::runtime::{block_on, wait};
use crate::session::{SessionData, now_millis};

/// Outcome of a call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsmStatus {
    /// Success.
    Ok = 0,
    /// No such session or attribute (not an error for most hosts).
    NotFound = 1,
    /// A pointer was NULL or a string was not UTF-8.
    InvalidArgument = 2,
    /// A configuration attribute was unknown, malformed or inconsistent.
    InvalidConfig = 3,
    /// The session id is malformed or hostile; treat it as "no session".
    InvalidId = 4,
    /// A stored value failed its integrity check or could not be decoded.
    Corrupt = 5,
    /// The session exceeds memcached's item size limit or `maxSessionSize`.
    TooLarge = 6,
    /// A memcached node did not answer in time.
    Timeout = 7,
    /// The node(s) needed are down or unreachable.
    Unavailable = 8,
    /// The session lock was not acquired within `lockMaxWait`.
    LockTimeout = 9,
    /// A memcached server refused the command or answered out of protocol.
    ServerError = 10,
    /// A blocking call was made from a thread that runs an async runtime, or a similar misuse.
    Internal = 11,
    /// The library panicked; the call had no effect that can be relied upon.
    Panic = 12,
}

/// A configuration being assembled attribute by attribute.
pub struct MsmConfig(ConfigBuilder);

/// A session manager: one context's sessions in one memcached cluster. Thread-safe.
pub struct MsmManager(
    Arc<SessionManager>,
    /// Broadcast events heard from the core and not yet handed out by `msm_manager_poll_event`.
    Mutex<VecDeque<SessionEvent>>,
);

/// A session's content: metadata and attributes. Not thread-safe.
pub struct MsmSession(SessionData);

/// A held session lock, released by `msm_lock_release`.
pub struct MsmLock(SessionLock);

/// A request between `msm_request_begin` and `msm_request_end`, released by
/// `msm_request_free` (after its end: a request freed before its end leaves its lock to expire).
pub struct MsmRequest(Request);

/// What `msm_request_begin` decided; see `msm_request_get_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MsmRequestInfo {
    /// `requestUriIgnorePattern` matched: the request never touches memcached.
    pub ignored: bool,
    /// The session takes a new id on this host (`msm_request_session_id`): send a new cookie.
    pub new_cookie: bool,
    /// The request holds the session lock.
    pub locked: bool,
    /// The request carried a malformed or hostile id: it has no session.
    pub invalid_id: bool,
    /// The core read the session already (it moved off a node that is down): look it up now.
    pub prefetched: bool,
}

/// What the host holds in memory of a session a request looks up.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsmHostCopy {
    /// Nothing.
    None = 0,
    /// A copy another request of this host read and uses now.
    Shared = 1,
    /// A copy newer than memcached's (created here, or kept here between requests).
    Held = 2,
}

/// What a lookup found.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsmLookup {
    /// Memcached's copy, handed out.
    Found = 0,
    /// The host's copy is current: use it.
    Current = 1,
    /// No session: the request may create one.
    Missing = 2,
    /// The store could not tell: refuse the request (503) rather than orphan the session.
    Unavailable = 3,
}

/// What a request did with its session, told at its end.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsmOutcome {
    /// The request never used its session.
    Unused = 0,
    /// The request used the session; its content is given.
    Used = 1,
    /// The session is unchanged since its last backup (sticky) or since the read it came from
    /// (non-sticky); no content given.
    Unchanged = 2,
    /// Nothing of the session is written.
    NotStored = 3,
}

/// Metadata of a session.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MsmSessionInfo {
    /// Creation time, milliseconds since the Unix epoch.
    pub creation_time: u64,
    /// Last access, milliseconds since the Unix epoch.
    pub last_accessed: u64,
    /// Seconds of inactivity before expiry; 0 or less never expires.
    pub max_inactive: i32,
    /// Incremented by every store.
    pub version: u64,
}

// The broadcast types are named here as in C (`msm_event`...), which cbindgen.toml's renames do
// for the older types.

/// What happened to a session, in a broadcast event (the core's `EventKind`, same numbers).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum msm_event_kind {
    /// The session was created.
    Created = 0,
    /// The session ended: invalidated, or expired.
    Destroyed = 1,
    /// An attribute was added.
    AttributeAdded = 2,
    /// An attribute was replaced.
    AttributeReplaced = 3,
    /// An attribute was removed.
    AttributeRemoved = 4,
}

impl msm_event_kind {
    fn of(kind: EventKind) -> Self {
        match kind {
            EventKind::Created => msm_event_kind::Created,
            EventKind::Destroyed => msm_event_kind::Destroyed,
            EventKind::AttributeAdded => msm_event_kind::AttributeAdded,
            EventKind::AttributeReplaced => msm_event_kind::AttributeReplaced,
            EventKind::AttributeRemoved => msm_event_kind::AttributeRemoved,
        }
    }

    /// Its name in C, for messages.
    fn name(self) -> &'static str {
        match self {
            msm_event_kind::Created => "MSM_EVENT_KIND_CREATED",
            msm_event_kind::Destroyed => "MSM_EVENT_KIND_DESTROYED",
            msm_event_kind::AttributeAdded => "MSM_EVENT_KIND_ATTRIBUTE_ADDED",
            msm_event_kind::AttributeReplaced => "MSM_EVENT_KIND_ATTRIBUTE_REPLACED",
            msm_event_kind::AttributeRemoved => "MSM_EVENT_KIND_ATTRIBUTE_REMOVED",
        }
    }
}

/// A broadcast session event another manager published, from `msm_manager_poll_event`;
/// released by `msm_event_free`. Read it with `msm_event_get_info`.
#[allow(non_camel_case_types)]
pub struct msm_event {
    kind: msm_event_kind,
    id: CString,
    name: Option<CString>,
    value: Option<Vec<u8>>,
}

/// A broadcast event's content, from `msm_event_get_info`. The pointers are borrowed from the
/// event: valid until `msm_event_free`; do not free them.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct msm_event_info {
    /// What happened.
    pub kind: msm_event_kind,
    /// The session's id, without route.
    pub id: *const c_char,
    /// The attribute's name for attribute events; NULL for `MSM_EVENT_KIND_CREATED` and
    /// `MSM_EVENT_KIND_DESTROYED`.
    pub name: *const c_char,
    /// The attribute's value as the publisher serialized it, when it sent one; NULL otherwise
    /// (an empty value sent is non-NULL with `value_len` 0).
    pub value: *const u8,
    /// The value's length in bytes (0 when `value` is NULL).
    pub value_len: usize,
}

struct Failure {
    status: MsmStatus,
    message: String,
}

impl Failure {
    fn argument(message: impl Into<String>) -> Self {
        Failure {
            status: MsmStatus::InvalidArgument,
            message: message.into(),
        }
    }
}

/// The single mapping of core errors to status codes.
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Config { .. } => MsmStatus::InvalidConfig,
            Error::InvalidId | Error::InvalidKey(_) => MsmStatus::InvalidId,
            Error::Corrupt(_) => MsmStatus::Corrupt,
            Error::TooLarge { .. } => MsmStatus::TooLarge,
            Error::Timeout { .. } => MsmStatus::Timeout,
            Error::NodeDown(_) | Error::Io { .. } | Error::Unavailable => MsmStatus::Unavailable,
            Error::Protocol { .. } | Error::Server { .. } => MsmStatus::ServerError,
            Error::LockTimeout(_) => MsmStatus::LockTimeout,
            Error::IdExhausted(_) | Error::NestedRuntime => MsmStatus::Internal,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

/// `s` as a C string, its NULs replaced (by U+FFFD).
fn c_owned(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).expect("NULs were replaced")
}

fn c_string(s: &str) -> *mut c_char {
    c_owned(s).into_raw()
}

/// Stores `value` (or NULL) in an optional out-parameter.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and valid for writes per the caller's contract.
        unsafe { out.write(value) };
    }
}

/// Runs `body`, turning errors and panics into a status and an error message.
fn guard(error: *mut *mut c_char, body: impl FnOnce() -> Result<MsmStatus, Failure>) -> MsmStatus {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Failure {
            status: MsmStatus::Panic,
            message: format!("internal panic (contained): {what}"),
        })
    });
    match outcome {
        Ok(status) => {
            // SAFETY: the caller's contract for `error`.
            unsafe { put(error, ptr::null_mut()) };
            status
        }
        Err(failure) => {
            if !error.is_null() {
                // SAFETY: non-NULL, writable per the caller's contract.
                unsafe { error.write(c_string(&failure.message)) };
            }
            failure.status
        }
    }
}

/// Borrows a required string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::argument(format!("`{name}` is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::argument(format!("`{name}` is not UTF-8")))
}

/// Borrows a handle argument.
///
/// # Safety
/// `p` is NULL or a live handle of type `T`.
unsafe fn handle<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: per the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::argument(format!("`{name}` is NULL")))
}

/// Borrows a handle argument mutably.
///
/// # Safety
/// `p` is NULL or a live handle of type `T` not used elsewhere during the call.
unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: per the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::argument(format!("`{name}` is NULL")))
}

/// Hands a loaded session to the caller: `*out` receives it and `*new_id` its new id when it
/// moved; `MSM_STATUS_NOT_FOUND` when there is none.
///
/// # Safety
/// `out` is non-NULL and writable; `new_id` is NULL or writable.
unsafe fn hand_out(
    loaded: Option<Loaded>,
    out: *mut *mut MsmSession,
    new_id: *mut *mut c_char,
) -> MsmStatus {
    let Some(loaded) = loaded else {
        return MsmStatus::NotFound;
    };
    // SAFETY: per this function's contract.
    unsafe {
        out.write(Box::into_raw(Box::new(MsmSession(loaded.session))));
        if let Some(moved) = loaded.relocated {
            put(new_id, c_string(&moved.to_string()));
        }
    }
    MsmStatus::Ok
}

/// Frees a handle created by `Box::into_raw`.
///
/// # Safety
/// `p` is NULL or a handle of type `T` not freed before.
unsafe fn free<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the caller's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// The name of a status code, e.g. `"MSM_STATUS_TIMEOUT"`, or `"MSM_STATUS_UNKNOWN"` for a
/// value that is none. The string is static: do not free.
#[unsafe(no_mangle)]
pub extern "C" fn msm_status_name(status: i32) -> *const c_char {
    let name: &'static CStr = match status {
        0 => c"MSM_STATUS_OK",
        1 => c"MSM_STATUS_NOT_FOUND",
        2 => c"MSM_STATUS_INVALID_ARGUMENT",
        3 => c"MSM_STATUS_INVALID_CONFIG",
        4 => c"MSM_STATUS_INVALID_ID",
        5 => c"MSM_STATUS_CORRUPT",
        6 => c"MSM_STATUS_TOO_LARGE",
        7 => c"MSM_STATUS_TIMEOUT",
        8 => c"MSM_STATUS_UNAVAILABLE",
        9 => c"MSM_STATUS_LOCK_TIMEOUT",
        10 => c"MSM_STATUS_SERVER_ERROR",
        11 => c"MSM_STATUS_INTERNAL",
        12 => c"MSM_STATUS_PANIC",
        _ => c"MSM_STATUS_UNKNOWN",
    };
    name.as_ptr()
}

/// Releases a string returned by this library (error messages, ids, statistics). NULL is
/// ignored.
///
/// # Safety
/// `s` is NULL or a string returned by this library and not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the string came from `CString::into_raw` per the caller's contract.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Creates an empty configuration. Release it with `msm_config_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msm_config_new() -> *mut MsmConfig {
    Box::into_raw(Box::new(MsmConfig(ConfigBuilder::default())))
}

/// Releases a configuration. NULL is ignored.
///
/// # Safety
/// `config` is NULL or a configuration not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_config_free(config: *mut MsmConfig) {
    // SAFETY: per the caller's contract.
    unsafe { free(config) }
}

/// Sets one attribute (`memcachedNodes`, `sticky`, ...: see the README). An unknown name or a
/// malformed value fails with `MSM_STATUS_INVALID_CONFIG` and a message naming both.
///
/// # Safety
/// `config` is a live configuration; `name` and `value` are NUL-terminated strings; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_config_set(
    config: *mut MsmConfig,
    name: *const c_char,
    value: *const c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (config, name, value) = unsafe {
            (
                handle_mut(config, "config")?,
                text(name, "name")?,
                text(value, "value")?,
            )
        };
        config.0.set(name, value)?;
        Ok(MsmStatus::Ok)
    })
}

/// Names the application whose sessions these are (virtual host and context path); the default
/// `storageKeyPrefix` is derived from them, so applications sharing memcached stay apart.
///
/// # Safety
/// `config` is a live configuration; `host` and `context` are NUL-terminated strings; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_config_set_context(
    config: *mut MsmConfig,
    host: *const c_char,
    context: *const c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (config, host, context) = unsafe {
            (
                handle_mut(config, "config")?,
                text(host, "host")?,
                text(context, "context")?,
            )
        };
        config.0.context(host, context);
        Ok(MsmStatus::Ok)
    })
}

/// Validates a configuration and creates a manager; `*out` receives it (release with
/// `msm_manager_free`). The configuration stays owned by the caller.
///
/// # Safety
/// `config` is a live configuration; `out` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_new(
    config: *const MsmConfig,
    out: *mut *mut MsmManager,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let config = unsafe { handle(config, "config")? };
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        let manager = SessionManager::new(config.0.build()?)?;
        let manager = MsmManager(manager, Mutex::default());
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out.write(Box::into_raw(Box::new(manager))) };
        Ok(MsmStatus::Ok)
    })
}

/// Replaces the memcached node list of a running manager (`memcachedNodes` syntax) and
/// publishes it as the next version of the node list shared in the cluster, which the other
/// managers of the context follow. Failover nodes must stay in the list. Sessions on removed
/// nodes move as if their node had failed.
///
/// # Safety
/// `manager` is a live manager; `nodes` is a NUL-terminated string; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_set_nodes(
    manager: *const MsmManager,
    nodes: *const c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, nodes) = unsafe { (handle(manager, "manager")?, text(nodes, "nodes")?) };
        block_on(manager.0.set_nodes(nodes))?;
        Ok(MsmStatus::Ok)
    })
}

/// Reads the node list shared in the cluster now and adopts it when it is newer than the one in
/// force (added nodes are used, removed ones retired). Managers also read it at start, every
/// `nodeListRefreshInterval` and when a session id names a node they do not know; this is for a
/// host that wants it now (on a reload signal, say). Does nothing with `sharedNodeList=false`.
///
/// # Safety
/// `manager` is a live manager; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_refresh_nodes(
    manager: *const MsmManager,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        wait(manager.0.refresh_nodes())?;
        Ok(MsmStatus::Ok)
    })
}

/// Releases a manager and its connections. NULL is ignored. No call on it may be running.
///
/// # Safety
/// `manager` is NULL or a manager not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_free(manager: *mut MsmManager) {
    // SAFETY: per the caller's contract.
    unsafe { free(manager) }
}

/// Creates a new session id, reserved in the cluster so it cannot collide. `route` (NULL for
/// none) is the host's route suffix for load balancer stickiness. `*out_id` receives the id
/// (release with `msm_string_free`).
///
/// # Safety
/// `manager` is a live manager; `route` is NULL or a NUL-terminated string; `out_id` is
/// writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_id_new(
    manager: *const MsmManager,
    route: *const c_char,
    out_id: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        let route = if route.is_null() {
            None
        } else {
            // SAFETY: per the caller's contract.
            Some(unsafe { text(route, "route")? })
        };
        if out_id.is_null() {
            return Err(Failure::argument("`out_id` is NULL"));
        }
        let id = block_on(manager.0.new_session_id(route))?;
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out_id.write(c_string(&id.to_string())) };
        Ok(MsmStatus::Ok)
    })
}

/// Creates an empty session, created now, living `max_inactive` seconds without access
/// (0 or less: forever). Release it with `msm_session_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msm_session_new(max_inactive: i32) -> *mut MsmSession {
    Box::into_raw(Box::new(MsmSession(SessionData::new(max_inactive))))
}

/// Releases a session. NULL is ignored.
///
/// # Safety
/// `session` is NULL or a session not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_free(session: *mut MsmSession) {
    // SAFETY: per the caller's contract.
    unsafe { free(session) }
}

/// Sets an attribute to a copy of `len` bytes at `value` (`value` may be NULL when `len` is 0).
///
/// # Safety
/// `session` is a live session; `name` is a NUL-terminated string; `value` is valid for `len`
/// bytes; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_set_attribute(
    session: *mut MsmSession,
    name: *const c_char,
    value: *const u8,
    len: usize,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (session, name) = unsafe { (handle_mut(session, "session")?, text(name, "name")?) };
        let bytes = match (value.is_null(), len) {
            (_, 0) => Vec::new(),
            (true, _) => return Err(Failure::argument("`value` is NULL")),
            // SAFETY: valid for `len` bytes per the caller's contract.
            (false, _) => unsafe { std::slice::from_raw_parts(value, len) }.to_vec(),
        };
        session.0.attributes.insert(name.to_owned(), bytes);
        Ok(MsmStatus::Ok)
    })
}

/// Finds an attribute: `*value` and `*len` receive a pointer into the session (valid until the
/// session is changed or freed; do not free it) and the length. `MSM_STATUS_NOT_FOUND` when the
/// session has no such attribute.
///
/// # Safety
/// `session` is a live session; `name` is a NUL-terminated string; `value` and `len` are
/// writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_get_attribute(
    session: *const MsmSession,
    name: *const c_char,
    value: *mut *const u8,
    len: *mut usize,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (session, name) = unsafe { (handle(session, "session")?, text(name, "name")?) };
        if value.is_null() || len.is_null() {
            return Err(Failure::argument("`value` or `len` is NULL"));
        }
        let Some(bytes) = session.0.attributes.get(name) else {
            return Ok(MsmStatus::NotFound);
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe {
            value.write(bytes.as_ptr());
            len.write(bytes.len());
        }
        Ok(MsmStatus::Ok)
    })
}

/// Removes an attribute; `MSM_STATUS_NOT_FOUND` when there was none.
///
/// # Safety
/// `session` is a live session; `name` is a NUL-terminated string; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_remove_attribute(
    session: *mut MsmSession,
    name: *const c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (session, name) = unsafe { (handle_mut(session, "session")?, text(name, "name")?) };
        Ok(match session.0.attributes.remove(name) {
            Some(_) => MsmStatus::Ok,
            None => MsmStatus::NotFound,
        })
    })
}

/// The number of attributes; 0 for NULL.
///
/// # Safety
/// `session` is NULL or a live session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_attribute_count(session: *const MsmSession) -> usize {
    // SAFETY: per the caller's contract.
    unsafe { session.as_ref() }.map_or(0, |s| s.0.attributes.len())
}

/// The name of the attribute at `index` in name order; `*out_name` receives a copy (release
/// with `msm_string_free`). `MSM_STATUS_NOT_FOUND` when `index` is out of range.
///
/// # Safety
/// `session` is a live session; `out_name` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_attribute_name(
    session: *const MsmSession,
    index: usize,
    out_name: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let session = unsafe { handle(session, "session")? };
        if out_name.is_null() {
            return Err(Failure::argument("`out_name` is NULL"));
        }
        let Some(name) = session.0.attributes.keys().nth(index) else {
            return Ok(MsmStatus::NotFound);
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out_name.write(c_string(name)) };
        Ok(MsmStatus::Ok)
    })
}

/// Reads a session's metadata into `*out`.
///
/// # Safety
/// `session` is a live session; `out` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_get_info(
    session: *const MsmSession,
    out: *mut MsmSessionInfo,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let s = &unsafe { handle(session, "session")? }.0;
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        let info = MsmSessionInfo {
            creation_time: s.creation_time,
            last_accessed: s.last_accessed,
            max_inactive: s.max_inactive,
            version: s.version,
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out.write(info) };
        Ok(MsmStatus::Ok)
    })
}

/// Records an access now and sets the session's lifetime in seconds (0 or less: forever).
///
/// # Safety
/// `session` is a live session; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_access(
    session: *mut MsmSession,
    max_inactive: i32,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let s = &mut unsafe { handle_mut(session, "session")? }.0;
        s.last_accessed = now_millis();
        s.max_inactive = max_inactive;
        Ok(MsmStatus::Ok)
    })
}

/// Stores a session under `id` (plus its second copy in non-sticky mode) and bumps its version.
/// When the session's node is down it moves to another node: `*new_id` then receives the id to
/// use from now on (release with `msm_string_free`), otherwise NULL. `new_id` may be NULL.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `session` is a live session;
/// `new_id` and `error` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_store(
    manager: *const MsmManager,
    id: *const c_char,
    session: *mut MsmSession,
    new_id: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(new_id, ptr::null_mut()) };
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw, session) = unsafe {
            (
                handle(manager, "manager")?,
                text(id, "id")?,
                handle_mut(session, "session")?,
            )
        };
        let id = manager.0.parse_id(raw)?;
        if let Some(moved) = block_on(manager.0.store(&id, &mut session.0))? {
            // SAFETY: per the caller's contract.
            unsafe { put(new_id, c_string(&moved.to_string())) };
        }
        Ok(MsmStatus::Ok)
    })
}

/// Loads the session `id`: `*out` receives it (release with `msm_session_free`), or NULL with
/// `MSM_STATUS_NOT_FOUND`. When it had to move to its second copy's node, `*new_id` receives the id to
/// use from now on (release with `msm_string_free`), otherwise NULL. `new_id` may be NULL.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `out` is writable; `new_id` and
/// `error` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_load(
    manager: *const MsmManager,
    id: *const c_char,
    out: *mut *mut MsmSession,
    new_id: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe {
        put(new_id, ptr::null_mut());
        put(out, ptr::null_mut());
    }
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        let id = manager.0.parse_id(raw)?;
        let loaded = block_on(manager.0.load(&id))?;
        // SAFETY: `out` checked non-NULL; both writable per the caller's contract.
        Ok(unsafe { hand_out(loaded, out, new_id) })
    })
}

/// Renews the memcached expiry of the session `id` to `max_inactive` seconds without rewriting
/// it. `MSM_STATUS_NOT_FOUND` when memcached does not hold it.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_touch(
    manager: *const MsmManager,
    id: *const c_char,
    max_inactive: i32,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        let id = manager.0.parse_id(raw)?;
        Ok(match block_on(manager.0.touch(&id, max_inactive))? {
            true => MsmStatus::Ok,
            false => MsmStatus::NotFound,
        })
    })
}

/// Deletes every copy of the session `id` (session, backup, lock, validity, id reservation).
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_delete(
    manager: *const MsmManager,
    id: *const c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        let id = manager.0.parse_id(raw)?;
        block_on(manager.0.delete(&id))?;
        Ok(MsmStatus::Ok)
    })
}

/// Takes the lock of the session `id`, waiting with exponential backoff up to `lockMaxWait`
/// (`MSM_STATUS_LOCK_TIMEOUT` then). `*out` receives the lock; give it to `msm_lock_release`.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `out` is writable; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_lock_acquire(
    manager: *const MsmManager,
    id: *const c_char,
    out: *mut *mut MsmLock,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(out, ptr::null_mut()) };
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        let id = manager.0.parse_id(raw)?;
        let lock = block_on(manager.0.lock(&id))?;
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out.write(Box::into_raw(Box::new(MsmLock(lock)))) };
        Ok(MsmStatus::Ok)
    })
}

/// Releases a lock taken by `msm_lock_acquire` and frees `lock`, whatever the outcome. A lock that
/// expired and was taken by another holder is left to that holder.
///
/// # Safety
/// `manager` is a live manager; `lock` is a lock from `msm_lock_acquire` not released before; `error`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_lock_release(
    manager: *const MsmManager,
    lock: *mut MsmLock,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        if lock.is_null() {
            return Err(Failure::argument("`lock` is NULL"));
        }
        // SAFETY: a live lock handle, owned from here on, per the caller's contract.
        let lock = unsafe { Box::from_raw(lock) }.0;
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        block_on(manager.0.unlock(lock))?;
        Ok(MsmStatus::Ok)
    })
}

/// Non-sticky request start: takes the lock of the session `id` (waiting with backoff up to
/// `lockMaxWait`), then loads it. `*lock` receives the lock whatever the load finds; give it to
/// `msm_store_unlock` (or `msm_lock_release` when nothing changed). `*out` receives the session,
/// or NULL with `MSM_STATUS_NOT_FOUND` (the lock is held then too, so the host may create it).
/// `*new_id` receives the session's new id when it moved to another node, otherwise NULL;
/// `new_id` may be NULL. On any other status nothing is held.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `out` and `lock` are
/// writable; `new_id` and `error` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_load_locked(
    manager: *const MsmManager,
    id: *const c_char,
    out: *mut *mut MsmSession,
    new_id: *mut *mut c_char,
    lock: *mut *mut MsmLock,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe {
        put(out, ptr::null_mut());
        put(new_id, ptr::null_mut());
        put(lock, ptr::null_mut());
    }
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        if out.is_null() || lock.is_null() {
            return Err(Failure::argument("`out` or `lock` is NULL"));
        }
        let id = manager.0.parse_id(raw)?;
        let (loaded, held) = block_on(manager.0.load_locked(&id))?;
        // SAFETY: `out` and `lock` checked non-NULL; all writable per the caller's contract.
        Ok(unsafe {
            lock.write(Box::into_raw(Box::new(MsmLock(held))));
            hand_out(loaded, out, new_id)
        })
    })
}

/// Non-sticky request end: stores the session under `id` (as `msm_store` does) and releases
/// `lock`, which is freed whatever the outcome. `*new_id` receives the session's new id when it
/// moved to another node, otherwise NULL; `new_id` may be NULL.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `session` is a live session;
/// `lock` comes from `msm_load_locked` or `msm_lock_acquire` and was not released before;
/// `new_id` and `error` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_store_unlock(
    manager: *const MsmManager,
    id: *const c_char,
    session: *mut MsmSession,
    lock: *mut MsmLock,
    new_id: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(new_id, ptr::null_mut()) };
    guard(error, || {
        if lock.is_null() {
            return Err(Failure::argument("`lock` is NULL"));
        }
        // SAFETY: a live lock handle, owned from here on, per the caller's contract.
        let lock = unsafe { Box::from_raw(lock) }.0;
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        // SAFETY: per the caller's contract.
        let arguments =
            unsafe { text(id, "id").and_then(|raw| Ok((raw, handle_mut(session, "session")?))) };
        let (id, session) = match arguments.and_then(|(raw, s)| Ok((manager.0.parse_id(raw)?, s))) {
            Ok(valid) => valid,
            Err(failure) => {
                // Nothing to store, but the lock must not be left to expire.
                block_on(manager.0.unlock(lock)).ok();
                return Err(failure);
            }
        };
        if let Some(moved) = block_on(manager.0.store_and_unlock(&id, &mut session.0, lock))? {
            // SAFETY: per the caller's contract.
            unsafe { put(new_id, c_string(&moved.to_string())) };
        }
        Ok(MsmStatus::Ok)
    })
}

/// The manager's statistics and node states as `name value` lines; `*out` receives them
/// (release with `msm_string_free`).
///
/// # Safety
/// `manager` is a live manager; `out` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_stats(
    manager: *const MsmManager,
    out: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out.write(c_string(&manager.0.stats_text())) };
        Ok(MsmStatus::Ok)
    })
}

/// Panics inside the library on purpose, so a host can check that panics are contained: returns
/// `MSM_STATUS_PANIC` with a message, and the process goes on.
///
/// # Safety
/// `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_selftest_panic(error: *mut *mut c_char) -> MsmStatus {
    guard(error, || panic!("msm_selftest_panic was called"))
}

/// A request starts (the contract is the core's `SessionManager::begin`): `session_id` is the id
/// the request carries (cookie or URL; NULL when none), `route` this host's route (NULL when
/// none). `*out` receives the request (release with `msm_request_free` after
/// `msm_request_end`). `MSM_STATUS_LOCK_TIMEOUT` when the lock was not acquired in time and
/// `lockFailure="refuse"`: answer 503.
///
/// # Safety
/// `manager` is a live manager; `uri` is a NUL-terminated string; `session_id` and `route` are
/// NULL or NUL-terminated strings; `out` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_request_begin(
    manager: *const MsmManager,
    session_id: *const c_char,
    uri: *const c_char,
    route: *const c_char,
    out: *mut *mut MsmRequest,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(out, ptr::null_mut()) };
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, uri) = unsafe { (handle(manager, "manager")?, text(uri, "uri")?) };
        // SAFETY: per the caller's contract.
        let (session_id, route) = unsafe {
            (
                optional_text(session_id, "session_id")?,
                optional_text(route, "route")?,
            )
        };
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        let start = RequestStart {
            session_id,
            uri,
            route,
        };
        let request = match manager.0.begin_now(start) {
            Some(begun) => begun?,
            None => block_on(manager.0.begin(start))?,
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out.write(Box::into_raw(Box::new(MsmRequest(request)))) };
        Ok(MsmStatus::Ok)
    })
}

/// What `msm_request_begin` decided for `request`.
///
/// # Safety
/// `request` is a live request; `info` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_request_get_info(
    request: *const MsmRequest,
    info: *mut MsmRequestInfo,
) -> MsmStatus {
    guard(ptr::null_mut(), || {
        // SAFETY: per the caller's contract.
        let request = unsafe { handle(request, "request")? };
        if info.is_null() {
            return Err(Failure::argument("`info` is NULL"));
        }
        let r = &request.0;
        let value = MsmRequestInfo {
            ignored: r.ignored(),
            new_cookie: r.new_cookie(),
            locked: r.locked(),
            invalid_id: r.invalid_id(),
            prefetched: r.prefetched(),
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { info.write(value) };
        Ok(MsmStatus::Ok)
    })
}

/// The id of the request's session on this host: `*out` receives it (release with
/// `msm_string_free`), or NULL with `MSM_STATUS_NOT_FOUND` when the request carried none (or a
/// malformed one).
///
/// # Safety
/// `request` is a live request; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_request_session_id(
    request: *const MsmRequest,
    out: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(out, ptr::null_mut()) };
    guard(ptr::null_mut(), || {
        // SAFETY: per the caller's contract.
        let request = unsafe { handle(request, "request")? };
        if out.is_null() {
            return Err(Failure::argument("`out` is NULL"));
        }
        let Some(id) = request.0.session_id() else {
            return Ok(MsmStatus::NotFound);
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { out.write(c_string(&id.to_string())) };
        Ok(MsmStatus::Ok)
    })
}

/// The request uses the session `id`, of which the host holds `host` (the contract is the
/// core's `SessionManager::lookup`). `*found` receives what was found; with `MSM_LOOKUP_FOUND`,
/// `*out` receives the session (release with `msm_session_free`) and `*new_id` its new id when
/// it moved to another node (send it as the new cookie; release with `msm_string_free`), else
/// NULL. `new_id` may be NULL. Hand that session (changed through `msm_session_*` as needed) to
/// `msm_request_end` of the request that ends it last: it carries which read it derives from.
///
/// # Safety
/// `manager` is a live manager; `request` a live request not used elsewhere during the call;
/// `id` a NUL-terminated string; `found` and `out` writable; `new_id` and `error` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_request_lookup(
    manager: *const MsmManager,
    request: *mut MsmRequest,
    id: *const c_char,
    host: MsmHostCopy,
    found: *mut MsmLookup,
    out: *mut *mut MsmSession,
    new_id: *mut *mut c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe {
        put(out, ptr::null_mut());
        put(new_id, ptr::null_mut());
    }
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, request, raw) = unsafe {
            (
                handle(manager, "manager")?,
                handle_mut(request, "request")?,
                text(id, "id")?,
            )
        };
        if found.is_null() || out.is_null() {
            return Err(Failure::argument("`found` or `out` is NULL"));
        }
        let host = match host {
            MsmHostCopy::None => HostCopy::None,
            MsmHostCopy::Shared => HostCopy::Shared,
            MsmHostCopy::Held => HostCopy::Held,
        };
        let (kind, loaded) =
            match block_on(async { Ok(manager.0.lookup(&mut request.0, raw, host).await) })? {
                Lookup::Found(loaded) => (MsmLookup::Found, Some(loaded)),
                Lookup::Current => (MsmLookup::Current, None),
                Lookup::Missing => (MsmLookup::Missing, None),
                Lookup::Unavailable => (MsmLookup::Unavailable, None),
            };
        // SAFETY: checked non-NULL; all writable per the caller's contract.
        unsafe {
            found.write(kind);
            hand_out(loaded, out, new_id);
        }
        Ok(MsmStatus::Ok)
    })
}

/// The request ends (the contract is the core's `SessionManager::end`): `outcome` says what it
/// did; with `MSM_OUTCOME_USED`, `id` and `session` are the session's id and content now, and
/// `previous_id` (NULL unless the request changed it) its id when the request began; with
/// `MSM_OUTCOME_UNCHANGED`, `id` and `session` (only its lifetime and, non-sticky, the read it
/// came from are read). `*new_id` receives the session's new id when it moved to another node
/// (send it as the new cookie; release with `msm_string_free`), else NULL. `*needs_content` is
/// set when the core cannot vouch for a session called unchanged: end the request again with
/// `MSM_OUTCOME_USED` (the request keeps its lock until then). Otherwise the lock is released
/// (or handed to the next request of this host) whatever the status.
///
/// # Safety
/// `manager` is a live manager; `request` a live request not used elsewhere during the call;
/// `id` and `previous_id` NULL or NUL-terminated strings; `session` NULL or a live session;
/// `new_id`, `needs_content` and `error` NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn msm_request_end(
    manager: *const MsmManager,
    request: *mut MsmRequest,
    outcome: MsmOutcome,
    id: *const c_char,
    session: *const MsmSession,
    previous_id: *const c_char,
    new_id: *mut *mut c_char,
    needs_content: *mut bool,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe {
        put(new_id, ptr::null_mut());
        put(needs_content, false);
    }
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, request) =
            unsafe { (handle(manager, "manager")?, handle_mut(request, "request")?) };
        // SAFETY: per the caller's contract.
        let arguments = unsafe {
            (|| {
                Ok::<_, Failure>((
                    optional_text(id, "id")?,
                    session.as_ref(),
                    optional_text(previous_id, "previous_id")?,
                ))
            })()
        };
        let (id, session, previous) = match arguments {
            Ok(valid) => valid,
            Err(failure) => {
                // Nothing to store, but the lock must not be left to expire.
                block_on(async { manager.0.end(&mut request.0, Outcome::NotStored).await })?;
                return Err(failure);
            }
        };
        let content = match (outcome, id, session) {
            (MsmOutcome::Used, Some(id), Some(session)) => Outcome::Used {
                id,
                session: session.0.clone(),
                previous,
            },
            (MsmOutcome::Unchanged, Some(id), Some(session)) => Outcome::Unchanged {
                id,
                max_inactive: session.0.max_inactive,
                read: session.0.read,
            },
            (MsmOutcome::Used | MsmOutcome::Unchanged, _, _) => {
                block_on(async { manager.0.end(&mut request.0, Outcome::NotStored).await })?;
                return Err(Failure::argument("`id` or `session` is NULL"));
            }
            (MsmOutcome::Unused, _, _) => Outcome::Unused,
            (MsmOutcome::NotStored, _, _) => Outcome::NotStored,
        };
        let ended = match manager.0.end_now(&request.0, &content) {
            Some(ended) => ended?,
            None => block_on(async { manager.0.end(&mut request.0, content).await })?,
        };
        match ended {
            Ended::NeedsContent => {
                // SAFETY: per the caller's contract.
                unsafe { put(needs_content, true) };
            }
            Ended::Done { moved, .. } => {
                if let Some(moved) = moved {
                    // SAFETY: per the caller's contract.
                    unsafe { put(new_id, c_string(&moved.to_string())) };
                }
            }
        }
        Ok(MsmStatus::Ok)
    })
}

/// Releases a request (after `msm_request_end`). NULL is ignored.
///
/// # Safety
/// `request` is NULL or a live request, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_request_free(request: *mut MsmRequest) {
    // SAFETY: per the caller's contract.
    unsafe { free(request) }
}

/// Borrows an optional string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn optional_text<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: per the caller's contract.
    unsafe { text(p, name) }.map(Some)
}

/// The session `id` ended on this host: timed out, `max_inactive` seconds after its last access
/// at `last_accessed` (epoch milliseconds), or invalidated before that. Its memcached copies go
/// (on expiry, unless another host wrote a newer version meanwhile: it took the session over).
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_ended(
    manager: *const MsmManager,
    id: *const c_char,
    last_accessed: u64,
    max_inactive: i32,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        let id = manager.0.parse_id(raw)?;
        block_on(manager.0.ended(&id, last_accessed, max_inactive))?;
        Ok(MsmStatus::Ok)
    })
}

/// The session `id` is about to end on this host (call it before running its end-of-session
/// work, then `msm_session_ended` either way): `*announce` receives whether this host runs that
/// work. With `sessionEvents="expiry"`, a session that timed out (`max_inactive` seconds after
/// its last access at `last_accessed`, epoch milliseconds) is marked ended in memcached, and
/// `*announce` is false when a sweep delivered its expiry already (to this host or another),
/// another host ended it, or (sticky) another host took it over since; an invalidation, and
/// every end without events, is announced by the host: true, nothing sent.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `announce` is writable;
/// `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_ending(
    manager: *const MsmManager,
    id: *const c_char,
    last_accessed: u64,
    max_inactive: i32,
    announce: *mut bool,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(announce, true) };
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw) = unsafe { (handle(manager, "manager")?, text(id, "id")?) };
        if announce.is_null() {
            return Err(Failure::argument("`announce` is NULL"));
        }
        let id = manager.0.parse_id(raw)?;
        let ending = manager.0.ending(&id, last_accessed, max_inactive);
        let announced = block_on(async { Ok::<_, crate::Error>(ending.await) })?;
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { announce.write(announced) };
        Ok(MsmStatus::Ok)
    })
}

/// With `sessionEvents="expiry"`: the next session that ended by expiry that this host must
/// deliver (run its end-of-session work for), each handed to one manager of the context only.
/// `*id` receives its id (release with `msm_string_free`) and `*session` its last stored data
/// (release with `msm_session_free`); `MSM_STATUS_NOT_FOUND`, both NULL, when there is none now.
/// Call it until `MSM_STATUS_NOT_FOUND` at least every `eventSweepInterval` seconds. Without
/// events it always answers `MSM_STATUS_NOT_FOUND` and sends nothing.
///
/// # Safety
/// `manager` is a live manager; `id` and `session` are writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_poll_expired(
    manager: *const MsmManager,
    id: *mut *mut c_char,
    session: *mut *mut MsmSession,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe {
        put(id, ptr::null_mut());
        put(session, ptr::null_mut());
    }
    guard(error, || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        if id.is_null() || session.is_null() {
            return Err(Failure::argument("`id` or `session` is NULL"));
        }
        let Some(expired) = block_on(manager.0.next_expired_session())? else {
            return Ok(MsmStatus::NotFound);
        };
        // SAFETY: both checked non-NULL; writable per the caller's contract.
        unsafe {
            id.write(c_string(&expired.id.to_string()));
            session.write(Box::into_raw(Box::new(MsmSession(expired.session))));
        }
        Ok(MsmStatus::Ok)
    })
}

/// With `sessionEvents="broadcast"`: publishes one session event that happened on this host,
/// for the other managers of the context to hear (the contract is the core's
/// `SessionManager::publish`; one round trip). `kind` is an `msm_event_kind`; `id` the session's
/// id (a route is dropped); `name` the attribute's name, required for attribute events and NULL
/// for `MSM_EVENT_KIND_CREATED` and `MSM_EVENT_KIND_DESTROYED`; `value` the attribute's value as
/// the host serializes it, `value_len` bytes, or NULL when not sent (attribute events only).
/// Arguments that do not fit fail (`MSM_STATUS_INVALID_ARGUMENT`, or `MSM_STATUS_INVALID_ID`
/// for `id`) and nothing is published; otherwise `MSM_STATUS_OK`, even when the event could not
/// be published (counted in `broadcast_events_unpublished` and logged). Without broadcast it
/// sends nothing.
///
/// # Safety
/// `manager` is a live manager; `id` is a NUL-terminated string; `name` is NULL or a
/// NUL-terminated string; `value` is NULL or valid for `value_len` bytes; `error` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_publish(
    manager: *const MsmManager,
    kind: i32,
    id: *const c_char,
    name: *const c_char,
    value: *const u8,
    value_len: usize,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, raw, name) = unsafe {
            (
                handle(manager, "manager")?,
                text(id, "id")?,
                optional_text(name, "name")?,
            )
        };
        let kind = EventKind::from_number(kind).ok_or_else(|| {
            Failure::argument(format!(
                "`kind` {kind} is not an msm_event_kind (0 to 4): nothing published"
            ))
        })?;
        let c_kind = msm_event_kind::of(kind).name();
        match (kind.names_attribute(), name.is_some()) {
            (true, false) => {
                return Err(Failure::argument(format!(
                    "`name` is NULL, but a {c_kind} event names its attribute: nothing published"
                )));
            }
            (false, true) => {
                return Err(Failure::argument(format!(
                    "`name` is given, but a {c_kind} event names no attribute: nothing published"
                )));
            }
            _ => {}
        }
        let value = match (value.is_null(), value_len) {
            (true, 0) => None,
            (true, _) => {
                return Err(Failure::argument(format!(
                    "`value` is NULL, but `value_len` is {value_len}: nothing published"
                )));
            }
            (false, _) if !kind.names_attribute() => {
                return Err(Failure::argument(format!(
                    "`value` is given, but a {c_kind} event carries no value: nothing published"
                )));
            }
            // SAFETY: valid for `value_len` bytes per the caller's contract.
            (false, _) => Some(unsafe { std::slice::from_raw_parts(value, value_len) }.to_vec()),
        };
        let id = manager.0.parse_id(raw).map_err(|e| Failure {
            message: format!("`id`: {e}: nothing published"),
            ..Failure::from(e)
        })?;
        let event = SessionEvent {
            kind,
            id: id.with_route(None).unwrap_or(id),
            name: name.map(str::to_owned),
            value,
        };
        wait(manager.0.publish(std::slice::from_ref(&event)))?;
        Ok(MsmStatus::Ok)
    })
}

/// With `sessionEvents="broadcast"`: the next session event the other managers of the context
/// published (the contract is the core's `SessionManager::broadcast_events`: each heard once, in
/// order). `*event` receives it (read it with `msm_event_get_info`, release it with
/// `msm_event_free`); `MSM_STATUS_NOT_FOUND`, NULL, when there is none now. Call it until
/// `MSM_STATUS_NOT_FOUND` every `msm_manager_broadcast_poll_interval_ms` milliseconds, and fire
/// the host's listeners for each event. It asks memcached only when the events it heard before
/// are all handed out (one round trip per node); a node that cannot be read fails the call
/// (`MSM_STATUS_UNAVAILABLE`, say) when nothing was heard, and is read again at the next call.
/// Without broadcast it always answers `MSM_STATUS_NOT_FOUND` and sends nothing.
///
/// # Safety
/// `manager` is a live manager; `event` is writable; `error` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_poll_event(
    manager: *const MsmManager,
    event: *mut *mut msm_event,
    error: *mut *mut c_char,
) -> MsmStatus {
    // SAFETY: per the caller's contract.
    unsafe { put(event, ptr::null_mut()) };
    guard(error, || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        if event.is_null() {
            return Err(Failure::argument("`event` is NULL"));
        }
        // Held while the core is asked, so that concurrent calls hand events out in order.
        let mut heard = manager.1.lock();
        if heard.is_empty() {
            heard.extend(block_on(manager.0.broadcast_events())?);
        }
        let Some(next) = heard.pop_front() else {
            return Ok(MsmStatus::NotFound);
        };
        drop(heard);
        let next = msm_event {
            kind: msm_event_kind::of(next.kind),
            id: c_owned(&next.id.to_string()),
            name: next.name.as_deref().map(c_owned),
            value: next.value,
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { event.write(Box::into_raw(Box::new(next))) };
        Ok(MsmStatus::Ok)
    })
}

/// The content of a broadcast event: `*info` receives it, its pointers borrowed from `event`.
///
/// # Safety
/// `event` is a live event; `info` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_event_get_info(
    event: *const msm_event,
    info: *mut msm_event_info,
) -> MsmStatus {
    guard(ptr::null_mut(), || {
        // SAFETY: per the caller's contract.
        let event = unsafe { handle(event, "event")? };
        if info.is_null() {
            return Err(Failure::argument("`info` is NULL"));
        }
        let (value, value_len) = match event.value.as_deref() {
            None => (ptr::null(), 0),
            // Not NULL: the publisher sent an empty value.
            Some([]) => (c"".as_ptr().cast::<u8>(), 0),
            Some(bytes) => (bytes.as_ptr(), bytes.len()),
        };
        let content = msm_event_info {
            kind: event.kind,
            id: event.id.as_ptr(),
            name: event.name.as_deref().map_or(ptr::null(), CStr::as_ptr),
            value,
            value_len,
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { info.write(content) };
        Ok(MsmStatus::Ok)
    })
}

/// Releases an event. NULL is ignored.
///
/// # Safety
/// `event` is NULL or an event not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_event_free(event: *mut msm_event) {
    // SAFETY: per the caller's contract.
    unsafe { free(event) }
}

/// How often, in milliseconds, a host calls `msm_manager_poll_event` (`broadcastPollInterval`);
/// 0 when `sessionEvents` is not `broadcast` (there is nothing to poll) or `manager` is NULL.
///
/// # Safety
/// `manager` is NULL or a live manager.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_broadcast_poll_interval_ms(manager: *const MsmManager) -> u32 {
    // SAFETY: per the caller's contract.
    let Some(manager) = (unsafe { manager.as_ref() }) else {
        return 0;
    };
    let config = manager.0.config();
    if !config.session_events.broadcast() {
        return 0;
    }
    u32::try_from(config.broadcast_poll_interval.as_millis()).unwrap_or(u32::MAX)
}

/// A session held in this host's memory (sticky) took a new id: its copies under `old_id` go
/// when its storage key changed.
///
/// # Safety
/// `manager` is a live manager; `old_id` and `new_id` are NUL-terminated strings; `error` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_session_id_changed(
    manager: *const MsmManager,
    old_id: *const c_char,
    new_id: *const c_char,
    error: *mut *mut c_char,
) -> MsmStatus {
    guard(error, || {
        // SAFETY: per the caller's contract.
        let (manager, old, new) = unsafe {
            (
                handle(manager, "manager")?,
                text(old_id, "old_id")?,
                text(new_id, "new_id")?,
            )
        };
        let (old, new) = (manager.0.parse_id(old)?, manager.0.parse_id(new)?);
        block_on(manager.0.id_changed(&old, &new))?;
        Ok(MsmStatus::Ok)
    })
}

/// Waits up to `timeout_ms` for background writes (sticky backups); `*pending` receives how many
/// sessions still have work in flight (0: all done). Call it before stopping.
///
/// # Safety
/// `manager` is a live manager; `pending` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_flush(
    manager: *const MsmManager,
    timeout_ms: u32,
    pending: *mut usize,
) -> MsmStatus {
    guard(ptr::null_mut(), || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        let left = manager
            .0
            .flush(std::time::Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: per the caller's contract.
        unsafe { put(pending, left) };
        Ok(MsmStatus::Ok)
    })
}

/// Settings of a running manager that a host acts on.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MsmManagerInfo {
    /// `sticky`: the host keeps sessions in memory between requests.
    pub sticky: bool,
    /// `enabled`: sessions go to memcached at all.
    pub enabled: bool,
}

/// The settings of `manager` a host acts on.
///
/// # Safety
/// `manager` is a live manager; `info` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_get_info(
    manager: *const MsmManager,
    info: *mut MsmManagerInfo,
) -> MsmStatus {
    guard(ptr::null_mut(), || {
        // SAFETY: per the caller's contract.
        let manager = unsafe { handle(manager, "manager")? };
        if info.is_null() {
            return Err(Failure::argument("`info` is NULL"));
        }
        let config = manager.0.config();
        let value = MsmManagerInfo {
            sticky: config.sticky,
            enabled: config.enabled,
        };
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { info.write(value) };
        Ok(MsmStatus::Ok)
    })
}

/// Whether the attribute `name` is stored (`sessionAttributeFilter`): `MSM_STATUS_OK` when it
/// is, `MSM_STATUS_NOT_FOUND` when the filter leaves it out.
///
/// # Safety
/// `manager` is a live manager; `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msm_manager_stores_attribute(
    manager: *const MsmManager,
    name: *const c_char,
) -> MsmStatus {
    guard(ptr::null_mut(), || {
        // SAFETY: per the caller's contract.
        let (manager, name) = unsafe { (handle(manager, "manager")?, text(name, "name")?) };
        Ok(if manager.0.config().stores_attribute(name) {
            MsmStatus::Ok
        } else {
            MsmStatus::NotFound
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_name() {
        let statuses = [
            MsmStatus::Ok,
            MsmStatus::NotFound,
            MsmStatus::InvalidArgument,
            MsmStatus::InvalidConfig,
            MsmStatus::InvalidId,
            MsmStatus::Corrupt,
            MsmStatus::TooLarge,
            MsmStatus::Timeout,
            MsmStatus::Unavailable,
            MsmStatus::LockTimeout,
            MsmStatus::ServerError,
            MsmStatus::Internal,
            MsmStatus::Panic,
        ];
        for status in statuses {
            // SAFETY: the function returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(msm_status_name(status as i32)) };
            let expected = format!("{status:?}");
            let squashed = name.to_str().unwrap().replace('_', "").to_lowercase();
            assert_eq!(squashed, format!("msmstatus{}", expected.to_lowercase()));
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(msm_status_name(99)) };
        assert_eq!(unknown.to_str().unwrap(), "MSM_STATUS_UNKNOWN");
    }

    #[test]
    fn committed_header_is_current() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/msm.h"));
        let committed = include_str!("../../include/msm.h");
        assert!(
            generated == committed,
            "include/msm.h is stale: run `MSM_UPDATE_HEADER=1 cargo build` and commit it"
        );
    }
}
