//! Java futures completed by the native runtime, so that no virtual thread waits inside a
//! native call (it would pin its carrier thread).
//!
//! An operation that may wait on the network or on a lock receives an `io.msm.Pending` from
//! Java, which says whether its thread may wait inside the call: a platform thread may (waiting
//! there pins nothing), and the operation runs to completion on it, as a blocking call would,
//! with no other thread involved. For a virtual thread it is polled once on the calling thread:
//! when it is done at once (nothing to send, a write queued) the `Pending` is completed before
//! the call returns; otherwise it goes on as one task of the runtime, which completes the
//! `Pending` from its own thread, attached to the JVM as a daemon, while the virtual thread
//! parks on it. Results reach Java through the `Pending`'s own methods (looked up on its class,
//! so runtime threads never need the host's class loaders), and failures through
//! `failed(code, message)`, which `io.msm.MsmException.of` maps to a class.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::OnceLock;

use jni::ids::{JFieldID, JMethodID};
use jni::objects::{Global, JObject};
use jni::signature::{JavaType, Primitive};
use jni::sys::{jint, jvalue};
use jni::{Env, JValue, JavaVM};
use jni::{jni_sig, jni_str};

use crate::error::Error;
use crate::runtime;

/// A result that knows how to complete an `io.msm.Pending`.
pub(super) trait Deliver: Send + 'static {
    /// Completes `pending` with this result.
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()>;
}

/// The members of `io.msm.Pending` the core uses, looked up once: a lookup by name searches the
/// JVM's symbol table, which every request would otherwise pay for several times. The ids stay
/// valid while the class is loaded, and the class outlives this library: a class loader that
/// loads the jar loads its own copy of the library (`io.msm.NativeLibrary` extracts a file of its
/// own each time), which goes with that loader.
pub(super) struct Members {
    waits_in_native: JFieldID,
    /// `done(Object)`.
    pub(super) done: JMethodID,
    /// `begun(long, String, int)`.
    pub(super) begun: JMethodID,
    /// `found(int, String, long[], String, String, String[], byte[][])`.
    pub(super) found: JMethodID,
    /// `ended(int, String)`.
    pub(super) ended: JMethodID,
    /// `expired(String[], long[], String[], String[], String[][], byte[][][])`.
    pub(super) expired: JMethodID,
    /// `heard(int[], String[], String[], byte[][])`.
    pub(super) heard: JMethodID,
    failed: JMethodID,
}

impl Members {
    /// The members, looked up on `pending`'s class the first time.
    fn of(env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<&'static Members> {
        static MEMBERS: OnceLock<Members> = OnceLock::new();
        if let Some(members) = MEMBERS.get() {
            return Ok(members);
        }
        let class = env.get_object_class(pending)?;
        let members = Members {
            waits_in_native: env.get_field_id(&class, jni_str!("waitsInNative"), jni_sig!("Z"))?,
            done: env.get_method_id(
                &class,
                jni_str!("done"),
                jni_sig!("(Ljava/lang/Object;)V"),
            )?,
            begun: env.get_method_id(
                &class,
                jni_str!("begun"),
                jni_sig!("(JLjava/lang/String;I)V"),
            )?,
            found: env.get_method_id(
                &class,
                jni_str!("found"),
                jni_sig!(
                    "(ILjava/lang/String;[JLjava/lang/String;Ljava/lang/String;[Ljava/lang/String;[[B)V"
                ),
            )?,
            ended: env.get_method_id(
                &class,
                jni_str!("ended"),
                jni_sig!("(ILjava/lang/String;)V"),
            )?,
            expired: env.get_method_id(
                &class,
                jni_str!("expired"),
                jni_sig!(
                    "([Ljava/lang/String;[J[Ljava/lang/String;[Ljava/lang/String;[[Ljava/lang/String;[[[B)V"
                ),
            )?,
            heard: env.get_method_id(
                &class,
                jni_str!("heard"),
                jni_sig!("([I[Ljava/lang/String;[Ljava/lang/String;[[B)V"),
            )?,
            failed: env.get_method_id(
                &class,
                jni_str!("failed"),
                jni_sig!("(ILjava/lang/String;)V"),
            )?,
        };
        Ok(MEMBERS.get_or_init(|| members))
    }
}

/// Completes `pending` by calling its void `method` (one of [`Members`]) with `args`.
pub(super) fn call<const N: usize>(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    method: impl FnOnce(&Members) -> JMethodID,
    args: [JValue<'_>; N],
) -> jni::errors::Result<()> {
    let method = method(Members::of(env, pending)?);
    let args: [jvalue; N] = args.map(|arg| arg.as_jni());
    // SAFETY: `method` is a method of `pending`'s class (`Members`), void, and `args` match its
    // signature there.
    unsafe {
        env.call_method_unchecked(pending, method, JavaType::Primitive(Primitive::Void), &args)?;
    }
    Ok(())
}

impl Deliver for () {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        call(env, pending, |m| m.done, [JValue::Object(&JObject::null())])
    }
}

/// A Java string, or null.
pub(super) fn java_string<'local>(
    env: &mut Env<'local>,
    text: Option<&str>,
) -> jni::errors::Result<JObject<'local>> {
    Ok(match text {
        Some(text) => env.new_string(text)?.into(),
        None => JObject::null(),
    })
}

impl Deliver for Option<String> {
    fn deliver(self, env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<()> {
        let value = java_string(env, self.as_deref())?;
        call(env, pending, |m| m.done, [JValue::Object(&value)])
    }
}

/// The code `io.msm.MsmException.of` maps to an exception class: the single mapping of core
/// errors for Java.
pub(super) fn error_code(e: &Error) -> jint {
    match e {
        Error::Config { .. } => 1,
        Error::InvalidId | Error::InvalidKey(_) => 2,
        Error::Corrupt(_) => 3,
        Error::TooLarge { .. } => 4,
        Error::Timeout { .. } => 5,
        Error::NodeDown(_) | Error::Io { .. } | Error::Unavailable => 6,
        Error::LockTimeout(_) => 7,
        Error::Protocol { .. }
        | Error::Server { .. }
        | Error::IdExhausted(_)
        | Error::NestedRuntime => 0,
    }
}

/// Completes `pending` exceptionally with `code` (see [`error_code`]) and `message`.
pub(super) fn fail(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    code: jint,
    message: &str,
) -> jni::errors::Result<()> {
    let message = env.new_string(message)?;
    call(
        env,
        pending,
        |m| m.failed,
        [JValue::Int(code), JValue::Object(&message)],
    )
}

fn complete<T: Deliver>(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    result: crate::error::Result<T>,
) -> jni::errors::Result<()> {
    match result {
        Ok(value) => value.deliver(env, pending),
        Err(e) => fail(env, pending, error_code(&e), &e.to_string()),
    }
}

/// Starts `work` for `pending`: run to completion on the calling thread when it may wait there,
/// else completed before returning when it is done at once, else by a runtime thread later.
pub(super) fn start<T, F>(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    work: F,
) -> jni::errors::Result<()>
where
    T: Deliver,
    F: Future<Output = crate::error::Result<T>> + Send + 'static,
{
    start_direct(env, pending, work, |_| None::<()>).map(drop)
}

/// [`start`], except that a result the calling thread has before returning, and that `direct`
/// reduces to a value, is returned instead of delivered: the usual outcome of a request's begin
/// and end then costs no call back into Java. `None`: `pending` has the result, or will have.
pub(super) fn start_direct<T, F, R>(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    work: F,
    direct: impl FnOnce(&T) -> Option<R>,
) -> jni::errors::Result<Option<R>>
where
    T: Deliver,
    F: Future<Output = crate::error::Result<T>> + Send + 'static,
{
    if pending.is_null() {
        return Err(jni::errors::Error::NullPtr("pending"));
    }
    let result = if waits_here(env, pending)? {
        runtime::block_on(work)
    } else {
        let mut work = Box::pin(work);
        match runtime::poll_once(work.as_mut()) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                spawn(env, pending, work)?;
                return Ok(None);
            }
        }
    };
    finish_direct(env, pending, result, direct)
}

/// Hands a result the calling thread has to Java: returned when `direct` reduces it to a value
/// (see [`start_direct`]), else delivered to `pending`.
pub(super) fn finish_direct<T: Deliver, R>(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    result: crate::error::Result<T>,
    direct: impl FnOnce(&T) -> Option<R>,
) -> jni::errors::Result<Option<R>> {
    if let Some(value) = result.as_ref().ok().and_then(direct) {
        return Ok(Some(value));
    }
    if pending.is_null() {
        return Err(jni::errors::Error::NullPtr("pending"));
    }
    complete(env, pending, result)?;
    Ok(None)
}

/// Runs `work` as a task of the runtime, which completes `pending` from its own thread.
fn spawn<T, F>(
    env: &mut Env<'_>,
    pending: &JObject<'_>,
    work: Pin<Box<F>>,
) -> jni::errors::Result<()>
where
    T: Deliver,
    F: Future<Output = crate::error::Result<T>> + Send + 'static,
{
    let pending: Global<JObject<'static>> = env.new_global_ref(pending)?;
    runtime::handle().spawn(async move {
        // Work that panicked still completes its `Pending`: the Java thread must not park
        // forever.
        match Contained(work).await {
            Ok(result) => on_runtime_thread(move |env| complete(env, pending.as_obj(), result)),
            Err(_) => on_runtime_thread(move |env| {
                fail(env, pending.as_obj(), 0, "internal panic (contained)")
            }),
        }
    });
    Ok(())
}

/// Whether the thread that created `pending` may wait inside the native call (its
/// `waitsInNative` field: a platform thread).
fn waits_here(env: &mut Env<'_>, pending: &JObject<'_>) -> jni::errors::Result<bool> {
    let field = Members::of(env, pending)?.waits_in_native;
    // SAFETY: `field` is the boolean field `waitsInNative` of `pending`'s class (`Members`).
    unsafe { env.get_field_unchecked(pending, field, JavaType::Primitive(Primitive::Boolean)) }?.z()
}

/// A future whose panic is its output rather than its task's end.
struct Contained<F>(Pin<Box<F>>);

impl<F: Future> Future for Contained<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Runs `f` on this runtime thread, attached to the JVM as a daemon (once per thread: daemon
/// threads never hold the JVM's exit up). A failure is logged: the Java thread waiting on the
/// `Pending` then waits for its own time limit.
fn on_runtime_thread(f: impl FnOnce(&mut Env<'_>) -> jni::errors::Result<()>) {
    let attached = JavaVM::singleton().and_then(|vm| {
        if !vm.is_thread_attached()? {
            attach_as_daemon(&vm)?;
        }
        vm.with_local_frame(16, |env| {
            let result = f(env);
            if env.exception_check() {
                env.exception_describe();
                env.exception_clear();
            }
            result
        })
    });
    if let Err(e) = attached {
        tracing::error!(error = %e, "a Java caller could not be told the outcome of its call");
    }
}

fn attach_as_daemon(vm: &JavaVM) -> jni::errors::Result<()> {
    let raw = vm.get_raw();
    let mut env = std::ptr::null_mut();
    // SAFETY: `raw` is the live JavaVM this library was loaded into; AttachCurrentThreadAsDaemon
    // (JNI 1.4) takes a thread that is not attached (checked above) and null arguments.
    let rc = unsafe {
        ((*(*raw)).v1_4.AttachCurrentThreadAsDaemon)(raw, &mut env, std::ptr::null_mut())
    };
    if rc == jni::sys::JNI_OK {
        Ok(())
    } else {
        Err(jni::errors::Error::JniCall(jni::errors::JniError::Unknown))
    }
}
