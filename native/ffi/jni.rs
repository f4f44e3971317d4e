//! The JNI face: the static native methods of `io.msm.Native`, for the Tomcat shim.
//!
//! Each method converts its arguments, calls the core and converts the result. Managers are
//! handed to Java as numeric handles into a registry of `Arc`s, so a stale or forged handle is an
//! exception, never a dangling pointer. Core errors become `io.msm.*Exception`s (mapped in one
//! place, [`exception_class`]); a panic becomes an `io.msm.MsmException` and never unwinds into
//! the JVM.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jni::errors::ErrorPolicy;
use jni::objects::{JByteArray, JClass, JObject, JObjectArray, JString};
use jni::strings::JNIString;
use jni::sys::{jboolean, jint, jlong};
use jni::{Env, EnvUnowned};
use parking_lot::Mutex;
use tracing::Level;

use crate::config::ConfigBuilder;
use crate::error::Error;
use crate::ids::SessionId;
use crate::locking::SessionLock;
use crate::logging;
use crate::manager::SessionManager;
use crate::runtime::{self, block_on};
use crate::session::SessionData;
use crate::sticky::BackupOutcome;

/// Why a native method failed.
#[derive(Debug)]
enum Failure {
    /// The core refused.
    Core(Error),
    /// A JNI call failed (an exception may be pending already).
    Jni(jni::errors::Error),
    /// Java passed something the method does not accept.
    Argument(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// The single mapping of core errors to Java exception classes.
fn exception_class(e: &Error) -> &'static str {
    match e {
        Error::Config { .. } => "io/msm/MsmConfigException",
        Error::InvalidId | Error::InvalidKey(_) => "io/msm/MsmInvalidIdException",
        Error::Corrupt(_) => "io/msm/MsmCorruptException",
        Error::TooLarge { .. } => "io/msm/MsmTooLargeException",
        Error::Timeout { .. } => "io/msm/MsmTimeoutException",
        Error::NodeDown(_) | Error::Io { .. } | Error::Unavailable => {
            "io/msm/MsmUnavailableException"
        }
        Error::LockTimeout(_) => "io/msm/MsmLockTimeoutException",
        Error::Protocol { .. }
        | Error::Server { .. }
        | Error::IdExhausted(_)
        | Error::NestedRuntime => "io/msm/MsmException",
    }
}

/// Throws the Java exception matching a failure, and returns the method's default value.
struct ThrowMsm;

impl<T: Default> ErrorPolicy<T, Failure> for ThrowMsm {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _: &mut (),
        failure: Failure,
    ) -> jni::errors::Result<T> {
        if env.exception_check() {
            return Ok(T::default());
        }
        let (class, message) = match failure {
            Failure::Core(e) => (exception_class(&e), e.to_string()),
            Failure::Argument(message) => ("java/lang/IllegalArgumentException", message),
            Failure::Jni(e) => ("io/msm/MsmException", format!("JNI failure: {e}")),
        };
        let _ = env.throw_new(JNIString::from(class), JNIString::from(message));
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _: &mut (),
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        // Dropping a payload may itself panic; then it is leaked rather than unwound into Java.
        if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload)))
        {
            std::mem::forget(again);
        }
        if !env.exception_check() {
            let _ = env.throw_new(
                JNIString::from("io/msm/MsmException"),
                JNIString::from(format!("internal panic (contained): {what}")),
            );
        }
        Ok(T::default())
    }
}

/// Runs a native method's body with an `Env`, turning failures into Java exceptions.
fn run<'local, T: Default>(
    env: &mut EnvUnowned<'local>,
    body: impl FnOnce(&mut Env<'local>) -> Result<T>,
) -> T {
    env.with_env(body).resolve::<ThrowMsm>()
}

/// Managers handed to Java, by handle.
fn registry() -> &'static Mutex<HashMap<jlong, Arc<SessionManager>>> {
    static REGISTRY: std::sync::OnceLock<Mutex<HashMap<jlong, Arc<SessionManager>>>> =
        std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn manager(handle: jlong) -> Result<Arc<SessionManager>> {
    registry()
        .lock()
        .get(&handle)
        .cloned()
        .ok_or_else(|| Failure::Argument(format!("no live manager has handle {handle}")))
}

/// Session locks held by Java requests, by handle.
fn locks() -> &'static Mutex<HashMap<jlong, SessionLock>> {
    static LOCKS: std::sync::OnceLock<Mutex<HashMap<jlong, SessionLock>>> =
        std::sync::OnceLock::new();
    LOCKS.get_or_init(Default::default)
}

/// Takes a held lock back from Java; 0 means none.
fn take_lock(handle: jlong) -> Result<Option<SessionLock>> {
    if handle == 0 {
        return Ok(None);
    }
    locks()
        .lock()
        .remove(&handle)
        .map(Some)
        .ok_or_else(|| Failure::Argument(format!("no held lock has handle {handle}")))
}

/// A request's arguments, or, when one is unusable, its failure once the request's lock is
/// released: nothing will be written, and the lock must not be left to expire.
fn or_release<T>(
    manager: &SessionManager,
    lock: &mut Option<SessionLock>,
    arguments: Result<T>,
) -> Result<T> {
    if arguments.is_err() {
        if let Some(lock) = lock.take() {
            block_on(manager.unlock(lock)).ok();
        }
    }
    arguments
}

/// Reads the session a request hands back: metadata and `names[i]` -> `values[i]`.
#[allow(clippy::too_many_arguments)]
fn session_data(
    env: &mut Env<'_>,
    creation_time: jlong,
    last_accessed: jlong,
    max_inactive: jint,
    auth_type: &JString<'_>,
    principal: &JString<'_>,
    names: &JObjectArray<'_, JString<'_>>,
    values: &JObjectArray<'_, JByteArray<'_>>,
) -> Result<SessionData> {
    let names = strings(env, names, "names")?;
    if values.is_null() || values.len(env)? != names.len() {
        return Err(Failure::Argument("values must match names".into()));
    }
    let mut session = SessionData {
        creation_time: u64::try_from(creation_time).unwrap_or(0),
        last_accessed: u64::try_from(last_accessed).unwrap_or(0),
        max_inactive,
        auth_type: optional_string(env, auth_type)?,
        principal: optional_string(env, principal)?,
        ..SessionData::default()
    };
    for (i, name) in names.into_iter().enumerate() {
        let bytes = values.get_element(env, i)?;
        if bytes.is_null() {
            return Err(Failure::Argument(format!("value of `{name}` is null")));
        }
        session
            .attributes
            .insert(name, env.convert_byte_array(&bytes)?);
    }
    Ok(session)
}

fn string(env: &Env<'_>, s: &JString<'_>, name: &str) -> Result<String> {
    if s.is_null() {
        return Err(Failure::Argument(format!("`{name}` is null")));
    }
    Ok(s.try_to_string(env)?)
}

fn optional_string(env: &Env<'_>, s: &JString<'_>) -> Result<Option<String>> {
    if s.is_null() {
        Ok(None)
    } else {
        Ok(Some(s.try_to_string(env)?))
    }
}

fn strings(
    env: &mut Env<'_>,
    array: &JObjectArray<'_, JString<'_>>,
    name: &str,
) -> Result<Vec<String>> {
    if array.is_null() {
        return Err(Failure::Argument(format!("`{name}` is null")));
    }
    let len = array.len(env)?;
    (0..len)
        .map(|i| {
            let element = array.get_element(env, i)?;
            string(env, &element, name)
        })
        .collect()
}

/// Parses an id from Java; hostile ids are counted by the core and thrown as invalid.
fn session_id(env: &Env<'_>, manager: &SessionManager, id: &JString<'_>) -> Result<SessionId> {
    let raw = string(env, id, "id")?;
    Ok(manager.parse_id(&raw)?)
}

/// Resolves a manager handle and a session id argument together.
fn manager_and_id(
    env: &Env<'_>,
    handle: jlong,
    id: &JString<'_>,
) -> Result<(Arc<SessionManager>, SessionId)> {
    let manager = manager(handle)?;
    let id = session_id(env, &manager, id)?;
    Ok((manager, id))
}

fn new_string<'local>(env: &mut Env<'local>, s: &str) -> Result<JObject<'local>> {
    Ok(JString::from_str(env, s)?.into())
}

/// `Native.create(String[] names, String[] values, String host, String context)`: validates
/// the attributes and starts a manager; returns its handle.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_create<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    names: JObjectArray<'local, JString<'local>>,
    values: JObjectArray<'local, JString<'local>>,
    host: JString<'local>,
    context: JString<'local>,
) -> jlong {
    run(&mut env, |env| {
        let names = strings(env, &names, "names")?;
        let values = strings(env, &values, "values")?;
        if names.len() != values.len() {
            return Err(Failure::Argument(
                "names and values differ in length".into(),
            ));
        }
        let mut builder = ConfigBuilder::default();
        builder.context(
            &string(env, &host, "host")?,
            &string(env, &context, "context")?,
        );
        for (name, value) in names.iter().zip(&values) {
            builder.set(name, value)?;
        }
        let manager = SessionManager::new(builder.build()?)?;
        // The Tomcat shim backs sessions up after each request.
        manager.track_backups();
        static NEXT: AtomicI64 = AtomicI64::new(1);
        let handle = NEXT.fetch_add(1, Ordering::Relaxed);
        registry().lock().insert(handle, manager);
        Ok(handle)
    })
}

/// `Native.destroy(long handle)`: stops a manager; calls still running finish first.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_destroy<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) {
    run(&mut env, |_| {
        registry().lock().remove(&handle);
        Ok(())
    })
}

/// `Native.newSessionId(long handle, String route)`: a fresh, reserved session id.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_newSessionId<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    route: JString<'local>,
) -> JString<'local> {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let route = optional_string(env, &route)?;
        let id = block_on(manager.new_session_id(route.as_deref()))?;
        Ok(JString::from_str(env, id.to_string())?)
    })
}

/// `Native.routeRequest(long handle, String id, String route)`: the id the session must take on
/// this host, or null when it keeps its id. Throws `MsmInvalidIdException` for a hostile id.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_routeRequest<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    route: JString<'local>,
) -> JString<'local> {
    run(&mut env, |env| {
        let (manager, id) = manager_and_id(env, handle, &id)?;
        let route = optional_string(env, &route)?;
        match runtime::wait(manager.route_request(&id, route.as_deref()))? {
            Some(routed) => Ok(JString::from_str(env, routed.to_string())?),
            None => Ok(JString::default()),
        }
    })
}

/// `Native.load(long handle, String id)`: the stored session, or null. The result is an
/// `Object[]`: `{String relocatedIdOrNull, long[] {creationTime, lastAccessedTime, maxInactive,
/// version}, String authType, String principal, name0, byte[] value0, name1, value1, ...}`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_load<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
) -> JObjectArray<'local> {
    run(&mut env, |env| {
        let (manager, id) = manager_and_id(env, handle, &id)?;
        let Some(loaded) = block_on(manager.load(&id))? else {
            return Ok(JObjectArray::default());
        };
        let s = &loaded.session;
        let len = 4 + 2 * s.attributes.len();
        let array = JObjectArray::<JObject>::new(env, len, JObject::null())?;
        if let Some(moved) = &loaded.relocated {
            let moved = new_string(env, &moved.to_string())?;
            array.set_element(env, 0, &moved)?;
        }
        let times = env.new_long_array(4)?;
        let max_inactive = i64::from(s.max_inactive);
        let fields = [
            s.creation_time as i64,
            s.last_accessed as i64,
            max_inactive,
            s.version as i64,
        ];
        times.set_region(env, 0, &fields)?;
        array.set_element(env, 1, JObject::from(times))?;
        for (index, text) in [(2, &s.auth_type), (3, &s.principal)] {
            if let Some(text) = text {
                let text = new_string(env, text)?;
                array.set_element(env, index, &text)?;
            }
        }
        for (i, (name, value)) in s.attributes.iter().enumerate() {
            let name = new_string(env, name)?;
            array.set_element(env, 4 + 2 * i, &name)?;
            let bytes = env.byte_array_from_slice(value)?;
            array.set_element(env, 5 + 2 * i, JObject::from(bytes))?;
        }
        Ok(array)
    })
}

/// `Native.backup(long handle, String id, long creationTime, long lastAccessedTime,
/// int maxInactive, String authType, String principal, String[] names, byte[][] values,
/// int waitMillis)`: sticky backup after a request; `waitMillis < 0` returns at once. Returns
/// the outcome: 0 unchanged, 1 expiry renewed, 2 written, 3 queued.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_msm_Native_backup<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    creation_time: jlong,
    last_accessed: jlong,
    max_inactive: jint,
    auth_type: JString<'local>,
    principal: JString<'local>,
    names: JObjectArray<'local, JString<'local>>,
    values: JObjectArray<'local, JByteArray<'local>>,
    wait_millis: jint,
) -> jint {
    run(&mut env, |env| {
        let (manager, id) = manager_and_id(env, handle, &id)?;
        let session = session_data(
            env,
            creation_time,
            last_accessed,
            max_inactive,
            &auth_type,
            &principal,
            &names,
            &values,
        )?;
        Ok(outcome_code(manager.backup(
            &id,
            &session,
            wait(wait_millis),
        )?))
    })
}

/// `Native.backupUnchanged(long handle, String id, int maxInactive, int waitMillis)`: the
/// session did not change since its last backup; renews its expiry when due. Returns an outcome
/// as `backup` does, or -1 when the core has no confirmed copy and needs the content.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_backupUnchanged<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    max_inactive: jint,
    wait_millis: jint,
) -> jint {
    run(&mut env, |env| {
        let (manager, id) = manager_and_id(env, handle, &id)?;
        let outcome = manager.backup_unchanged(&id, max_inactive, wait(wait_millis))?;
        Ok(outcome.map_or(-1, outcome_code))
    })
}

/// `Native.locksRequest(long handle, String uri)`: whether a non-sticky request for `uri` takes
/// the session lock (`lockingMode`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_locksRequest<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    uri: JString<'local>,
) -> jboolean {
    run(&mut env, |env| {
        Ok(manager(handle)?.locks_request(&string(env, &uri, "uri")?))
    })
}

/// `Native.lockForRequest(long handle, String id)`: takes the session lock; returns its handle,
/// or 0 when the request proceeds without it (`lockFailure="proceed"`). Throws
/// `MsmLockTimeoutException` when the request must be refused.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_lockForRequest<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
) -> jlong {
    run(&mut env, |env| {
        let (manager, id) = manager_and_id(env, handle, &id)?;
        let Some(lock) = block_on(manager.lock_for_request(&id))? else {
            return Ok(0);
        };
        static NEXT: AtomicI64 = AtomicI64::new(1);
        let lock_handle = NEXT.fetch_add(1, Ordering::Relaxed);
        locks().lock().insert(lock_handle, lock);
        Ok(lock_handle)
    })
}

/// `Native.unlock(long handle, long lockHandle)`: releases a lock the request did not hand to
/// `finish`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_unlock<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    lock_handle: jlong,
) {
    run(&mut env, |_| {
        // Taken from the registry first: a lock of a stopped manager is dropped (it expires).
        let lock = take_lock(lock_handle)?;
        if let Some(lock) = lock {
            block_on(manager(handle)?.unlock(lock))?;
        }
        Ok(())
    })
}

/// `Native.accessed(long handle, String id, long lockHandle, String uri)`: non-sticky end of a
/// request that carried the session's id without using the session: renews the session's
/// validity record and releases the lock (0: none). Returns whether memcached holds the session.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_accessed<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    lock_handle: jlong,
    uri: JString<'local>,
) -> jboolean {
    run(&mut env, |env| {
        let mut lock = take_lock(lock_handle)?;
        let manager = manager(handle)?;
        let arguments =
            || -> Result<_> { Ok((session_id(env, &manager, &id)?, optional_string(env, &uri)?)) };
        let (id, uri) = or_release(&manager, &mut lock, arguments())?;
        Ok(block_on(manager.accessed(&id, lock, uri.as_deref()))?)
    })
}

/// `Native.finish(long handle, String id, long creationTime, long lastAccessedTime,
/// int maxInactive, String authType, String principal, String[] names, byte[][] values,
/// long lockHandle, String uri)`: non-sticky request end: writes the session if it changed
/// (else renews it) and releases the lock (0: none). Returns the new id when the session moved,
/// else null.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_msm_Native_finish<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    creation_time: jlong,
    last_accessed: jlong,
    max_inactive: jint,
    auth_type: JString<'local>,
    principal: JString<'local>,
    names: JObjectArray<'local, JString<'local>>,
    values: JObjectArray<'local, JByteArray<'local>>,
    lock_handle: jlong,
    uri: JString<'local>,
) -> JString<'local> {
    run(&mut env, |env| {
        let mut lock = take_lock(lock_handle)?;
        let manager = manager(handle)?;
        let mut arguments = || -> Result<_> {
            let id = session_id(env, &manager, &id)?;
            let session = session_data(
                env,
                creation_time,
                last_accessed,
                max_inactive,
                &auth_type,
                &principal,
                &names,
                &values,
            )?;
            Ok((id, session, optional_string(env, &uri)?))
        };
        let (id, mut session, uri) = or_release(&manager, &mut lock, arguments())?;
        match block_on(manager.finish(&id, &mut session, lock, uri.as_deref()))? {
            Some(moved) => Ok(JString::from_str(env, moved.to_string())?),
            None => Ok(JString::default()),
        }
    })
}

/// A wait in milliseconds from Java; negative means do not wait.
fn wait(millis: jint) -> Option<Duration> {
    u64::try_from(millis).ok().map(Duration::from_millis)
}

/// The codes of `Native.BACKUP_*`.
fn outcome_code(outcome: BackupOutcome) -> jint {
    match outcome {
        BackupOutcome::Unchanged => 0,
        BackupOutcome::Refreshed => 1,
        BackupOutcome::Written => 2,
        BackupOutcome::Queued => 3,
    }
}

/// `Native.ended(long handle, String id, long lastAccessedTime, int maxInactive)`: the session
/// ended on this host (invalidated, or timed out); the core removes its memcached copies
/// accordingly.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_ended<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    last_accessed: jlong,
    max_inactive: jint,
) {
    run(&mut env, |env| {
        let (manager, id) = manager_and_id(env, handle, &id)?;
        let last_accessed = u64::try_from(last_accessed).unwrap_or(0);
        Ok(block_on(manager.ended(&id, last_accessed, max_inactive))?)
    })
}

/// `Native.idChanged(long handle, String oldId, String newId)`: a session took a new id.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_idChanged<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    old_id: JString<'local>,
    new_id: JString<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let old = session_id(env, &manager, &old_id)?;
        let new = session_id(env, &manager, &new_id)?;
        Ok(block_on(manager.id_changed(&old, &new))?)
    })
}

/// `Native.setMemcachedNodes(long handle, String nodes)`: replaces the node list and shares
/// it with the cluster (JMX).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_setMemcachedNodes<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    nodes: JString<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        Ok(block_on(manager.set_nodes(&string(
            env,
            &nodes,
            "memcachedNodes",
        )?))?)
    })
}

/// `Native.flush(long handle, int timeoutMillis)`: waits for background backups; returns how
/// many sessions still have work in flight.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_flush<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    timeout_millis: jint,
) -> jint {
    run(&mut env, |_| {
        let manager = manager(handle)?;
        let timeout = Duration::from_millis(u64::try_from(timeout_millis).unwrap_or(0));
        Ok(manager.flush(timeout).try_into().unwrap_or(jint::MAX))
    })
}

/// `Native.ignoresUri(long handle, String uri)`: `requestUriIgnorePattern` matches.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_ignoresUri<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    uri: JString<'local>,
) -> jboolean {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        Ok(manager.config().ignores_uri(&string(env, &uri, "uri")?))
    })
}

/// `Native.ignoresAnyUri(long handle)`: whether `requestUriIgnorePattern` is set at all.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_ignoresAnyUri<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jboolean {
    run(&mut env, |_| {
        Ok(manager(handle)?
            .config()
            .request_uri_ignore_pattern
            .is_some())
    })
}

/// `Native.storesAttribute(long handle, String name)`: `sessionAttributeFilter` matches.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_storesAttribute<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    name: JString<'local>,
) -> jboolean {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        Ok(manager
            .config()
            .stores_attribute(&string(env, &name, "name")?))
    })
}

/// `Native.sticky(long handle)`: the `sticky` attribute.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_sticky<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jboolean {
    run(&mut env, |_| Ok(manager(handle)?.config().sticky))
}

/// `Native.enabled(long handle)`: the `enabled` attribute.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_enabled<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jboolean {
    run(&mut env, |_| Ok(manager(handle)?.config().enabled))
}

/// `Native.backupWaitMillis(long handle)`: how long a request waits for its backup: -1 when
/// backups are asynchronous (`sessionBackupAsync`), else `sessionBackupTimeout`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_backupWaitMillis<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jint {
    run(&mut env, |_| {
        let manager = manager(handle)?;
        let config = manager.config();
        Ok(if config.session_backup_async {
            -1
        } else {
            config
                .session_backup_timeout
                .as_millis()
                .try_into()
                .unwrap_or(jint::MAX)
        })
    })
}

/// `Native.stats(long handle)`: statistics as `name value` lines.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_stats<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> JString<'local> {
    run(&mut env, |env| {
        let text = manager(handle)?.stats_text();
        Ok(JString::from_str(env, text)?)
    })
}

/// `Native.installLogging(int level)`: collects the core's records at `level` (1 error, 2 warn,
/// 3 info, 4 debug, 5 trace) and above for `drainLogs`. False when another collector was first.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_installLogging<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    level: jint,
) -> jboolean {
    run(&mut env, |_| {
        let level = match level {
            ..=1 => Level::ERROR,
            2 => Level::WARN,
            3 => Level::INFO,
            4 => Level::DEBUG,
            _ => Level::TRACE,
        };
        Ok(logging::install(level))
    })
}

/// `Native.drainLogs(int max, int timeoutMillis)`: up to `max` records, waiting up to the
/// timeout for the first, as a flat `String[]` of `level, target, message` triples (level as
/// `1`..`5`, as in `installLogging`).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_drainLogs<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    max: jint,
    timeout_millis: jint,
) -> JObjectArray<'local, JString<'local>> {
    run(&mut env, |env| {
        let max = usize::try_from(max).unwrap_or(0);
        let timeout = Duration::from_millis(u64::try_from(timeout_millis).unwrap_or(0));
        let records = logging::drain(max, timeout);
        let array = JObjectArray::<JString>::new(env, 3 * records.len(), JString::default())?;
        for (i, record) in records.iter().enumerate() {
            let level = match record.level {
                Level::ERROR => "1",
                Level::WARN => "2",
                Level::INFO => "3",
                Level::DEBUG => "4",
                Level::TRACE => "5",
            };
            for (j, text) in [level, &record.target, &record.message]
                .into_iter()
                .enumerate()
            {
                let text = JString::from_str(env, text)?;
                array.set_element(env, 3 * i + j, &text)?;
            }
        }
        Ok(array)
    })
}

/// `Native.selftestPanic()`: panics inside the library on purpose, so a test can show the panic
/// becomes an `MsmException` and the JVM goes on.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_selftestPanic<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
) {
    run(&mut env, |_| -> Result<()> {
        panic!("selftestPanic was called")
    })
}
