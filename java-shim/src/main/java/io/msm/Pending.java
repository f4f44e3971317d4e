package io.msm;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The result of a native call that may wait on the network or on a lock. The call returns at
 * once; the native core completes this future, on the calling thread when the result is there at
 * once, else from its own runtime thread, and the Java thread parks in {@link #await()}: a
 * virtual thread waiting for memcached or a session lock never pins its carrier thread. The
 * package-private methods are called by the core ({@code native/ffi/jni/pending.rs}).
 *
 * @param <T> the result's type
 */
public final class Pending<T> extends CompletableFuture<T> {
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

    void failed(int code, String message) {
        completeExceptionally(MsmException.of(code, message));
    }
}
