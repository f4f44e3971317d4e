//! The JNI face: the static native methods of `io.msm.Native`, for the Tomcat shim.
//!
//! Each method converts its arguments, calls the core and converts the result. Managers and
//! requests are handed to Java as numeric handles ([`handles`]), so a stale or forged handle is
//! an exception, never a dangling pointer. Core errors become `io.msm.*Exception`s (mapped in one
//! place, `pending::error_code`); a panic becomes an `io.msm.MsmException` and never unwinds into
//! the JVM.

mod handles;
mod pending;

use std::sync::Arc;
use std::time::Duration;

use jni::errors::ErrorPolicy;
use jni::objects::{JByteArray, JClass, JIntArray, JObject, JObjectArray, JString, JThrowable};
use jni::strings::JNIString;
use jni::sys::{jboolean, jint, jlong};
use jni::{Env, EnvUnowned, JValue, jni_sig, jni_str};
use tracing::Level;

use crate::broadcast::SessionEvent;
use crate::config::ConfigBuilder;
use crate::error::Error;
use crate::events::ExpiredSession;
use crate::logging;
use crate::manager::SessionManager;
use crate::request::BackupOutcome;
use crate::request::{Ended, HostCopy, Lookup, Outcome, Request, RequestStart};
use crate::session::SessionData;
use pending::Deliver;

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

/// Throws `io.msm.MsmException.of(code, message)` (see [`pending::error_code`]).
fn throw(env: &mut Env<'_>, code: jint, message: &str) -> jni::errors::Result<()> {
    let message = env.new_string(message)?;
    let exception = env
        .call_static_method(
            jni_str!("io/msm/MsmException"),
            jni_str!("of"),
            jni_sig!("(ILjava/lang/String;)Lio/msm/MsmException;"),
            &[JValue::Int(code), JValue::Object(&message)],
        )?
        .l()?;
    let exception = JThrowable::cast_local(env, exception)?;
    env.throw(exception)
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
        let _ = match failure {
            Failure::Core(e) => throw(env, pending::error_code(&e), &e.to_string()),
            Failure::Argument(message) => env.throw_new(
                jni_str!("java/lang/IllegalArgumentException"),
                JNIString::from(message),
            ),
            Failure::Jni(e) => throw(env, 0, &format!("JNI failure: {e}")),
        };
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

fn manager(handle: jlong) -> Result<Arc<SessionManager>> {
    handles::manager(handle)
        .ok_or_else(|| Failure::Argument(format!("no live manager has handle {handle}")))
}

/// Reads the session a request hands back: metadata and `names[i]` -> `values[i]`.
#[allow(clippy::too_many_arguments)]
fn session_data(
    env: &mut Env<'_>,
    creation_time: jlong,
    last_accessed: jlong,
    max_inactive: jint,
    read: jlong,
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
        read: u64::try_from(read).ok().filter(|&read| read != 0),
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
    optional_string(env, s)?.ok_or_else(|| Failure::Argument(format!("`{name}` is null")))
}

/// The Java string's content, decoded from JNI's modified UTF-8 at once (`try_to_string` goes
/// through `Display` and grows its string piece by piece, a cost every request paid for its
/// session id, URI and route).
fn optional_string(env: &Env<'_>, s: &JString<'_>) -> Result<Option<String>> {
    if s.is_null() {
        return Ok(None);
    }
    Ok(Some(String::from(s.mutf8_chars(env)?)))
}

/// Sets element `i` of `array` to `value`, left null when absent.
fn set_optional_string(
    env: &mut Env<'_>,
    array: &JObjectArray<'_, JString<'_>>,
    i: usize,
    value: Option<&str>,
) -> jni::errors::Result<()> {
    if let Some(value) = value {
        let value = env.new_string(value)?;
        array.set_element(env, i, &value)?;
    }
    Ok(())
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
        Ok(handles::add_manager(manager))
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
        handles::remove_manager(handle);
        Ok(())
    })
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

/// Takes a request out of the registry for a call that hands it back (or ends it).
fn take_request(handle: jlong) -> Result<Request> {
    handles::take_request(handle)
        .ok_or_else(|| Failure::Argument(format!("no request in progress has handle {handle}")))
}

/// A request begun: its handle, the id of its session here, and what the host must know.
struct Begun {
    handle: jlong,
    id: Option<String>,
    flags: jint,
    /// No flag is set and the id is the one the request carried: the host knows it all but the
    /// handle.
    plain: bool,
}

impl Begun {
    /// A request begun with the id it `carried`, registered unless it is ignored (an ignored
    /// request has no end).
    fn of(request: Request, carried: Option<String>) -> Self {
        let flags = request_flags(&request);
        let same = match (request.session_id(), carried.as_deref()) {
            (Some(id), Some(raw)) => id.matches(raw),
            (None, None) => true,
            _ => false,
        };
        let id = if same {
            carried
        } else {
            request.session_id().map(ToString::to_string)
        };
        let handle = if request.ignored() {
            0
        } else {
            handles::put_request(request)
        };
        Begun {
            handle,
            id,
            flags,
            plain: flags == 0 && same,
        }
    }
}

impl Deliver for Begun {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let id = pending::java_string(env, self.id.as_deref())?;
        let args = [
            JValue::Long(self.handle),
            JValue::Object(&id),
            JValue::Int(self.flags),
        ];
        pending::call(env, pending, |m| m.begun, args)
    }
}

/// The flags of `io.msm.MsmRequest`.
fn request_flags(request: &Request) -> jint {
    [
        (request.ignored(), 1),
        (request.new_cookie(), 2),
        (request.locked(), 4),
        (request.invalid_id(), 8),
        (request.prefetched(), 16),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, bit)| bit)
    .sum()
}

/// A session's attributes as Java arrays: names, and their serialized values index for index.
fn attribute_arrays<'local>(
    env: &mut Env<'local>,
    attributes: &std::collections::BTreeMap<String, Vec<u8>>,
) -> jni::errors::Result<(
    JObjectArray<'local, JString<'local>>,
    JObjectArray<'local, JByteArray<'local>>,
)> {
    let names = JObjectArray::<JString>::new(env, attributes.len(), JString::default())?;
    let values = JObjectArray::<JByteArray>::new(env, attributes.len(), JByteArray::default())?;
    for (i, (name, value)) in attributes.iter().enumerate() {
        let name = env.new_string(name)?;
        names.set_element(env, i, &name)?;
        let bytes = env.byte_array_from_slice(value)?;
        values.set_element(env, i, &bytes)?;
    }
    Ok((names, values))
}

impl Deliver for Lookup {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let (kind, loaded) = match self {
            Lookup::Found(loaded) => (0, Some(loaded)),
            Lookup::Current => (1, None),
            Lookup::Missing => (2, None),
            Lookup::Unavailable => (3, None),
        };
        let Some(loaded) = loaded else {
            let null = JObject::null();
            let args = [
                JValue::Int(kind),
                JValue::Object(&null),
                JValue::Object(&null),
                JValue::Object(&null),
                JValue::Object(&null),
                JValue::Object(&null),
                JValue::Object(&null),
            ];
            return pending::call(env, pending, |m| m.found, args);
        };
        let s = &loaded.session;
        let moved = loaded.relocated.as_ref().map(ToString::to_string);
        let relocated = pending::java_string(env, moved.as_deref())?;
        let times = env.new_long_array(4)?;
        let fields = [
            i64::try_from(s.creation_time).unwrap_or(i64::MAX),
            i64::try_from(s.last_accessed).unwrap_or(i64::MAX),
            i64::from(s.max_inactive),
            s.read.map_or(0, |read| i64::try_from(read).unwrap_or(0)),
        ];
        times.set_region(env, 0, &fields)?;
        let auth_type = pending::java_string(env, s.auth_type.as_deref())?;
        let principal = pending::java_string(env, s.principal.as_deref())?;
        let (names, values) = attribute_arrays(env, &s.attributes)?;
        let args = [
            JValue::Int(kind),
            JValue::Object(&relocated),
            JValue::Object(&times),
            JValue::Object(&auth_type),
            JValue::Object(&principal),
            JValue::Object(&names),
            JValue::Object(&values),
        ];
        pending::call(env, pending, |m| m.found, args)
    }
}

impl Deliver for Ended {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let (backup, moved) = match self {
            Ended::NeedsContent => (-2, None),
            Ended::Done { moved, backup } => (backup.map_or(-1, outcome_code), moved),
        };
        let moved = pending::java_string(env, moved.map(|m| m.to_string()).as_deref())?;
        let args = [JValue::Int(backup), JValue::Object(&moved)];
        pending::call(env, pending, |m| m.ended, args)
    }
}

/// `long Native.begin(long handle, String sessionId, String uri, String route, Pending
/// pending)`: a request starts (see [`SessionManager::begin`]). Returns the request's handle
/// when it began at once with no flag set and the id it carried; else 0, and `pending` is
/// completed with an `io.msm.MsmRequest`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_begin<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    session_id: JString<'local>,
    uri: JString<'local>,
    route: JString<'local>,
    pending: JObject<'local>,
) -> jlong {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let session_id = optional_string(env, &session_id)?;
        let uri = string(env, &uri, "uri")?;
        let route = optional_string(env, &route)?;
        let direct = |begun: &Begun| begun.plain.then_some(begun.handle);
        let start = RequestStart {
            session_id: session_id.as_deref(),
            uri: &uri,
            route: route.as_deref(),
        };
        if let Some(begun) = manager.begin_now(start) {
            let begun = begun.map(|request| Begun::of(request, session_id));
            return Ok(pending::finish_direct(env, &pending, begun, direct)?.unwrap_or(0));
        }
        let work = async move {
            let start = RequestStart {
                session_id: session_id.as_deref(),
                uri: &uri,
                route: route.as_deref(),
            };
            let request = manager.begin(start).await?;
            Ok(Begun::of(request, session_id))
        };
        Ok(pending::start_direct(env, &pending, work, direct)?.unwrap_or(0))
    })
}

/// `Native.lookup(long handle, long request, String id, int hostCopy, Pending pending)`: the
/// request uses the session `id`, of which the host holds `hostCopy` (0 nothing, 1 a copy shared
/// with another request, 2 a copy newer than memcached's); completes `pending` with an
/// `io.msm.Lookup` (see [`SessionManager::lookup`]).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_lookup<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    request: jlong,
    id: JString<'local>,
    host_copy: jint,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let id = string(env, &id, "id")?;
        let host = match host_copy {
            0 => HostCopy::None,
            1 => HostCopy::Shared,
            2 => HostCopy::Held,
            other => return Err(Failure::Argument(format!("hostCopy {other}"))),
        };
        let mut taken = take_request(request)?;
        let work = async move {
            let found = manager.lookup(&mut taken, &id, host).await;
            handles::put_back(request, taken);
            Ok(found)
        };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// `Native.load(long handle, String id, Pending pending)`: reads a session outside any request
/// (Tomcat's authenticator looks sessions up before the request begins); completes `pending`
/// with an `io.msm.Lookup`: found, missing, or unavailable.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_load<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let id = string(env, &id, "id")?;
        let work = async move {
            let mut request = Request::default();
            Ok(manager.lookup(&mut request, &id, HostCopy::None).await)
        };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// The outcome `Native.end`'s code names (see there); `session` is the content, which only the
/// used outcome carries; `read` the read an unchanged copy derives from (0: none).
fn outcome_of<'a>(
    code: jint,
    id: &'a str,
    session: Option<SessionData>,
    previous: Option<&'a str>,
    (max_inactive, read): (jint, jlong),
) -> Outcome<'a> {
    match (code, session) {
        (1, Some(session)) => Outcome::Used {
            id,
            session,
            previous,
        },
        (2, _) => Outcome::Unchanged {
            id,
            max_inactive,
            read: u64::try_from(read).ok().filter(|&read| read != 0),
        },
        (0, _) => Outcome::Unused,
        _ => Outcome::NotStored,
    }
}

/// What `Native.end` returns when `pending` has the result, or will have.
const ENDED_IN_PENDING: jint = jint::MIN;

/// `int Native.end(long handle, long request, int outcome, String id, long creationTime,
/// long lastAccessedTime, int maxInactive, long read, String authType, String principal,
/// String[] names, byte[][] values, String previousId, Pending pending)`: the request ends (see
/// [`SessionManager::end`]); `read` is the number of the read the content derives from
/// (`io.msm.Lookup.read()`; 0: none). `outcome`: 0 unused, 1 used (with the session's content), 2
/// unchanged (id, lifetime and, non-sticky, `read` only), 3 not stored. Returns the backup's outcome
/// (`Native.BACKUP_*`, -1 when none ran) when the request ended at once with its session where
/// it was; else [`ENDED_IN_PENDING`], and `pending` is completed with an `io.msm.Ended`. The
/// request is over unless that says the core needs the content.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_msm_Native_end<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    request: jlong,
    outcome: jint,
    id: JString<'local>,
    creation_time: jlong,
    last_accessed: jlong,
    max_inactive: jint,
    read: jlong,
    auth_type: JString<'local>,
    principal: JString<'local>,
    names: JObjectArray<'local, JString<'local>>,
    values: JObjectArray<'local, JByteArray<'local>>,
    previous_id: JString<'local>,
    pending: JObject<'local>,
) -> jint {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let mut taken = take_request(request)?;
        let id = optional_string(env, &id)?;
        let previous = optional_string(env, &previous_id)?;
        let session = match outcome {
            1 => Some(session_data(
                env,
                creation_time,
                last_accessed,
                max_inactive,
                read,
                &auth_type,
                &principal,
                &names,
                &values,
            )?),
            _ => None,
        };
        let direct = |ended: &Ended| match ended {
            Ended::Done {
                moved: None,
                backup,
            } => Some(backup.map_or(-1, outcome_code)),
            _ => None,
        };
        if session.is_none() {
            let id = id.as_deref().unwrap_or_default();
            let now = outcome_of(outcome, id, None, None, (max_inactive, read));
            if let Some(ended) = manager.end_now(&taken, &now) {
                let at_once = pending::finish_direct(env, &pending, ended, direct)?;
                return Ok(at_once.unwrap_or(ENDED_IN_PENDING));
            }
        }
        let work = async move {
            let id = id.unwrap_or_default();
            let previous = previous.as_deref();
            let outcome = outcome_of(outcome, &id, session, previous, (max_inactive, read));
            let ended = manager.end(&mut taken, outcome).await;
            if matches!(ended, Ok(Ended::NeedsContent)) {
                handles::put_back(request, taken);
            }
            ended
        };
        let at_once = pending::start_direct(env, &pending, work, direct)?;
        Ok(at_once.unwrap_or(ENDED_IN_PENDING))
    })
}

/// `Native.newSessionId(long handle, long request, String route, Pending pending)`: a fresh
/// session id, reserved in the cluster, for the request `request` (0: none); completes `pending`
/// with the id.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_newSessionId<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    request: jlong,
    route: JString<'local>,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let route = optional_string(env, &route)?;
        let work = async move {
            let id = manager.new_session_id(route.as_deref()).await?;
            handles::with_request(request, |request| request.remember(&id));
            Ok(Some(id.to_string()))
        };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// `Native.ended(long handle, String id, long lastAccessedTime, int maxInactive, Pending
/// pending)`: the session ended on this host (invalidated, or timed out); the core removes its
/// memcached copies accordingly.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_ended<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    last_accessed: jlong,
    max_inactive: jint,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let id = manager.parse_id(&string(env, &id, "id")?)?;
        let last_accessed = u64::try_from(last_accessed).unwrap_or(0);
        let work = async move { manager.ended(&id, last_accessed, max_inactive).await };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// `Native.idChanged(long handle, String oldId, String newId, Pending pending)`: a sticky
/// session took a new id (its old copies go when its storage key changed).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_idChanged<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    old_id: JString<'local>,
    new_id: JString<'local>,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let old = manager.parse_id(&string(env, &old_id, "oldId")?)?;
        let new = manager.parse_id(&string(env, &new_id, "newId")?)?;
        let work = async move { manager.id_changed(&old, &new).await };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// `Native.setMemcachedNodes(long handle, String nodes, Pending pending)`: replaces the node
/// list and shares it with the cluster (JMX).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_setMemcachedNodes<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    nodes: JString<'local>,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let nodes = string(env, &nodes, "memcachedNodes")?;
        let work = async move { manager.set_nodes(&nodes).await };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// Whether the host announces a session's end (see [`SessionManager::ending`]): completes a
/// `Pending<Boolean>`.
struct Announce(bool);

impl Deliver for Announce {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let boxed = env
            .call_static_method(
                jni_str!("java/lang/Boolean"),
                jni_str!("valueOf"),
                jni_sig!("(Z)Ljava/lang/Boolean;"),
                &[JValue::Bool(self.0)],
            )?
            .l()?;
        pending::call(env, pending, |m| m.done, [JValue::Object(&boxed)])
    }
}

/// `Native.ending(long handle, String id, long lastAccessedTime, int maxInactive, Pending
/// pending)`: the session is about to end on this host (before its end listeners run);
/// completes `pending` with whether the host announces the end (see
/// [`SessionManager::ending`]).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_ending<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    id: JString<'local>,
    last_accessed: jlong,
    max_inactive: jint,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let id = manager.parse_id(&string(env, &id, "id")?)?;
        let last_accessed = u64::try_from(last_accessed).unwrap_or(0);
        let work = async move {
            Ok(Announce(
                manager.ending(&id, last_accessed, max_inactive).await,
            ))
        };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// Sessions that ended by expiry, for `Pending.expired(String[] ids, long[] times, String[]
/// authTypes, String[] principals, String[][] names, byte[][][] values)`, which makes them
/// `io.msm.Expired` objects (`times`: creation, last access and lifetime of each session).
struct ExpiredSessions(Vec<ExpiredSession>);

impl Deliver for ExpiredSessions {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let count = self.0.len();
        let ids = JObjectArray::<JString>::new(env, count, JString::default())?;
        let times = env.new_long_array(3 * count)?;
        let mut fields = Vec::with_capacity(3 * count);
        let auth_types = JObjectArray::<JString>::new(env, count, JString::default())?;
        let principals = JObjectArray::<JString>::new(env, count, JString::default())?;
        let names =
            JObjectArray::<JObjectArray<JString>>::new(env, count, JObjectArray::default())?;
        let values =
            JObjectArray::<JObjectArray<JByteArray>>::new(env, count, JObjectArray::default())?;
        for (i, expired) in self.0.iter().enumerate() {
            let s = &expired.session;
            fields.extend([
                i64::try_from(s.creation_time).unwrap_or(i64::MAX),
                i64::try_from(s.last_accessed).unwrap_or(i64::MAX),
                i64::from(s.max_inactive),
            ]);
            // Each session's references go with its frame once they are in the arrays.
            env.with_local_frame(
                8 + 2 * s.attributes.len(),
                |env| -> jni::errors::Result<()> {
                    let id = env.new_string(expired.id.to_string())?;
                    ids.set_element(env, i, &id)?;
                    set_optional_string(env, &auth_types, i, s.auth_type.as_deref())?;
                    set_optional_string(env, &principals, i, s.principal.as_deref())?;
                    let (its_names, its_values) = attribute_arrays(env, &s.attributes)?;
                    names.set_element(env, i, &its_names)?;
                    values.set_element(env, i, &its_values)
                },
            )?;
        }
        times.set_region(env, 0, &fields)?;
        let args = [
            JValue::Object(&ids),
            JValue::Object(&times),
            JValue::Object(&auth_types),
            JValue::Object(&principals),
            JValue::Object(&names),
            JValue::Object(&values),
        ];
        pending::call(env, pending, |m| m.expired, args)
    }
}

/// `Native.expiredSessions(long handle, Pending pending)`: with `sessionEvents="expiry"`,
/// sweeps for sessions that ended by expiry and completes `pending` with those this host must
/// announce (`io.msm.Expired[]`, empty when none; see [`SessionManager::expired_sessions`]).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_expiredSessions<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let work = async move { Ok(ExpiredSessions(manager.expired_sessions().await?)) };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// `Native.broadcastPollInterval(long handle)`: with `sessionEvents="broadcast"`, the
/// milliseconds between polls for the other hosts' events (`broadcastPollInterval`); 0 without
/// broadcast.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_broadcastPollInterval<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| {
        let manager = manager(handle)?;
        let config = manager.config();
        Ok(if config.session_events.broadcast() {
            i64::try_from(config.broadcast_poll_interval.as_millis()).unwrap_or(i64::MAX)
        } else {
            0
        })
    })
}

/// `Native.broadcastValues(long handle)`: the `broadcastValues` attribute (whether attribute
/// events carry values, so whether the host serializes them).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_broadcastValues<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) -> jboolean {
    run(&mut env, |_| Ok(manager(handle)?.config().broadcast_values))
}

/// `Native.publish(long handle, int[] kinds, String[] ids, String[] names, byte[][] values,
/// Pending pending)`: publishes the session events that happened on this host, event `i`
/// being `kinds[i]` of session `ids[i]`, its attribute `names[i]` (null for created and
/// destroyed) and value `values[i]` (null when not sent); see [`SessionManager::publish`].
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_publish<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    kinds: JIntArray<'local>,
    ids: JObjectArray<'local, JString<'local>>,
    names: JObjectArray<'local, JString<'local>>,
    values: JObjectArray<'local, JByteArray<'local>>,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        if kinds.is_null() || names.is_null() || values.is_null() {
            return Err(Failure::Argument(
                "`kinds`, `names` or `values` is null".into(),
            ));
        }
        let ids = strings(env, &ids, "ids")?;
        let count = ids.len();
        if kinds.len(env)? != count || names.len(env)? != count || values.len(env)? != count {
            return Err(Failure::Argument(
                "kinds, ids, names and values differ in length".into(),
            ));
        }
        let mut numbers = vec![0; count];
        kinds.get_region(env, 0, &mut numbers)?;
        let mut events = Vec::with_capacity(count);
        for (i, (number, id)) in numbers.into_iter().zip(ids).enumerate() {
            let name = names.get_element(env, i)?;
            let value = values.get_element(env, i)?;
            let value = if value.is_null() {
                None
            } else {
                Some(env.convert_byte_array(&value)?)
            };
            let event = SessionEvent::new(
                number,
                manager.parse_id(&id)?,
                optional_string(env, &name)?,
                value,
            )
            .map_err(Failure::Argument)?;
            events.push(event);
        }
        let work = async move {
            manager.publish(&events).await;
            Ok(())
        };
        Ok(pending::start(env, &pending, work)?)
    })
}

/// Events heard, for `Pending.heard(int[] kinds, String[] ids, String[] names, byte[][]
/// values)`, which makes them `io.msm.SessionEvent` objects.
struct HeardEvents(Vec<SessionEvent>);

impl Deliver for HeardEvents {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let count = self.0.len();
        let kinds = env.new_int_array(count)?;
        let ids = JObjectArray::<JString>::new(env, count, JString::default())?;
        let names = JObjectArray::<JString>::new(env, count, JString::default())?;
        let values = JObjectArray::<JByteArray>::new(env, count, JByteArray::default())?;
        let numbers: Vec<jint> = self.0.iter().map(|e| e.kind as jint).collect();
        kinds.set_region(env, 0, &numbers)?;
        for (i, event) in self.0.iter().enumerate() {
            // Each event's references go with its frame once they are in the arrays.
            env.with_local_frame(4, |env| -> jni::errors::Result<()> {
                let id = env.new_string(event.id.to_string())?;
                ids.set_element(env, i, &id)?;
                set_optional_string(env, &names, i, event.name.as_deref())?;
                if let Some(value) = &event.value {
                    let value = env.byte_array_from_slice(value)?;
                    values.set_element(env, i, &value)?;
                }
                Ok(())
            })?;
        }
        let args = [
            JValue::Object(&kinds),
            JValue::Object(&ids),
            JValue::Object(&names),
            JValue::Object(&values),
        ];
        pending::call(env, pending, |m| m.heard, args)
    }
}

/// `Native.broadcastEvents(long handle, Pending pending)`: completes `pending` with the events
/// the other hosts of the context published since the previous call (`io.msm.SessionEvent[]`,
/// in order, empty when none; see [`SessionManager::broadcast_events`]).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_msm_Native_broadcastEvents<'local>(
    mut env: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    pending: JObject<'local>,
) {
    run(&mut env, |env| {
        let manager = manager(handle)?;
        let work = async move { Ok(HeardEvents(manager.broadcast_events().await?)) };
        Ok(pending::start(env, &pending, work)?)
    })
}
