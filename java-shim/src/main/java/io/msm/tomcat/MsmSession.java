package io.msm.tomcat;

import java.util.Map;

import org.apache.catalina.Manager;
import org.apache.catalina.session.StandardSession;

/**
 * Tomcat's session with the access the manager needs to restore a session loaded from memcached
 * and to read its attributes for a backup.
 */
public class MsmSession extends StandardSession {
    private static final long serialVersionUID = 1L;

    /**
     * Creates an empty session of a manager.
     *
     * @param manager the manager
     */
    public MsmSession(Manager manager) {
        super(manager);
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
