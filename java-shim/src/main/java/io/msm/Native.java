package io.msm;

/**
 * The native core's JNI entry points (implemented in {@code native/ffi/jni/}). Managers are
 * numeric handles; core errors arrive as {@link MsmException} subclasses. Loading this class
 * loads the library and starts forwarding the core's log records into the host's log.
 */
public final class Native {
    static {
        NativeLibrary.load();
        LogPump.start();
    }

    private Native() {}

    /** Outcome of {@link #end}: nothing changed, nothing sent. */
    public static final int BACKUP_UNCHANGED = 0;
    /** Outcome of {@link #end}: nothing changed, the memcached expiry was renewed. */
    public static final int BACKUP_REFRESHED = 1;
    /** Outcome of {@link #end}: the session was written. */
    public static final int BACKUP_WRITTEN = 2;
    /** Outcome of {@link #end}: the write runs in the background. */
    public static final int BACKUP_QUEUED = 3;

    /**
     * Validates the attributes and starts a manager.
     *
     * @param names attribute names, as in {@code context.xml}
     * @param values their values
     * @param host the virtual host name, for the default key prefix
     * @param context the context name, for the default key prefix
     * @return the manager's handle
     * @throws MsmConfigException naming the attribute and value refused
     */
    public static native long create(String[] names, String[] values, String host, String context);

    /**
     * Stops a manager.
     *
     * @param handle the manager
     */
    public static native void destroy(long handle);

    /** {@link #end}'s outcome: the request never used its session. */
    public static final int OUTCOME_UNUSED = 0;
    /** {@link #end}'s outcome: the request used its session, whose content is given. */
    public static final int OUTCOME_USED = 1;
    /**
     * {@link #end}'s outcome: the session is unchanged since its last backup (sticky) or since
     * the read it came from (non-sticky).
     */
    public static final int OUTCOME_UNCHANGED = 2;
    /** {@link #end}'s outcome: nothing of the session is written. */
    public static final int OUTCOME_NOT_STORED = 3;

    /** {@link #lookup}'s host copy: the host holds nothing of the session. */
    public static final int HOST_COPY_NONE = 0;
    /** {@link #lookup}'s host copy: another request of this host read it and uses it now. */
    public static final int HOST_COPY_SHARED = 1;
    /** {@link #lookup}'s host copy: newer than memcached's (new, or kept here between requests). */
    public static final int HOST_COPY_HELD = 2;

    /**
     * A request starts: the core parses and routes its session id, takes the session lock when
     * {@code lockingMode} says so, and decides whether a new cookie is sent.
     *
     * @param handle the manager
     * @param sessionId the id the request carries, or null
     * @param uri the request's URI
     * @param route this host's jvmRoute, or null
     * @return the request in the core
     * @throws MsmLockTimeoutException when the request must be refused (503)
     */
    public static MsmRequest begin(long handle, String sessionId, String uri, String route) {
        Pending<MsmRequest> pending = new Pending<>();
        long begun = begin(handle, sessionId, uri, route, pending);
        return begun != 0 ? new MsmRequest(begun, sessionId, 0) : pending.await();
    }

    /**
     * {@link #begin(long, String, String, String)} in the core.
     *
     * @return the request's handle when it began at once with no flag set and the id it
     *     carried (most requests: no call back into Java); else 0, and {@code pending} is
     *     completed with the request
     */
    private static native long begin(long handle, String sessionId, String uri, String route,
            Pending<MsmRequest> pending);

    /**
     * The request uses a session: the core reads it from memcached unless the host's copy is
     * current.
     *
     * @param handle the manager
     * @param request the request's handle
     * @param id the session's id
     * @param hostCopy what the host holds of it ({@code HOST_COPY_*})
     * @param pending completed with a {@link Lookup}
     */
    public static native void lookup(long handle, long request, String id, int hostCopy,
            Pending<Lookup> pending);

    /**
     * Reads a session outside any request (Tomcat's authenticator looks sessions up before the
     * request begins).
     *
     * @param handle the manager
     * @param id the session's id
     * @param pending completed with a {@link Lookup}
     */
    public static native void load(long handle, String id, Pending<Lookup> pending);

    /**
     * A request ends: the core writes what must be written and releases the lock. The request's
     * handle is spent unless the result {@link Ended#needsContent() needs the content}.
     *
     * @param handle the manager
     * @param request the request's handle
     * @param outcome what the request did ({@code OUTCOME_*})
     * @param id the session's id now (used and unchanged outcomes)
     * @param creationTime used: creation time, epoch milliseconds
     * @param lastAccessedTime used: last access, epoch milliseconds
     * @param maxInactive the session's lifetime in seconds
     * @param read used and unchanged: the read the content derives from ({@link Lookup#read()}),
     *     or 0
     * @param authType used: authentication type, or null
     * @param principal used: principal name, or null
     * @param names used: attribute names
     * @param values used: serialized attribute values, index for index with {@code names}
     * @param previousId used: the id the session had when the request began, when the request
     *     changed it, else null
     * @return what the core did
     */
    public static Ended end(long handle, long request, int outcome, String id,
            long creationTime, long lastAccessedTime, int maxInactive, long read,
            String authType, String principal, String[] names, byte[][] values,
            String previousId) {
        Pending<Ended> pending = new Pending<>();
        int backup = end(handle, request, outcome, id, creationTime, lastAccessedTime,
                maxInactive, read, authType, principal, names, values, previousId, pending);
        return backup != ENDED_IN_PENDING ? new Ended(backup, null) : pending.await();
    }

    /** What the native {@code end} returns when {@code pending} has the result. */
    private static final int ENDED_IN_PENDING = Integer.MIN_VALUE;

    /**
     * {@link #end(long, long, int, String, long, long, int, long, String, String, String[],
     * byte[][], String)} in the core.
     *
     * @return the backup's outcome when the request ended at once with its session where it
     *     was (most requests: no call back into Java); else {@link #ENDED_IN_PENDING}, and
     *     {@code pending} is completed with the result
     */
    private static native int end(long handle, long request, int outcome, String id,
            long creationTime, long lastAccessedTime, int maxInactive, long read,
            String authType, String principal, String[] names, byte[][] values,
            String previousId, Pending<Ended> pending);

    /**
     * A fresh session id, reserved in the cluster.
     *
     * @param handle the manager
     * @param request the request it is for, or 0
     * @param route this host's jvmRoute, or null
     * @param pending completed with the id
     */
    public static native void newSessionId(long handle, long request, String route,
            Pending<String> pending);

    /**
     * A session ended on this host (invalidated, or timed out): the core removes its memcached
     * copies accordingly.
     *
     * @param handle the manager
     * @param id the session's id
     * @param lastAccessedTime its last access, epoch milliseconds
     * @param maxInactive its lifetime in seconds
     * @param pending completed when done
     */
    public static native void ended(long handle, String id, long lastAccessedTime,
            int maxInactive, Pending<Void> pending);

    /**
     * A session is about to end on this host, before its end listeners run (call
     * {@link #ended} after, either way): whether this host announces the end. With
     * {@code sessionEvents="expiry"}, a session that timed out is marked ended in memcached,
     * and the answer is false when a sweep delivered its expiry already (to this host or
     * another), another host ended it, or (sticky) another host took it over since; an
     * invalidation, and every end without events, is announced: true, nothing sent.
     *
     * @param handle the manager
     * @param id the session's id
     * @param lastAccessedTime its last access, epoch milliseconds
     * @param maxInactive its lifetime in seconds
     * @param pending completed with whether the host fires the end listeners
     */
    public static native void ending(long handle, String id, long lastAccessedTime,
            int maxInactive, Pending<Boolean> pending);

    /**
     * With {@code sessionEvents="expiry"}: sweeps for sessions that ended by expiry (at most
     * one command per memcached node when nothing is due) and hands over those this host must
     * announce, each to one manager of the context only. Their copies are gone from memcached
     * already. Without events: none, nothing sent.
     *
     * @param handle the manager
     * @param pending completed with the expired sessions (empty when none)
     */
    public static native void expiredSessions(long handle, Pending<Expired[]> pending);

    /**
     * With {@code sessionEvents="broadcast"}: the milliseconds between polls for the other
     * hosts' events ({@code broadcastPollInterval}).
     *
     * @param handle the manager
     * @return the interval; 0 without broadcast
     */
    public static native long broadcastPollInterval(long handle);

    /**
     * The {@code broadcastValues} attribute.
     *
     * @param handle the manager
     * @return whether attribute events carry their values (so whether the host serializes them)
     */
    public static native boolean broadcastValues(long handle);

    /**
     * With {@code sessionEvents="broadcast"}: publishes session events that happened on this
     * host to every other host of the context, in one round trip; never fails (what cannot be
     * published is counted and logged). Without broadcast: nothing sent. Event {@code i} is
     * {@code kinds[i]} (a {@link SessionEvent.Kind}'s ordinal) of session {@code ids[i]}.
     *
     * @param handle the manager
     * @param kinds each event's kind
     * @param ids each event's session id
     * @param names each attribute event's attribute name (null for created and destroyed)
     * @param values each attribute event's serialized value after the event (null when not
     *     sent)
     * @param pending completed when done
     */
    public static native void publish(long handle, int[] kinds, String[] ids, String[] names,
            byte[][] values, Pending<Void> pending);

    /**
     * With {@code sessionEvents="broadcast"}: the events the other hosts of the context
     * published since the previous call (since this manager started, the first time), each
     * once, in order; call it every {@link #broadcastPollInterval}. Without broadcast: none.
     *
     * @param handle the manager
     * @param pending completed with the events heard (empty when none)
     */
    public static native void broadcastEvents(long handle, Pending<SessionEvent[]> pending);

    /**
     * A sticky session took a new id: its copies under the old one go when its storage key
     * changed.
     *
     * @param handle the manager
     * @param oldId the old id
     * @param newId the new id
     * @param pending completed when done
     */
    public static native void idChanged(long handle, String oldId, String newId,
            Pending<Void> pending);

    /**
     * Waits for background backups.
     *
     * @param handle the manager
     * @param timeoutMillis longest wait
     * @return sessions whose backup is still in flight
     */
    public static native int flush(long handle, int timeoutMillis);

    /**
     * Whether {@code sessionAttributeFilter} lets the attribute be stored.
     *
     * @param handle the manager
     * @param name the attribute name
     * @return true when it is stored
     */
    public static native boolean storesAttribute(long handle, String name);

    /**
     * The {@code sticky} attribute.
     *
     * @param handle the manager
     * @return false for non-sticky sessions (memcached is the store)
     */
    public static native boolean sticky(long handle);

    /**
     * The {@code enabled} attribute.
     *
     * @param handle the manager
     * @return false when sessions stay in memory only
     */
    public static native boolean enabled(long handle);

    /**
     * Statistics and node states as {@code name value} lines.
     *
     * @param handle the manager
     * @return the text
     */
    public static native String stats(long handle);

    /**
     * Replaces the memcached node list of a running manager and publishes it as the next
     * version of the node list shared in the cluster.
     *
     * @param handle the manager
     * @param memcachedNodes the new {@code memcachedNodes} value
     * @param pending completed when done; fails with {@link MsmConfigException} when the list
     *     is refused
     */
    public static native void setMemcachedNodes(long handle, String memcachedNodes,
            Pending<Void> pending);

    /**
     * Starts collecting the core's log records at a level and above.
     *
     * @param level 1 error, 2 warn, 3 info, 4 debug, 5 trace
     * @return false when another collector was installed first
     */
    static native boolean installLogging(int level);

    /**
     * Takes queued log records.
     *
     * @param max most records returned
     * @param timeoutMillis longest wait for the first
     * @return {@code level, target, message} triples
     */
    static native String[] drainLogs(int max, int timeoutMillis);

    /** Panics inside the core on purpose: must surface as an {@link MsmException}. */
    public static native void selftestPanic();
}
