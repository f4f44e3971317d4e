package io.msm.tomcat;

import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.catalina.Manager;
import org.apache.catalina.session.StandardSession;

/**
 * Tomcat's session with the access the manager needs to restore a session loaded from memcached
 * and to read its attributes for a backup.
 */
public class MsmSession extends StandardSession {
    private static final long serialVersionUID = 1L;

    /**
     * Set by every change through the session's API since the last backup; a session that was
     * not changed and holds only immutable values cannot differ from what was backed up.
     */
    private volatile boolean changed = true;

    /**
     * Non-sticky mode: requests of this Tomcat using the session now, the last of which hands it
     * back; -1 once it did, after which no request joins this copy.
     */
    private final AtomicInteger requests = new AtomicInteger();

    /** Non-sticky mode: the core's number of the read of memcached this copy derives from. */
    private volatile long read;

    /** Tagged by {@code serializationFailurePolicy=localSession}: never written to memcached. */
    private volatile boolean local;

    /**
     * Non-sticky mode: kept in this Tomcat's memory after a request (it is local, or distribution
     * was stopped), so this copy is newer than memcached's.
     */
    private volatile boolean held;

    /**
     * Creates an empty session of a manager.
     *
     * @param manager the manager
     */
    public MsmSession(Manager manager) {
        super(manager);
    }

    @Override
    public void setAttribute(String name, Object value, boolean notify) {
        changed = true;
        super.setAttribute(name, value, notify);
    }

    @Override
    public void removeAttribute(String name, boolean notify) {
        changed = true;
        super.removeAttribute(name, notify);
    }

    @Override
    public void setMaxInactiveInterval(int interval) {
        changed = true;
        super.setMaxInactiveInterval(interval);
    }

    /**
     * Starts a backup: from now on changes count towards the next one.
     *
     * @return whether the session may differ from its last backup: it was changed through its
     *     API, or it holds a value that could have been changed in place
     */
    boolean takeChanged() {
        boolean result = changed;
        changed = false;
        return result || !immutableValuesOnly();
    }

    /** A backup failed: the next one must send the content. */
    void markChanged() {
        changed = true;
    }

    private boolean immutableValuesOnly() {
        for (Object value : attributes.values()) {
            Class<?> type = value.getClass();
            if (type != String.class && type != Integer.class && type != Long.class
                    && type != Boolean.class && type != Double.class && type != Float.class
                    && type != Short.class && type != Byte.class && type != Character.class) {
                return false;
            }
        }
        return true;
    }

    /**
     * Non-sticky mode: a request starts using this copy.
     *
     * @return false when the copy's last request handed it back already: the request reads the
     *     session again
     */
    boolean enter() {
        return requests.getAndUpdate(n -> n < 0 ? n : n + 1) >= 0;
    }

    /**
     * Non-sticky mode: a request starts using this copy, even one its last request handed back.
     *
     * @return false when it had been handed back: the request reads the session into it again
     */
    boolean reenter() {
        return requests.getAndUpdate(n -> n < 0 ? 1 : n + 1) >= 0;
    }

    /**
     * Non-sticky mode: a request is done with this copy.
     *
     * @return whether it was the last request using it
     */
    boolean leave() {
        return requests.decrementAndGet() == 0;
    }

    /**
     * Non-sticky mode: the last request hands this copy back; requests that come later read the
     * session again.
     *
     * @return false when another request started using the copy meanwhile: it hands it back
     */
    boolean retire() {
        return requests.compareAndSet(0, -1);
    }

    /** @return non-sticky mode: the read of memcached this copy derives from (0: none) */
    long read() {
        return read;
    }

    /**
     * Non-sticky mode: records the read of memcached this copy's content came from.
     *
     * @param read the core's number of the read
     */
    void derivesFrom(long read) {
        this.read = read;
    }

    /** Tags the session local: from now on it lives in this Tomcat's memory only. */
    void keepLocal() {
        local = true;
    }

    /** @return whether the session is tagged local ({@code localSession}) */
    boolean isLocal() {
        return local;
    }

    /** Non-sticky mode: the session stays in this Tomcat's memory after its request. */
    void hold() {
        held = true;
    }

    /** @return non-sticky mode: whether the session stayed in memory after a request */
    boolean isHeld() {
        return held;
    }

    /** @return whether the session is valid, without {@link #isValid()}'s expiry side effect */
    boolean isLive() {
        return isValid;
    }

    /** @return true while the session is being expired or invalidated */
    boolean isExpiring() {
        return expiring;
    }

    /** @return the live attribute map (names to values) */
    Map<String, Object> attributeMap() {
        return attributes;
    }

    /**
     * Restores the times of a session loaded from memcached.
     *
     * @param creation creation time, epoch milliseconds
     * @param lastAccessed last access, epoch milliseconds
     */
    void restoreTimes(long creation, long lastAccessed) {
        this.creationTime = creation;
        this.lastAccessedTime = lastAccessed;
        this.thisAccessedTime = lastAccessed;
    }

    /**
     * Puts an attribute without notifying listeners (the session is being restored, not changed).
     *
     * @param name the name
     * @param value the value
     */
    void restoreAttribute(String name, Object value) {
        attributes.put(name, value);
    }
}
