package io.msm.tomcat;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import jakarta.servlet.RequestDispatcher;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletRequestEvent;
import jakarta.servlet.ServletRequestListener;
import jakarta.servlet.http.HttpServletResponse;
import javax.management.JMException;
import javax.management.ObjectName;

import org.apache.catalina.Context;
import org.apache.catalina.LifecycleException;
import org.apache.catalina.LifecycleState;
import org.apache.catalina.Session;
import org.apache.catalina.connector.Request;
import org.apache.catalina.connector.Response;
import org.apache.catalina.session.ManagerBase;
import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;

import io.msm.MsmCorruptException;
import io.msm.MsmException;
import io.msm.MsmInvalidIdException;
import io.msm.MsmLockTimeoutException;
import io.msm.Native;

/**
 * A Tomcat session manager that keeps every session also in memcached, so that another Tomcat
 * can take it over. Configured in {@code context.xml}:
 *
 * <pre>{@code
 * <Manager className="io.msm.tomcat.MemcachedSessionManager"
 *          memcachedNodes="n1:host1:11211 n2:host2:11211" />
 * }</pre>
 *
 * <p>Every attribute other than Tomcat's own manager attributes, {@code serializer}, the session
 * cookie attributes ({@link SessionCookies}) and the serialization failure policies
 * ({@link SerializationPolicy}) is handed to the native core, which validates it: an unknown name
 * or a bad value stops the context with a message naming it. The manager makes no routing,
 * failover or change decision itself; it turns Tomcat's session lifecycle into calls to the core
 * and attributes into bytes.
 */
public class MemcachedSessionManager extends ManagerBase {
    private static final Log LOG = LogFactory.getLog(MemcachedSessionManager.class);
    private static final int STOP_FLUSH_MILLIS = 5000;

    private final Map<String, String> attributes = new LinkedHashMap<>();
    private final Map<String, Boolean> storedAttributes = new ConcurrentHashMap<>();
    private final ManagerStatistics statistics = new ManagerStatistics(this);
    private final SessionCookies cookies = new SessionCookies();
    private final SerializationPolicy policy = new SerializationPolicy(LOG);
    private final Object loadLock = new Object();
    private String serializerClass = JavaSerializer.class.getName();
    private AttributeSerializer serializer = new JavaSerializer();
    private volatile long handle;
    private volatile boolean enabled;
    private boolean sticky = true;
    /** Non-sticky mode: what the request this thread serves holds. */
    private final ThreadLocal<RequestState> current = new ThreadLocal<>();
    /**
     * Non-sticky mode: requests between the valve and their end, by the request object that
     * Tomcat's request listeners see (an asynchronous request ends on another thread).
     */
    private final Map<ServletRequest, RequestState> inFlight = new ConcurrentHashMap<>();
    private boolean ignoresAnyUri;
    private int backupWaitMillis = -1;
    private Integer maxInactiveInterval;
    private ObjectName statisticsName;

    /**
     * Receives every {@code context.xml} attribute that has no setter of its own (Tomcat's
     * digester calls this): the session cookie attributes are kept for {@link SessionCookies}, the
     * serialization failure policies for {@link SerializationPolicy}, the others for the native
     * core; all are validated when the context starts.
     *
     * @param name attribute name
     * @param value attribute value
     * @return always true: unknown names are refused at start, with a message naming them
     */
    public boolean setProperty(String name, String value) {
        if (!cookies.accept(name, value) && !policy.accept(name, value)) {
            attributes.put(name, value);
        }
        return true;
    }

    /**
     * Chooses the {@link AttributeSerializer} by class name.
     *
     * @param className a class with a public no-argument constructor
     */
    public void setSerializer(String className) {
        this.serializerClass = className;
    }

    /** @return the attribute serializer's class name */
    public String getSerializer() {
        return serializerClass;
    }

    /** @return the native manager's handle, 0 while not running */
    long handle() {
        return handle;
    }

    /** @return this manager's statistics (also registered in JMX) */
    public ManagerStatisticsMBean getStatistics() {
        return statistics;
    }

    /** @return what happens to attributes that cannot be serialized or deserialized */
    SerializationPolicy policy() {
        return policy;
    }

    /** @return sessions tagged local ({@code serializationFailurePolicy=localSession}) */
    long localSessions() {
        return sessions.values().stream()
                .filter(s -> s instanceof MsmSession && ((MsmSession) s).isLocal()).count();
    }

    /** Non-sticky mode: the lock and the session of one request. */
    private static final class RequestState {
        final Request request;
        /** The session id the request carried, if any. */
        final String requested;
        long lock;
        MsmSession session;
        /** The request looked the requested session up in memcached (found or not). */
        boolean looked;
        /** An id the request looked up that memcached does not hold. */
        String missing;
        /** Reading the session from memcached failed (as opposed to: it does not exist). */
        boolean loadFailed;
        /** The session's id when the request began, if the request changed it. */
        String oldId;

        RequestState(Request request) {
            this.request = request;
            this.requested = request.getRequestedSessionId();
        }
    }

    /** @return whether sessions are sticky (kept in memory, backed up) or not (memcached is the store) */
    boolean isSticky() {
        return sticky;
    }

    /** @return true when sessions go to memcached (started, and {@code enabled}) */
    boolean distributing() {
        return handle != 0 && enabled;
    }

    @Override
    public String getName() {
        return "MemcachedSessionManager";
    }

    @Override
    protected void startInternal() throws LifecycleException {
        super.startInternal();
        Context context = getContext();
        String host = context.getParent() == null ? "" : context.getParent().getName();
        try {
            serializer = (AttributeSerializer) Class.forName(serializerClass, true,
                    MemcachedSessionManager.class.getClassLoader()).getConstructor().newInstance();
        } catch (ReflectiveOperationException | ClassCastException e) {
            throw new LifecycleException("invalid configuration: attribute `serializer` = `"
                    + serializerClass + "`: not an " + AttributeSerializer.class.getName()
                    + " with a public no-argument constructor: " + e, e);
        }
        if (serializer instanceof JavaSerializer) {
            // Tomcat's own allow-list of attribute value classes applies to deserialization.
            ((JavaSerializer) serializer).allowClasses(getSessionAttributeValueClassNamePattern(),
                    getWarnOnSessionAttributeFilterFailure());
        }
        try {
            cookies.apply(context, LOG);
            policy.start();
        } catch (IllegalArgumentException | IllegalStateException e) {
            LOG.error("memcached session manager of context [" + context.getName()
                    + "] not started: " + e.getMessage());
            throw new LifecycleException(e.getMessage(), e);
        }
        try {
            handle = Native.create(attributes.keySet().toArray(new String[0]),
                    attributes.values().toArray(new String[0]), host, context.getName());
        } catch (MsmException | LinkageError e) {
            LOG.error("memcached session manager of context [" + context.getName()
                    + "] not started: " + e.getMessage());
            throw new LifecycleException(e.getMessage(), e);
        }
        sticky = Native.sticky(handle);
        enabled = Native.enabled(handle);
        backupWaitMillis = Native.backupWaitMillis(handle);
        ignoresAnyUri = Native.ignoresAnyUri(handle);
        String lifetime = attributes.get("maxInactiveInterval");
        maxInactiveInterval = lifetime == null ? null : Integer.valueOf(lifetime.trim());
        registerStatistics(host, context.getName());
        context.getPipeline().addValve(new SessionBackupValve(this));
        if (!sticky) {
            listenForRequestEnds(context);
        }
        LOG.info("memcached session manager of context [" + context.getName() + "] started"
                + (enabled ? "" : " (disabled: sessions stay in memory)"));
        setState(LifecycleState.STARTING);
    }

    @Override
    protected void stopInternal() throws LifecycleException {
        setState(LifecycleState.STOPPING);
        long current = handle;
        if (current != 0) {
            // Sessions stay in memcached: another Tomcat, or this one restarted, takes them over.
            int pending = Native.flush(current, STOP_FLUSH_MILLIS);
            if (pending > 0) {
                LOG.warn(pending + " session backups were still running at stop");
            }
            handle = 0;
            Native.destroy(current);
        }
        unregisterStatistics();
        storedAttributes.clear();
        inFlight.clear();
        sessions.clear();
        super.stopInternal();
    }

    /**
     * Non-sticky mode: a request ends when Tomcat says so, after its error page and after its
     * asynchronous processing, both of which may use the session after the valve is done. The
     * listener goes first, so that on the request's end it runs after the application's.
     */
    private void listenForRequestEnds(Context context) {
        Object[] listeners = context.getApplicationEventListeners();
        Object[] withEnds = new Object[listeners.length + 1];
        withEnds[0] = new ServletRequestListener() {
            @Override
            public void requestInitialized(ServletRequestEvent event) {
                // A request whose end Tomcat never announced leaves nothing on this thread.
                current.remove();
            }

            @Override
            public void requestDestroyed(ServletRequestEvent event) {
                finishRequest(event.getServletRequest());
            }
        };
        System.arraycopy(listeners, 0, withEnds, 1, listeners.length);
        context.setApplicationEventListeners(withEnds);
    }

    private void registerStatistics(String host, String context) {
        try {
            statisticsName = new ObjectName("io.msm:type=MemcachedSessionManager,host="
                    + ObjectName.quote(host) + ",context=" + ObjectName.quote(context));
            ManagementFactory.getPlatformMBeanServer().registerMBean(statistics, statisticsName);
        } catch (JMException e) {
            LOG.warn("statistics not registered in JMX: " + e);
            statisticsName = null;
        }
    }

    private void unregisterStatistics() {
        if (statisticsName != null) {
            try {
                ManagementFactory.getPlatformMBeanServer().unregisterMBean(statisticsName);
            } catch (JMException e) {
                LOG.debug("statistics not unregistered: " + e);
            }
            statisticsName = null;
        }
    }

    void replaceMemcachedNodes(String memcachedNodes) {
        long current = handle;
        if (current == 0) {
            throw new IllegalStateException("the manager is not running");
        }
        Native.setMemcachedNodes(current, memcachedNodes);
        attributes.put("memcachedNodes", memcachedNodes);
    }

    @Override
    public void load() {
        // Sessions are loaded from memcached on demand, in findSession.
    }

    @Override
    public void unload() {
        // Sessions already live in memcached.
    }

    @Override
    public Session createEmptySession() {
        return new MsmSession(this);
    }

    @Override
    public Session createSession(String sessionId) {
        // Ids are always ours: node and route encoded, reserved in the cluster.
        Session session = super.createSession(null);
        if (maxInactiveInterval != null) {
            session.setMaxInactiveInterval(maxInactiveInterval);
        }
        RequestState state = current.get();
        if (state != null) {
            join(state, (MsmSession) session, true);
        }
        return session;
    }

    @Override
    protected String generateSessionId() {
        if (!distributing()) {
            return super.generateSessionId();
        }
        return Native.newSessionId(handle, getJvmRoute());
    }

    @Override
    public Session findSession(String id) throws IOException {
        Session session = super.findSession(id);
        if (sticky) {
            return session != null || id == null || !distributing() ? session
                    : loadFromMemcached(id);
        }
        RequestState state = current.get();
        if (state == null) {
            // Outside the valve (Tomcat's authenticator runs before it): only what this Tomcat
            // holds; the request reads memcached, under its lock, once it uses the session.
            return session;
        }
        boolean readHere = false;
        if (session == null && id != null && distributing() && !id.equals(state.missing)) {
            state.looked = true;
            session = loadFromMemcached(id);
            if (state.loadFailed) {
                // Not "no session": a new one would orphan the user's. The request fails (503).
                throw new SessionStoreUnavailableException(
                        "session " + redact(id) + ": the session store is not available");
            }
            if (session == null) {
                state.missing = id;
            } else {
                readHere = true;
                if (!session.getIdInternal().equals(id)) {
                    // It moved to its backup node, which is its primary now: new cookie.
                    state.request.changeSessionId(session.getIdInternal());
                }
            }
        }
        if (session instanceof MsmSession) {
            join(state, (MsmSession) session, readHere);
        }
        return session;
    }

    /**
     * Non-sticky mode: records that the current request uses this session. A session another
     * request of this Tomcat loaded is read again when this request holds the lock (it was
     * read before the lock was this request's).
     */
    private void join(RequestState state, MsmSession session, boolean readByThisRequest) {
        if (state.session == session) {
            return;
        }
        // The request's session, or a new one after the request invalidated it (a login does).
        if (state.session == null || !state.session.isLive()) {
            if (state.lock != 0 && !readByThisRequest && !session.isNew() && !session.isHeld()) {
                refresh(session, session.getIdInternal());
            }
            state.session = session;
            session.requests.incrementAndGet();
        }
    }

    /** Takes over a session this Tomcat does not hold (Tomcat failover, or a restart). */
    private Session loadFromMemcached(String id) {
        Object[] loaded;
        try {
            loaded = Native.load(handle, id);
        } catch (MsmInvalidIdException e) {
            return null;
        } catch (MsmCorruptException e) {
            // No usable copy anywhere (the core already tried the backup and the near cache):
            // the request gets a new session.
            LOG.warn("session " + redact(id) + " could not be loaded from memcached: "
                    + e.getMessage());
            return null;
        } catch (MsmException e) {
            // Unreachable, timed out, or an answer the client did not expect: the session may
            // well exist, so the request fails (503) rather than orphan it with a new one.
            LOG.warn("session " + redact(id) + " could not be loaded from memcached: "
                    + e.getMessage());
            RequestState state = current.get();
            if (state != null) {
                state.loadFailed = true;
            }
            return null;
        }
        if (loaded == null) {
            return null;
        }
        MsmSession session = (MsmSession) createEmptySession();
        if (!fill(session, loaded, id)) {
            // deserializationFailurePolicy=dropSession: as if memcached did not hold it.
            return null;
        }
        String currentId = loaded[0] != null ? (String) loaded[0] : id;
        synchronized (loadLock) {
            Session existing = sessions.get(currentId);
            if (existing != null) {
                return existing;
            }
            session.setId(currentId, false);
        }
        session.activate();
        if (sticky) {
            statistics.tomcatFailovers.increment();
        }
        return session;
    }

    /**
     * Puts a loaded session's times and attributes into a session object. An attribute that
     * cannot be deserialized (its class is missing, its bytes no longer read) is left out, or,
     * with {@code deserializationFailurePolicy=dropSession}, the session object is left as it was.
     *
     * @return false when the session object was left as it was
     */
    private boolean fill(MsmSession session, Object[] loaded, String id) {
        ClassLoader loader = getContext().getLoader() == null
                ? Thread.currentThread().getContextClassLoader()
                : getContext().getLoader().getClassLoader();
        Map<String, Object> restored = new LinkedHashMap<>();
        boolean complete = true;
        for (int i = 4; i + 1 < loaded.length; i += 2) {
            String name = (String) loaded[i];
            try {
                restored.put(name, serializer.deserialize(name, (byte[]) loaded[i + 1], loader));
            } catch (Exception | LinkageError e) {
                statistics.deserializationFailures.increment();
                policy.deserializationFailed(id, name, e);
                complete = false;
            }
        }
        if (!complete && policy.dropsSession()) {
            return false;
        }
        long[] times = (long[]) loaded[1];
        session.setNew(false);
        session.setValid(true);
        session.setMaxInactiveInterval((int) times[2]);
        session.restoreTimes(times[0], times[1]);
        session.attributeMap().clear();
        restored.forEach(session::restoreAttribute);
        return true;
    }

    /**
     * At the start of a request: gives the requested session the id it must have here (this
     * Tomcat's route after a Tomcat failover, another node after a memcached failover) and sends
     * the new cookie.
     */
    void routeRequest(Request request) throws IOException {
        String requested = request.getRequestedSessionId();
        if (requested == null) {
            return;
        }
        String routed = routedId(requested);
        if (routed == null) {
            return;
        }
        if (sessions.containsKey(routed)) {
            // A parallel request of this session already gave it its new id here.
            request.changeSessionId(routed);
            return;
        }
        Session session = findSession(requested);
        if (session == null) {
            return;
        }
        changeSessionId(session, routed);
        request.changeSessionId(routed);
    }

    @Override
    protected void changeSessionId(Session session, String newId,
            boolean notifySessionListeners, boolean notifyContainerListeners) {
        String oldId = session.getIdInternal();
        super.changeSessionId(session, newId, notifySessionListeners, notifyContainerListeners);
        if (!distributing() || oldId == null) {
            return;
        }
        RequestState state = current.get();
        if (state != null && state.session == session) {
            // Non-sticky: the old copies (and the lock this request holds under the old id) go
            // once the session is stored under its new id, at the request's end.
            if (state.oldId == null) {
                state.oldId = oldId;
            }
            return;
        }
        idChanged(oldId, newId);
    }

    private void idChanged(String oldId, String newId) {
        try {
            Native.idChanged(handle, oldId, newId);
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("copies of session " + redact(oldId) + " could not be removed: "
                    + e.getMessage());
        }
    }

    @Override
    public void remove(Session session, boolean update) {
        super.remove(session, update);
        if (!distributing() || !(session instanceof MsmSession)
                || !((MsmSession) session).isExpiring()) {
            // Not ending (the id changes): changeSessionId handles memcached.
            return;
        }
        deleteCopies(session);
    }

    /**
     * Deletes a session's memcached copies: every one when it is still in use (invalidated, or
     * kept local from now on), else unless another Tomcat wrote a newer version meanwhile.
     */
    private void deleteCopies(Session session) {
        String id = session.getIdInternal();
        try {
            Native.ended(handle, id, session.getThisAccessedTimeInternal(),
                    session.getMaxInactiveInterval());
        } catch (MsmInvalidIdException e) {
            // Not one of ours: nothing in memcached.
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("memcached copies of session " + redact(id) + " could not be removed: "
                    + e.getMessage());
        }
    }

    /**
     * A session id as logs show it: ids are login tokens, so only their first six characters.
     *
     * @param id a session id
     * @return the first six characters and an ellipsis
     */
    static String redact(String id) {
        return id == null ? "null" : id.substring(0, Math.min(6, id.length())) + "\u2026";
    }

    boolean ignoresUri(String uri) {
        boolean ignored = ignoresAnyUri && Native.ignoresUri(handle, uri);
        if (ignored) {
            statistics.requestsIgnored.increment();
        }
        return ignored;
    }

    /** A session's attributes as the core stores them. */
    private static final class Serialized {
        final String[] names;
        final byte[][] values;

        Serialized(List<String> names, List<byte[]> values) {
            this.names = names.toArray(new String[0]);
            this.values = values.toArray(new byte[0][]);
        }
    }

    /**
     * Serializes the attributes that {@code sessionAttributeFilter} lets through. An attribute
     * that cannot be serialized goes to {@link SerializationPolicy}: left out
     * ({@code dropAttribute}), or the session is not stored (null): the request failed
     * ({@code fail}), the session became local ({@code localSession}, its copies are deleted),
     * or distribution stopped ({@code stopDistribution}).
     */
    private Serialized serialize(Request request, MsmSession session) {
        List<String> names = new ArrayList<>();
        List<byte[]> values = new ArrayList<>();
        long started = System.nanoTime();
        for (Map.Entry<String, Object> attribute : session.attributeMap().entrySet()) {
            String name = attribute.getKey();
            if (!storedAttributes.computeIfAbsent(name, n -> Native.storesAttribute(handle, n))) {
                continue;
            }
            Object value = attribute.getValue();
            try {
                values.add(serializer.serialize(name, value));
                names.add(name);
            } catch (IOException | RuntimeException e) {
                statistics.serializationFailures.increment();
                SerializationPolicy.Action action =
                        policy.serializationFailed(request, session, name, value, e);
                if (action == SerializationPolicy.Action.DROP_ATTRIBUTE) {
                    continue;
                }
                session.markChanged();
                statistics.backupsNotSerialized.increment();
                if (action == SerializationPolicy.Action.LOCAL_SESSION) {
                    deleteCopies(session);
                }
                return null;
            }
        }
        statistics.serialization.since(started);
        return new Serialized(names, values);
    }

    /**
     * Non-sticky request start: takes the session lock when {@code lockingMode} says so. The
     * session is read from memcached only when the request uses it ({@link #findSession}).
     *
     * @return false when the request is refused (the lock was not acquired and
     *     {@code lockFailure="refuse"}): 503 was sent
     */
    boolean startRequest(Request request, Response response) throws IOException {
        RequestState state = new RequestState(request);
        String requested = state.requested;
        // Read before the request's state is set, so only what this Tomcat holds: Tomcat's
        // authenticator may have handed the request a session that a concurrent request of
        // this Tomcat uses, and the request keeps it.
        Session held = requested == null ? null : request.getSessionInternal(false);
        current.set(state);
        inFlight.put(request.getRequest(), state);
        if (requested == null) {
            return true;
        }
        if (Native.locksRequest(handle, request.getDecodedRequestURI())) {
            try {
                state.lock = Native.lockForRequest(handle, requested);
            } catch (MsmLockTimeoutException e) {
                current.remove();
                inFlight.remove(request.getRequest());
                response.sendError(HttpServletResponse.SC_SERVICE_UNAVAILABLE,
                        "the session is busy; try again");
                return false;
            } catch (MsmInvalidIdException e) {
                // A forged or foreign cookie: nothing to lock.
            } catch (MsmException e) {
                LOG.warn("session " + redact(requested) + " not locked: " + e.getMessage());
            }
        }
        if (held instanceof MsmSession) {
            join(state, (MsmSession) held, false);
        } else if (routedId(requested) != null) {
            // Its node is down: move it to its backup node now, while the new cookie can still
            // be sent.
            findSession(requested);
        }
        return true;
    }

    /** @return the id the requested session must have here, null when it is right as it is */
    private String routedId(String requested) {
        try {
            return Native.routeRequest(handle, requested, getJvmRoute());
        } catch (MsmInvalidIdException e) {
            return null;
        }
    }

    private void refresh(MsmSession session, String id) {
        try {
            Object[] loaded = Native.load(handle, id);
            if (loaded != null) {
                // With deserializationFailurePolicy=dropSession, a copy that does not read leaves
                // the session as this Tomcat holds it.
                fill(session, loaded, id);
            }
        } catch (MsmException e) {
            LOG.warn("session " + redact(id) + " not read again under its lock: " + e.getMessage());
        }
    }

    /**
     * Non-sticky: an asynchronous dispatch of a request that started earlier runs with that
     * request's state.
     */
    void resumeRequest(Request request) {
        RequestState state = inFlight.get(request.getRequest());
        if (state != null) {
            current.set(state);
        }
    }

    /**
     * Non-sticky: the valve is done with the request. A request that met an unreachable session
     * store is answered 503; an asynchronous one leaves this thread, its state waiting for its
     * end ({@link #finishRequest}).
     */
    void leaveValve(Request request) {
        RequestState state = current.get();
        if (state == null) {
            return;
        }
        if (state.loadFailed && !request.getResponse().isCommitted()) {
            sendUnavailable(request);
        }
        if (request.isAsync()) {
            current.remove();
        }
    }

    /**
     * Non-sticky request end, after its error page and asynchronous processing: the last request
     * of this Tomcat using the session hands it to the core (written if changed, else its expiry
     * renewed), the lock is released, and the session leaves Tomcat's memory.
     */
    private void finishRequest(ServletRequest servletRequest) {
        RequestState state = inFlight.remove(servletRequest);
        if (state == null) {
            return;
        }
        if (current.get() == state) {
            current.remove();
        }
        Request request = state.request;
        MsmSession session = state.session;
        try {
            if (session == null && state.requested != null && !state.looked
                    && !policy.distributionStopped()) {
                // The request carried the session's id but never used the session.
                accessed(state);
            }
            if (session != null && session.requests.decrementAndGet() == 0) {
                try {
                    if (session.isValid() && distributes(session)
                            && store(request, session, state.lock)) {
                        state.lock = 0;
                    }
                } finally {
                    if (session.isValid() && !distributes(session)) {
                        // Local, or distribution stopped: this Tomcat keeps it.
                        session.hold();
                    } else {
                        super.remove(session, false);
                    }
                }
                if (state.oldId != null) {
                    releaseLock(state);
                    idChanged(state.oldId, session.getIdInternal());
                }
            }
        } finally {
            releaseLock(state);
        }
    }

    /** @return false for a session kept out of memcached: local, or distribution stopped */
    private boolean distributes(MsmSession session) {
        return !session.isLocal() && !policy.distributionStopped();
    }

    /** The request met an unreachable session store: 503, not the servlet's 500. */
    private static void sendUnavailable(Request request) {
        request.removeAttribute(RequestDispatcher.ERROR_EXCEPTION);
        try {
            request.getResponse().sendError(HttpServletResponse.SC_SERVICE_UNAVAILABLE,
                    "the session store is not available; try again");
        } catch (IOException | IllegalStateException e) {
            LOG.debug("503 not sent: " + e);
        }
    }

    /** Renews a session the request carried but did not use, and releases the lock. */
    private void accessed(RequestState state) {
        long lock = state.lock;
        state.lock = 0;
        try {
            Native.accessed(handle, state.requested, lock, state.request.getDecodedRequestURI());
        } catch (MsmInvalidIdException e) {
            // A forged or foreign cookie: nothing in memcached.
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("session " + redact(state.requested) + " not renewed: " + e.getMessage());
        }
    }

    private void releaseLock(RequestState state) {
        if (state.lock != 0) {
            long lock = state.lock;
            state.lock = 0;
            try {
                Native.unlock(handle, lock);
            } catch (MsmException | IllegalArgumentException e) {
                LOG.warn("session lock not released: " + e.getMessage());
            }
        }
    }

    /**
     * Hands the session and the request's lock to the core.
     *
     * @return whether the lock went with it (the core released it)
     */
    private boolean store(Request request, MsmSession session, long lock) {
        String id = session.getIdInternal();
        Serialized content = serialize(request, session);
        if (content == null) {
            return false;
        }
        statistics.requestsWithSession.increment();
        try {
            String moved = Native.finish(handle, id, session.getCreationTimeInternal(),
                    session.getThisAccessedTimeInternal(), session.getMaxInactiveInterval(), null,
                    null, content.names, content.values, lock, request.getDecodedRequestURI());
            if (moved != null && !request.getResponse().isCommitted()) {
                request.changeSessionId(moved);
            }
        } catch (MsmInvalidIdException e) {
            // A session created while disabled: not ours.
        } catch (MsmException | IllegalArgumentException e) {
            statistics.backupCallFailures.increment();
            LOG.warn("session " + redact(id) + " not stored: " + e.getMessage());
        }
        return true;
    }

    /** At the end of a request: hands the session to the core, which writes it if it changed. */
    void backupAfterRequest(Request request) {
        Session found = request.getSessionInternal(false);
        if (!(found instanceof MsmSession) || !found.isValid()) {
            statistics.requestsWithoutSession.increment();
            return;
        }
        statistics.requestsWithSession.increment();
        MsmSession session = (MsmSession) found;
        if (!distributes(session)) {
            // A stopped distribution resumes with a full backup.
            session.markChanged();
            return;
        }
        String id = session.getIdInternal();
        try {
            if (!session.takeChanged() && Native.backupUnchanged(handle, id,
                    session.getMaxInactiveInterval(), backupWaitMillis) >= 0) {
                return;
            }
        } catch (MsmInvalidIdException e) {
            return;
        } catch (MsmException | IllegalArgumentException e) {
            // IllegalArgumentException: the manager stopped while this request ran.
            LOG.warn("session " + redact(id) + " not backed up: " + e.getMessage());
            return;
        }
        Serialized content = serialize(request, session);
        if (content == null) {
            return;
        }
        try {
            Native.backup(handle, session.getIdInternal(), session.getCreationTimeInternal(),
                    session.getThisAccessedTimeInternal(), session.getMaxInactiveInterval(), null,
                    null, content.names, content.values, backupWaitMillis);
        } catch (MsmInvalidIdException e) {
            // A session Tomcat created with an id that is not ours (disabled at the time).
        } catch (MsmException | IllegalArgumentException e) {
            session.markChanged();
            statistics.backupCallFailures.increment();
            LOG.warn("session " + redact(id) + " not backed up: " + e.getMessage());
        }
    }
}
