package io.msm;

/**
 * The native core's JNI entry points (implemented in {@code native/ffi/jni.rs}). Managers are
 * numeric handles; core errors arrive as {@link MsmException} subclasses. Loading this class
 * loads the library and starts forwarding the core's log records into the host's log.
 */
public final class Native {
    static {
        NativeLibrary.load();
        LogPump.start();
    }

    private Native() {}

    /** Outcome of {@link #backup}: nothing changed, nothing sent. */
    public static final int BACKUP_UNCHANGED = 0;
    /** Outcome of {@link #backup}: nothing changed, the memcached expiry was renewed. */
    public static final int BACKUP_REFRESHED = 1;
    /** Outcome of {@link #backup}: the session was written. */
    public static final int BACKUP_WRITTEN = 2;
    /** Outcome of {@link #backup}: the write runs in the background. */
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

    /**
     * A fresh session id, reserved in the cluster.
     *
     * @param handle the manager
     * @param route this host's jvmRoute, or null
     * @return the id
     */
    public static native String newSessionId(long handle, String route);

    /**
     * The id a requested session must take on this host (its route, or a node that is down or
     * removed). A node the manager does not know is first looked up in the node list shared in
     * the cluster (at most once a second), so this may wait for one memcached round trip.
     *
     * @param handle the manager
     * @param id the requested id
     * @param route this host's jvmRoute, or null
     * @return the new id, or null when the id is right
     * @throws MsmInvalidIdException for a malformed or hostile id
     */
    public static native String routeRequest(long handle, String id, String route);

    /**
     * Loads a session: {@code {String relocatedIdOrNull, long[] {creationTime, lastAccessedTime,
     * maxInactive, version}, String authType, String principal, name0, byte[] value0, ...}}.
     *
     * @param handle the manager
     * @param id the session id
     * @return the session, or null when memcached does not hold it
     */
    public static native Object[] load(long handle, String id);

    /**
     * Backs up a sticky session after a request; the core decides whether anything is sent.
     *
     * @param handle the manager
     * @param id the session id
     * @param creationTime creation time, epoch milliseconds
     * @param lastAccessedTime last access, epoch milliseconds
     * @param maxInactive lifetime in seconds
     * @param authType authentication type, or null
     * @param principal principal name, or null
     * @param names attribute names
     * @param values serialized attribute values
     * @param waitMillis how long to wait for the write; negative returns at once
     * @return one of the {@code BACKUP_*} outcomes
     */
    public static native int backup(long handle, String id, long creationTime,
            long lastAccessedTime, int maxInactive, String authType, String principal,
            String[] names, byte[][] values, int waitMillis);

    /**
     * Backs up a session that did not change since its last backup, without its content: the
     * core renews its memcached expiry when that is due.
     *
     * @param handle the manager
     * @param id the session id
     * @param maxInactive lifetime in seconds
     * @param waitMillis how long to wait for a renewal; negative returns at once
     * @return one of the {@code BACKUP_*} outcomes, or -1 when the core needs the content
     *     ({@link #backup})
     */
    public static native int backupUnchanged(long handle, String id, int maxInactive,
            int waitMillis);

    /**
     * Whether a non-sticky request for this URI takes the session lock ({@code lockingMode}).
     *
     * @param handle the manager
     * @param uri the request URI
     * @return true when the request locks
     */
    public static native boolean locksRequest(long handle, String uri);

    /**
     * Takes the session lock for a request.
     *
     * @param handle the manager
     * @param id the requested session id
     * @return the lock's handle, or 0 when the request goes on without it
     *     ({@code lockFailure="proceed"})
     * @throws MsmLockTimeoutException when the request must be refused
     *     ({@code lockFailure="refuse"})
     */
    public static native long lockForRequest(long handle, String id);

    /**
     * Releases a lock that was not handed to {@link #finish}.
     *
     * @param handle the manager
     * @param lockHandle the lock
     */
    public static native void unlock(long handle, long lockHandle);

    /**
     * Non-sticky end of a request that carried a session id but never used the session: renews
     * the session's validity record (not loading the session) and releases the lock.
     *
     * @param handle manager handle
     * @param id the requested session id
     * @param lockHandle the request's lock, 0 for none
     * @param uri the request's URI ({@code lockingMode="auto"} learns it is read-only), or null
     * @return whether memcached holds a live session under {@code id}
     * @throws io.msm.MsmException when memcached cannot be reached
     */
    public static native boolean accessed(long handle, String id, long lockHandle, String uri);

    /**
     * Non-sticky request end: writes the session when it changed (else renews its expiry) and
     * releases the lock.
     *
     * @param handle the manager
     * @param id the session id
     * @param creationTime creation time, epoch milliseconds
     * @param lastAccessedTime last access, epoch milliseconds
     * @param maxInactive lifetime in seconds
     * @param authType authentication type, or null
     * @param principal principal name, or null
     * @param names attribute names
     * @param values serialized attribute values
     * @param lockHandle the request's lock, or 0
     * @param uri the request URI, for {@code lockingMode="auto"}
     * @return the session's new id when it moved to another node, else null
     */
    public static native String finish(long handle, String id, long creationTime,
            long lastAccessedTime, int maxInactive, String authType, String principal,
            String[] names, byte[][] values, long lockHandle, String uri);

    /**
     * A session ended on this host: the core deletes its copies when it was invalidated, and
     * when it timed out unless another host wrote a newer version meanwhile.
     *
     * @param handle the manager
     * @param id the session id
     * @param lastAccessedTime last access, epoch milliseconds
     * @param maxInactive lifetime in seconds
     */
    public static native void ended(long handle, String id, long lastAccessedTime,
            int maxInactive);

    /**
     * A session changed its id: the core deletes the copies under the old id when the storage
     * key changed.
     *
     * @param handle the manager
     * @param oldId the id before
     * @param newId the id after
     */
    public static native void idChanged(long handle, String oldId, String newId);

    /**
     * Waits for background backups.
     *
     * @param handle the manager
     * @param timeoutMillis longest wait
     * @return sessions whose backup is still in flight
     */
    public static native int flush(long handle, int timeoutMillis);

    /**
     * Whether {@code requestUriIgnorePattern} matches.
     *
     * @param handle the manager
     * @param uri the request URI
     * @return true when the request must not touch memcached
     */
    public static native boolean ignoresUri(long handle, String uri);

    /**
     * Whether {@code requestUriIgnorePattern} is set at all.
     *
     * @param handle the manager
     * @return false when no request is ignored
     */
    public static native boolean ignoresAnyUri(long handle);

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
     * How long a request waits for its backup.
     *
     * @param handle the manager
     * @return -1 for asynchronous backups, else {@code sessionBackupTimeout}
     */
    public static native int backupWaitMillis(long handle);

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
     * @throws MsmConfigException when the list is refused
     */
    public static native void setMemcachedNodes(long handle, String memcachedNodes);

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
