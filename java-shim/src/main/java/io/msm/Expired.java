package io.msm;

/**
 * A session that ended by expiry, handed to this host to announce ({@code sessionDestroyed}):
 * its id and its last stored data. The core hands each such session to one manager of the
 * context only, and its copies are gone from memcached already.
 */
public final class Expired {
    private final String id;
    private final Lookup session;

    Expired(String id, Lookup session) {
        this.id = id;
        this.session = session;
    }

    /** @return the session's id (without route) */
    public String id() {
        return id;
    }

    /**
     * @return its last stored data, as a found {@link Lookup}: times, login and attributes (no
     *     relocation, no read number)
     */
    public Lookup session() {
        return session;
    }
}
