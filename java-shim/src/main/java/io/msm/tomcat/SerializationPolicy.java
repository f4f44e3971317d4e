package io.msm.tomcat;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.atomic.AtomicBoolean;

import jakarta.servlet.http.HttpServletResponse;

import org.apache.catalina.connector.Request;
import org.apache.catalina.connector.Response;
import org.apache.juli.logging.Log;

/**
 * What the manager does when a session attribute cannot be serialized
 * ({@code serializationFailurePolicy}) or deserialized ({@code deserializationFailurePolicy}),
 * and what it remembers of it: whether distribution is stopped, and the blacklist of the
 * attributes left out. Both are manager attributes of {@code context.xml}, checked when the
 * manager starts; the native core never sees them.
 *
 * <p>{@code serializationFailurePolicy}:
 * <ul>
 * <li>{@code fail} (default): the request fails with 500 naming the attribute and its class while
 * its response is not committed, else the failure is logged as an error; the session is not
 * stored;</li>
 * <li>{@code localSession}: the session is tagged local, its memcached copies are deleted and it
 * stays in this Tomcat's memory only; other sessions keep being distributed;</li>
 * <li>{@code stopDistribution}: no session is written to memcached any more, until the JMX
 * operation {@code resumeDistribution};</li>
 * <li>{@code dropAttribute}: the attribute is left out of the stored session and its name and
 * class are recorded in the blacklist; the rest of the session is stored.</li>
 * </ul>
 *
 * <p>{@code deserializationFailurePolicy}: {@code dropAttribute} (default: the session is read
 * without the attribute) or {@code dropSession} (the session is treated as absent: the request
 * gets a new one). Every case logs a warning naming the attribute and its class.
 */
final class SerializationPolicy {
    static final String SERIALIZATION = "serializationFailurePolicy";
    static final String DESERIALIZATION = "deserializationFailurePolicy";
    /** Most entries the blacklist keeps (attribute names may be made up at run time). */
    static final int BLACKLIST_LIMIT = 1000;

    /** The values of {@code serializationFailurePolicy}. */
    enum Action {
        /** The request fails; the session is not stored. */
        FAIL("fail"),
        /** The session is kept in this Tomcat's memory only, from now on. */
        LOCAL_SESSION("localSession"),
        /** No session is written any more, until distribution is resumed. */
        STOP_DISTRIBUTION("stopDistribution"),
        /** The attribute is left out and blacklisted; the rest of the session is stored. */
        DROP_ATTRIBUTE("dropAttribute");

        final String value;

        Action(String value) {
            this.value = value;
        }
    }

    private final Log log;
    private final Map<String, String> configured = new LinkedHashMap<>();
    private final AtomicBoolean distributionStopped = new AtomicBoolean();
    private final Set<String> blacklist = new ConcurrentSkipListSet<>();
    private Action action = Action.FAIL;
    private boolean dropsSession;

    /**
     * A policy logging to the manager's log.
     *
     * @param log where failures are logged
     */
    SerializationPolicy(Log log) {
        this.log = log;
    }

    /**
     * Keeps the value of one of the two policy attributes; it is checked at start.
     *
     * @param name a manager attribute name
     * @param value its value
     * @return false when {@code name} is not a policy attribute
     */
    boolean accept(String name, String value) {
        if (!name.equals(SERIALIZATION) && !name.equals(DESERIALIZATION)) {
            return false;
        }
        configured.put(name, value == null ? "" : value);
        return true;
    }

    /**
     * Checks the configured values and starts afresh: distribution runs, the blacklist is empty.
     *
     * @throws IllegalArgumentException naming a bad attribute and its value
     */
    void start() {
        action = Action.FAIL;
        dropsSession = false;
        String serialization = configured.get(SERIALIZATION);
        if (serialization != null) {
            Action chosen = null;
            for (Action candidate : Action.values()) {
                if (candidate.value.equals(serialization.trim())) {
                    chosen = candidate;
                }
            }
            if (chosen == null) {
                throw SessionCookies.invalid(SERIALIZATION, serialization,
                        "expected `fail`, `localSession`, `stopDistribution` or `dropAttribute`");
            }
            action = chosen;
        }
        String deserialization = configured.get(DESERIALIZATION);
        if (deserialization != null) {
            switch (deserialization.trim()) {
                case "dropAttribute":
                    break;
                case "dropSession":
                    dropsSession = true;
                    break;
                default:
                    throw SessionCookies.invalid(DESERIALIZATION, deserialization,
                            "expected `dropAttribute` or `dropSession`");
            }
        }
        distributionStopped.set(false);
        blacklist.clear();
    }

    /** @return what the configured {@code serializationFailurePolicy} does */
    Action action() {
        return action;
    }

    /**
     * Applies {@code serializationFailurePolicy} to an attribute that could not be serialized,
     * and logs it. {@code fail} fails the request here, {@code localSession} tags the session,
     * {@code stopDistribution} stops distribution, {@code dropAttribute} blacklists the attribute.
     *
     * @param request the request whose end stores the session, or null when the manager stores
     *     it at its stop
     * @param session the session
     * @param name the attribute's name
     * @param value its value
     * @param error what the serializer threw
     * @return the configured action: with {@link Action#DROP_ATTRIBUTE} the caller goes on
     *     without the attribute, with the others it stores nothing (and, for
     *     {@link Action#LOCAL_SESSION}, deletes the session's copies)
     */
    Action serializationFailed(Request request, MsmSession session, String name, Object value,
            Exception error) {
        String type = value.getClass().getName();
        String attribute = "attribute [" + name + "] of class " + type;
        String where = " of session " + MemcachedSessionManager.redact(session.getIdInternal())
                + " cannot be serialized (" + SERIALIZATION + "=" + action.value + "): ";
        switch (action) {
            case DROP_ATTRIBUTE:
                if (blacklist.size() < BLACKLIST_LIMIT && blacklist.add(name + " " + type)) {
                    log.warn(attribute + where + "it is left out of every stored session and"
                            + " blacklisted; further occurrences are logged at debug level: "
                            + error);
                } else if (log.isDebugEnabled()) {
                    log.debug(attribute + where + "left out: " + error);
                }
                break;
            case LOCAL_SESSION:
                session.keepLocal();
                log.warn(attribute + where + "the session is kept in this Tomcat's memory only"
                        + " from now on, and its memcached copies are deleted: " + error);
                break;
            case STOP_DISTRIBUTION:
                if (distributionStopped.compareAndSet(false, true)) {
                    log.warn(attribute + where + "session distribution stopped: no session is"
                            + " written to memcached until the JMX operation resumeDistribution: "
                            + error);
                } else {
                    log.warn(attribute + where + "distribution was already stopped: " + error);
                }
                break;
            default:
                fail(request, "session " + attribute + " cannot be serialized", attribute + where,
                        error);
                break;
        }
        return action;
    }

    /**
     * {@code fail}: answers 500 while the response is not committed (Tomcat's error page shows
     * the message), else (or without a request: the manager stops) logs an error: the response
     * already went out as it was.
     */
    private void fail(Request request, String message, String problem, Exception error) {
        if (request == null) {
            log.error(problem + "the manager stops, and the session was not stored: " + error);
            return;
        }
        Response response = request.getResponse();
        if (!response.isCommitted() && !request.isAsync()) {
            try {
                response.sendError(HttpServletResponse.SC_INTERNAL_SERVER_ERROR, message);
                log.warn(problem + "the request failed (500) and the session was not stored: "
                        + error);
                return;
            } catch (IOException | IllegalStateException e) {
                log.debug("500 not sent: " + e);
            }
        }
        log.error(problem + "the response was already committed, so the request could not fail;"
                + " the session was not stored: " + error);
    }

    /** @return true while distribution is stopped ({@code stopDistribution}) */
    boolean distributionStopped() {
        return distributionStopped.get();
    }

    /** Resumes distribution after {@code stopDistribution} stopped it. */
    void resumeDistribution() {
        if (distributionStopped.compareAndSet(true, false)) {
            log.info("session distribution resumed: sessions are written to memcached again");
        }
    }

    /** @return the attributes left out ({@code dropAttribute}): {@code name class} lines */
    String blacklist() {
        return blacklist.isEmpty() ? "" : String.join("\n", blacklist) + "\n";
    }

    /** @return whether a session with an attribute that cannot be deserialized is dropped whole */
    boolean dropsSession() {
        return dropsSession;
    }

    /**
     * Logs an attribute that could not be deserialized, and what becomes of it.
     *
     * @param id the session's id
     * @param name the attribute's name
     * @param error what the deserializer threw (its message names a missing class)
     */
    void deserializationFailed(String id, String name, Throwable error) {
        log.warn("attribute [" + name + "] of session " + MemcachedSessionManager.redact(id)
                + " cannot be deserialized (" + DESERIALIZATION + "="
                + (dropsSession ? "dropSession): the session is not read"
                        : "dropAttribute): the session is read without it")
                + ": " + error);
    }
}
