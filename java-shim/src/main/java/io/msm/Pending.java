package io.msm;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The result of a native call that may wait on the network or on a lock. Created on the thread
 * that calls and awaits. A platform thread waits inside the call, which completes this future
 * before returning. For a virtual thread the call returns at once; the native core completes
 * this future, on the calling thread when the result is there at once, else from its own
 * runtime thread, and the virtual thread parks in {@link #await()}: waiting for memcached or a
 * session lock never pins its carrier thread. The package-private members are used by the core
 * ({@code native/ffi/jni/pending.rs}).
 *
 * @param <T> the result's type
 */
public final class Pending<T> extends CompletableFuture<T> {
    /** {@code Thread.isVirtual()} (Java 21), or null before it. */
    private static final MethodHandle IS_VIRTUAL = isVirtual();

    /** Whether the creating thread may wait inside the native call: it is not virtual. */
    final boolean waitsInNative = !isVirtual(Thread.currentThread());

    private static MethodHandle isVirtual() {
        try {
            return MethodHandles.publicLookup().findVirtual(Thread.class, "isVirtual",
                    MethodType.methodType(boolean.class));
        } catch (NoSuchMethodException | IllegalAccessException e) {
            return null;
        }
    }

    private static boolean isVirtual(Thread thread) {
        if (IS_VIRTUAL == null) {
            return false;
        }
        try {
            return (boolean) IS_VIRTUAL.invokeExact(thread);
        } catch (Throwable e) {
            throw new IllegalStateException("Thread.isVirtual failed", e);
        }
    }

    /**
     * Waits for the result.
     *
     * @return the result
     * @throws MsmException the core's failure
     */
    public T await() {
        try {
            return join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException) {
                throw (RuntimeException) e.getCause();
            }
            throw e;
        }
    }

    @SuppressWarnings("unchecked")
    void done(Object value) {
        complete((T) value);
    }

    @SuppressWarnings("unchecked")
    void begun(long handle, String sessionId, int flags) {
        complete((T) new MsmRequest(handle, sessionId, flags));
    }

    @SuppressWarnings("unchecked")
    void found(int kind, String relocatedId, long[] times, String authType, String principal,
            String[] names, byte[][] values) {
        complete((T) new Lookup(kind, relocatedId, times, authType, principal, names, values));
    }

    @SuppressWarnings("unchecked")
    void ended(int backup, String movedId) {
        complete((T) new Ended(backup, movedId));
    }

    @SuppressWarnings("unchecked")
    void expired(String[] ids, long[] times, String[] authTypes, String[] principals,
            String[][] names, byte[][][] values) {
        Expired[] expired = new Expired[ids.length];
        for (int i = 0; i < ids.length; i++) {
            long[] its = {times[3 * i], times[3 * i + 1], times[3 * i + 2], 0};
            expired[i] = new Expired(ids[i], new Lookup(Lookup.Kind.FOUND.ordinal(), null, its,
                    authTypes[i], principals[i], names[i], values[i]));
        }
        complete((T) expired);
    }

    @SuppressWarnings("unchecked")
    void heard(int[] kinds, String[] ids, String[] names, byte[][] values) {
        SessionEvent[] heard = new SessionEvent[ids.length];
        for (int i = 0; i < ids.length; i++) {
            heard[i] = new SessionEvent(SessionEvent.Kind.values()[kinds[i]], ids[i], names[i],
                    values[i]);
        }
        complete((T) heard);
    }

    void failed(int code, String message) {
        completeExceptionally(MsmException.of(code, message));
    }
}
