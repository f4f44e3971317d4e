package io.msm.tomcat;

import java.security.Principal;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;

import jakarta.servlet.http.HttpSessionActivationListener;

import org.apache.catalina.Manager;
import org.apache.catalina.session.StandardSession;

import io.msm.SessionEvent;

/**
 * Tomcat's session with the access the manager needs to restore a session loaded from memcached
 * and to read its attributes for a backup.
 */
public class MsmSession extends StandardSession {
    private static final long serialVersionUID = 1L;

    /**
     * Set by every change through the session's API since the last backup; a session that was
     * not changed, and none of whose values that could change in place was handed out, cannot
     * differ from what was backed up.
     */
    private volatile boolean changed = true;

    /**
     * How many values that could change in place (anything but a string, boxed number, boolean
     * or character) {@link #getAttribute} handed out: when it grew since the last backup, the
     * next one serializes the session to find out whether they changed.
     */
    private final AtomicLong handedOut = new AtomicLong();

    /** {@link #handedOut} as the last backup took it into account. */
    private volatile long handedOutBackedUp;

    /**
     * Sticky mode: requests of this Tomcat using the session now (Tomcat's {@link #access} and
     * {@link #endAccess}, the first before a request can be handed anything). While another
     * request uses the session, a backup leaves {@link #handedOutBackedUp} as it is: that
     * request may still change a value it was handed.
     */
    private final AtomicInteger users = new AtomicInteger();

    /**
     * Non-sticky mode: requests of this Tomcat using the session now, the last of which hands it
     * back; -1 once it did, after which no request joins this copy.
     */
    private final AtomicInteger requests = new AtomicInteger();

    /**
     * Non-sticky mode: held by the request handing this copy back, then by one reading the
     * session into it again.
     */
    private final ReentrantLock reading = new ReentrantLock();

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
     * Its attributes were told the session leaves this Tomcat's memory ({@link #passivate}) and
     * not yet that it is in use here again ({@link #activate}).
     */
    private volatile boolean passivated;

    /**
     * Handed over by the core as expired (a sweep found it, wherever it lived): this Tomcat
     * announces its end, and it touches neither memcached nor the manager's sessions.
     */
    private volatile boolean sweptExpired;

    /**
     * Stands for a session another Tomcat told about ({@link #standIn}): what a listener does
     * with it stays in this object.
     */
    private volatile boolean standIn;

    /**
     * Creates an empty session of a manager.
     *
     * @param manager the manager
     */
    public MsmSession(Manager manager) {
        super(manager);
    }

    @Override
    public Object getAttribute(String name) {
        Object value = super.getAttribute(name);
        if (value != null && !isImmutable(value)) {
            handedOut.incrementAndGet();
        }
        return value;
    }

    @Override
    public void access() {
        users.incrementAndGet();
        super.access();
    }

    @Override
    public void endAccess() {
        super.endAccess();
        users.decrementAndGet();
    }

    @Override
    public void setAttribute(String name, Object value, boolean notify) {
        changed = true;
        boolean replaces = value != null && attributes.containsKey(name);
        super.setAttribute(name, value, notify);
        if (notify && value != null) {
            heardHere(replaces ? SessionEvent.Kind.ATTRIBUTE_REPLACED
                    : SessionEvent.Kind.ATTRIBUTE_ADDED, name, value);
        }
    }

    @Override
    public void removeAttribute(String name, boolean notify) {
        changed = true;
        boolean removes = attributes.containsKey(name);
        super.removeAttribute(name, notify);
        if (notify && removes) {
            heardHere(SessionEvent.Kind.ATTRIBUTE_REMOVED, name, null);
        }
    }

    /**
     * Tomcat's {@code sessionCreated}, queued for broadcast ({@code sessionEvents="broadcast"})
     * first: what its listeners do to the session follows it.
     */
    @Override
    public void tellNew() {
        heardHere(SessionEvent.Kind.CREATED, null, null);
        super.tellNew();
    }

    /** Hands an event of this session, which its listeners heard, to the broadcast. */
    private void heardHere(SessionEvent.Kind kind, String name, Object value) {
        if (!standIn && manager instanceof MemcachedSessionManager) {
            ((MemcachedSessionManager) manager).heardHere(kind, this, name, value);
        }
    }

    /** A container login is stored with the session ({@code persistAuthentication}). */
    @Override
    public void setAuthType(String authType) {
        changed = true;
        super.setAuthType(authType);
    }

    /** A container login is stored with the session ({@code persistAuthentication}). */
    @Override
    public void setPrincipal(Principal principal) {
        changed = true;
        super.setPrincipal(principal);
    }

    @Override
    public void setMaxInactiveInterval(int interval) {
        changed = true;
        super.setMaxInactiveInterval(interval);
    }

    /** The authenticators' notes are stored with the session ({@code persistAuthentication}). */
    @Override
    public void setNote(String name, Object value) {
        changed = true;
        super.setNote(name, value);
    }

    /** The authenticators' notes are stored with the session ({@code persistAuthentication}). */
    @Override
    public void removeNote(String name) {
        changed = true;
        super.removeNote(name);
    }

    /**
     * Starts a backup at the end of a request: from now on changes count towards the next one.
     * A value handed out still counts when another request uses the session now.
     *
     * @return whether the session may differ from its last backup: it was changed through its
     *     API, or a value that could change in place was handed out
     */
    boolean takeChanged() {
        boolean result = changed;
        changed = false;
        long seen = handedOut.get();
        boolean valueHandedOut = seen != handedOutBackedUp;
        if (valueHandedOut && users.get() <= 1) {
            handedOutBackedUp = seen;
        }
        return result || valueHandedOut;
    }

    /**
     * Non-sticky mode, as the copy leaves this Tomcat: whether it may differ from the read it
     * derives from ({@link #derivesFrom}): as {@link #takeChanged}, and a session holding a value
     * that hears its passivation (which may change it) counts as changed.
     *
     * @return whether the copy's content must be handed back
     */
    boolean changedSinceRead() {
        if (takeChanged()) {
            return true;
        }
        for (Object value : attributes.values()) {
            if (value instanceof HttpSessionActivationListener) {
                return true;
            }
        }
        return false;
    }

    /**
     * Starts a backup outside any request (the manager stops, after the attributes heard of
     * their passivation, which may change them): as {@link #takeChanged}, and a session holding
     * a value that could change in place counts as changed.
     *
     * @return whether the session may differ from its last backup
     */
    boolean takeChangedAtStop() {
        return takeChanged() || !immutableValuesOnly();
    }

    /**
     * The session leaves this Tomcat's memory for memcached: Tomcat's passivation (the
     * attributes' {@code sessionWillPassivate}), before they are serialized.
     */
    @Override
    public void passivate() {
        passivated = true;
        super.passivate();
    }

    /**
     * The session is in use in this Tomcat (loaded from memcached, or used again after a
     * passivation): Tomcat's activation (the attributes' {@code sessionDidActivate}).
     */
    @Override
    public void activate() {
        passivated = false;
        super.activate();
    }

    /** Activates the session when it was passivated since its last activation. */
    void activateIfPassivated() {
        if (passivated) {
            activate();
        }
    }

    /** A backup failed: the next one must send the content. */
    void markChanged() {
        changed = true;
    }

    private boolean immutableValuesOnly() {
        for (Object value : attributes.values()) {
            if (!isImmutable(value)) {
                return false;
            }
        }
        return true;
    }

    /** Whether {@code value} cannot change in place: a string, boxed number, boolean or character. */
    private static boolean isImmutable(Object value) {
        Class<?> type = value.getClass();
        return type == String.class || type == Integer.class || type == Long.class
                || type == Boolean.class || type == Double.class || type == Float.class
                || type == Short.class || type == Byte.class || type == Character.class;
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
     * Non-sticky mode: a request starts using this copy, even one its last request handed back:
     * then {@code readAgain} reads the session into it first, while requests joining it
     * meanwhile wait (they would see it emptied, and their changes wiped).
     *
     * @param readAgain reads the session into this copy
     */
    void reenter(Runnable readAgain) {
        reading.lock();
        try {
            if (requests.get() < 0) {
                readAgain.run();
                requests.set(1);
            } else {
                requests.incrementAndGet();
            }
        } finally {
            reading.unlock();
        }
    }

    /**
     * Non-sticky mode: a request is done with this copy. The last one runs {@code handBack}
     * with the copy retired: requests joining it meanwhile wait, then read the session into it
     * again ({@link #reenter}), so they see what was handed back and the hand-back sees no
     * change of theirs it would leave out.
     *
     * @param handBack hands the copy back; true when this Tomcat keeps it in memory (it is
     *     local, or distribution stopped), which requests then join as it is
     * @return whether this request was the last one using the copy
     */
    boolean leave(BooleanSupplier handBack) {
        reading.lock();
        try {
            if (requests.getAndUpdate(n -> n == 1 ? -1 : n - 1) != 1) {
                return false;
            }
            if (handBack.getAsBoolean()) {
                requests.set(0);
            }
            return true;
        } finally {
            reading.unlock();
        }
    }

    /** @return non-sticky mode: the read of memcached this copy derives from (0: none) */
    long read() {
        return read;
    }

    /**
     * Non-sticky mode: records the read of memcached this copy's content is about to be filled
     * from; changes count from here (the filling itself changes nothing).
     *
     * @param read the core's number of the read
     */
    void derivesFrom(long read) {
        this.read = read;
        changed = false;
        handedOutBackedUp = handedOut.get();
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

    /**
     * Ends the session as Tomcat does (its listeners, then the attributes' unbinding), unless
     * the manager says its end is not this Tomcat's to announce: then the session goes
     * silently (a sweep delivered its expiry already, or another Tomcat took it over).
     *
     * @param notify whether listeners are told, as Tomcat asks
     */
    @Override
    public void expire(boolean notify) {
        if (standIn) {
            isValid = false;
            return;
        }
        boolean announce = notify;
        if (notify && !sweptExpired && isValid && !expiring
                && manager instanceof MemcachedSessionManager) {
            announce = ((MemcachedSessionManager) manager).announcesEnd(this);
        }
        boolean ends = isValid && !expiring;
        super.expire(announce);
        if (announce && ends) {
            heardHere(SessionEvent.Kind.DESTROYED, null, null);
        }
    }

    /**
     * Makes this session stand for one another Tomcat told about ({@code
     * sessionEvents="broadcast"}): valid, with that id, never among the manager's sessions.
     *
     * @param id the session's id
     */
    void standIn(String id) {
        this.id = id;
        this.isValid = true;
        this.standIn = true;
    }

    /**
     * Marks the session as handed over by a sweep (see {@link #isSweptExpired()}), with its id,
     * which it takes without joining the manager's sessions.
     *
     * @param id the session's id
     */
    void sweptExpired(String id) {
        this.id = id;
        sweptExpired = true;
    }

    /**
     * @return whether the core handed this session over as expired: its copies are gone, and it
     *     was never among the manager's sessions
     */
    boolean isSweptExpired() {
        return sweptExpired;
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
     * Restores the lifetime of a session loaded from memcached (not a change).
     *
     * @param interval seconds
     */
    void restoreMaxInactiveInterval(int interval) {
        super.setMaxInactiveInterval(interval);
    }

    /**
     * Restores the container login of a session loaded from memcached (not a change).
     *
     * @param authType the authentication type, or null
     * @param principal the principal, or null
     * @param notes the authenticators' notes
     */
    void restoreLogin(String authType, Principal principal, Map<String, Object> notes) {
        super.setAuthType(authType);
        super.setPrincipal(principal);
        notes.forEach(super::setNote);
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
