package io.msm;

/**
 * What a request found of a session: memcached's copy with its content, the host's copy is
 * current, no session, or the store could not tell (the contract is the core's {@code request.rs}).
 */
public final class Lookup {
    /** The kinds of a lookup's outcome. */
    public enum Kind {
        /** Memcached's copy: {@link Lookup#names()} and {@link Lookup#values()} hold it. */
        FOUND,
        /** The host's copy is the current one. */
        CURRENT,
        /** No session: the request may create one. */
        MISSING,
        /** The store could not tell: refuse the request (503) rather than orphan the session. */
        UNAVAILABLE
    }

    private static final Kind[] KINDS = Kind.values();

    private final Kind kind;
    private final String relocatedId;
    private final long[] times;
    private final String authType;
    private final String principal;
    private final String[] names;
    private final byte[][] values;

    Lookup(int kind, String relocatedId, long[] times, String authType, String principal,
            String[] names, byte[][] values) {
        this.kind = KINDS[kind];
        this.relocatedId = relocatedId;
        this.times = times;
        this.authType = authType;
        this.principal = principal;
        this.names = names;
        this.values = values;
    }

    /** @return the outcome's kind */
    public Kind kind() {
        return kind;
    }

    /** @return found: the session's new id when it moved to another node, else null */
    public String relocatedId() {
        return relocatedId;
    }

    /** @return found: creation time, epoch milliseconds */
    public long creationTime() {
        return times[0];
    }

    /** @return found: last access, epoch milliseconds */
    public long lastAccessedTime() {
        return times[1];
    }

    /** @return found: seconds of inactivity before expiry */
    public int maxInactiveInterval() {
        return (int) times[2];
    }

    /**
     * @return found, non-sticky: the number of this read of memcached, which the request that
     *     hands the session back passes to the core's end with the content derived from it (0:
     *     none)
     */
    public long read() {
        return times[3];
    }

    /** @return found: the authentication type, or null */
    public String authType() {
        return authType;
    }

    /** @return found: the principal's name, or null */
    public String principal() {
        return principal;
    }

    /** @return found: attribute names */
    public String[] names() {
        return names;
    }

    /** @return found: serialized attribute values, index for index with {@link #names()} */
    public byte[][] values() {
        return values;
    }
}
