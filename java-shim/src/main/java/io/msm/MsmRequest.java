package io.msm;

/**
 * A request between {@link Native#begin} and {@link Native#end}, and what the core decided at its
 * start (the contract is the core's {@code request.rs}).
 */
public final class MsmRequest {
    private static final int IGNORED = 1;
    private static final int NEW_COOKIE = 2;
    private static final int LOCKED = 4;
    private static final int INVALID_ID = 8;
    private static final int PREFETCHED = 16;

    private final long handle;
    private final String sessionId;
    private final int flags;

    MsmRequest(long handle, String sessionId, int flags) {
        this.handle = handle;
        this.sessionId = sessionId;
        this.flags = flags;
    }

    /** @return the core's handle of the request */
    public long handle() {
        return handle;
    }

    /** @return the id of the request's session on this host; null when it carried none */
    public String sessionId() {
        return sessionId;
    }

    /** @return whether {@code requestUriIgnorePattern} matched: the request never touches memcached */
    public boolean ignored() {
        return (flags & IGNORED) != 0;
    }

    /** @return whether the session takes a new id here, sent as a new cookie */
    public boolean newCookie() {
        return (flags & NEW_COOKIE) != 0;
    }

    /** @return whether the request holds the session lock */
    public boolean locked() {
        return (flags & LOCKED) != 0;
    }

    /** @return whether the request carried a malformed or hostile id: it has no session */
    public boolean invalidId() {
        return (flags & INVALID_ID) != 0;
    }

    /** @return whether the core read the session already (it moved off a node that is down) */
    public boolean prefetched() {
        return (flags & PREFETCHED) != 0;
    }
}
