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
import org.apache.catalina.Valve;
import org.apache.catalina.connector.Request;
import org.apache.catalina.connector.Response;
import org.apache.catalina.session.ManagerBase;
import org.apache.catalina.util.ServerInfo;
import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;
import org.apache.tomcat.util.descriptor.web.LoginConfig;

import io.msm.Ended;
import io.msm.Expired;
import io.msm.Lookup;
import io.msm.MsmException;
import io.msm.MsmInvalidIdException;
import io.msm.MsmLockTimeoutException;
import io.msm.MsmRequest;
import io.msm.Native;
import io.msm.Pending;
import io.msm.SessionEvent;

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
 *
 * <p>Tomcat's container login (principal and authentication type) travels with the session
 * ({@link ContainerLogin}); Tomcat's {@code persistAuthentication="false"} keeps it local.
 */
public class MemcachedSessionManager extends ManagerBase {
    private static final Log LOG = LogFactory.getLog(MemcachedSessionManager.class);
    private static final int STOP_FLUSH_MILLIS = 5000;
    /**
     * A class of the servlet API this jar is built for: the Tomcat 9 build has it as
     * {@code javax.servlet}, like every other reference to the servlet API.
     */
    private static final String SERVLET_API = "jakarta.servlet.ServletRequest";

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
    /** What the request this thread serves holds. */
    private final ThreadLocal<RequestState> current = new ThreadLocal<>();
    /**
     * Non-sticky mode: requests between the valve and their end, by the request object that
     * Tomcat's request listeners see (an asynchronous request ends on another thread).
     */
    private final Map<ServletRequest, RequestState> inFlight = new ConcurrentHashMap<>();
    private Integer maxInactiveInterval;
    private ObjectName statisticsName;
    private SessionBackupValve valve = new SessionBackupValve(this);
    /** With {@code sessionEvents="broadcast"}, while running: publishes and hears events. */
    private volatile Broadcaster broadcaster;

    /** A manager carrying Tomcat's container login with the session (persistAuthentication). */
    public MemcachedSessionManager() {
        setPersistAuthentication(true);
    }

    /**
     * Joins the context and puts the manager's valve into its pipeline at once, ahead of the
     * authenticator that Tomcat adds when the context starts: the authenticator then reads a
     * non-sticky session inside the request's lifecycle and finds its login. A context without
     * a login method gets the valve after its authenticator at start ({@link #startInternal}).
     *
     * @param context the context, or null when the manager leaves it
     */
    @Override
    public void setContext(Context context) {
        super.setContext(context);
        placeValve();
    }

    private void placeValve() {
        Context context = getContext();
        if (context == null || wrongLine() != null) {
            // Without this Tomcat's servlet API the valve cannot even start: start() says why.
            return;
        }
        for (Valve present : context.getPipeline().getValves()) {
            if (present == valve) {
                return;
            }
        }
        context.getPipeline().addValve(valve);
    }

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

    /** A request between its begin and its end in the core, and the session it uses. */
    private static final class RequestState {
        final Request request;
        final MsmRequest core;
        /** Non-sticky: the session the request uses. */
        MsmSession session;
        /** Non-sticky: reading the session failed (as opposed to: it does not exist). */
        boolean loadFailed;
        /** Non-sticky: the session's id when the request began, if the request changed it. */
        String oldId;

        RequestState(Request request, MsmRequest core) {
            this.request = request;
            this.core = core;
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

    /**
     * Whether this Tomcat has the servlet API this jar is built for.
     *
     * @return null when it has, else the error naming the jar to use instead
     */
    static String wrongLine() {
        try {
            Class.forName(SERVLET_API, false, MemcachedSessionManager.class.getClassLoader());
            return null;
        } catch (ClassNotFoundException | LinkageError e) {
            boolean jakarta = SERVLET_API.startsWith("jakarta.");
            return "this jar, " + (jakarta ? "msm-tomcat10.jar" : "msm-tomcat9.jar")
                    + ", is for " + (jakarta ? "Tomcat 10.1 and 11" : "Tomcat 9") + ", but "
                    + ServerInfo.getServerInfo() + " has no " + SERVLET_API + ": use "
                    + (jakarta ? "msm-tomcat9.jar" : "msm-tomcat10.jar") + " instead";
        }
    }

    @Override
    protected void startInternal() throws LifecycleException {
        String wrongLine = wrongLine();
        if (wrongLine != null) {
            LOG.error("memcached session manager of context [" + getContext().getName()
                    + "] not started: " + wrongLine);
            throw new LifecycleException(wrongLine);
        }
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
        String lifetime = attributes.get("maxInactiveInterval");
        maxInactiveInterval = lifetime == null ? null : Integer.valueOf(lifetime.trim());
        registerStatistics(host, context.getName());
        placeValve();
        if (!usesContainerLogin(context)) {
            // No login to find: the valve goes after the authenticator (which asks every request
            // for its session), so a non-sticky request that never uses its session reads none.
            context.getPipeline().removeValve(valve);
            valve = new SessionBackupValve(this);
            context.getPipeline().addValve(valve);
        }
        if (!sticky) {
            listenForRequestEnds(context);
        }
        long pollMillis = Native.broadcastPollInterval(handle);
        if (enabled && pollMillis > 0) {
            broadcaster = new Broadcaster(this, handle, pollMillis,
                    statistics.broadcastEventsDropped);
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
            if (sticky && distributing()) {
                passivateAtStop();
            }
            Broadcaster stopping = broadcaster;
            broadcaster = null;
            if (stopping != null) {
                stopping.stop();
            }
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
     * Sticky: this Tomcat's sessions leave its memory for memcached, where another Tomcat (or
     * this one restarted) takes them over. Each session it holds and distributes (not local,
     * distribution not stopped, not timed out or ending) is passivated (its attributes'
     * {@code sessionWillPassivate}), then written when it may differ from its last backup (as
     * a request's backup decides), so that memcached keeps what the passivation left.
     */
    private void passivateAtStop() {
        long now = System.currentTimeMillis();
        for (Session found : findSessions()) {
            if (!(found instanceof MsmSession)) {
                continue;
            }
            MsmSession session = (MsmSession) found;
            int lifetime = session.getMaxInactiveInterval();
            boolean timedOut = lifetime > 0
                    && now - session.getThisAccessedTimeInternal() >= lifetime * 1000L;
            if (!session.isLive() || session.isExpiring() || timedOut || !distributes(session)) {
                continue;
            }
            session.passivate();
            if (session.takeChangedAtStop()) {
                storeAtStop(session);
            }
        }
    }

    /** Sticky: writes a session at the manager's stop, as the end of a request would. */
    private void storeAtStop(MsmSession session) {
        RequestState state;
        try {
            state = new RequestState(null, Native.begin(handle, null, "", getJvmRoute()));
        } catch (MsmException | IllegalArgumentException e) {
            session.markChanged();
            LOG.warn("session " + redact(session.getIdInternal()) + " not stored at stop: "
                    + e.getMessage());
            return;
        }
        Serialized content = serialize(null, session);
        end(state, content == null ? Native.OUTCOME_NOT_STORED : Native.OUTCOME_USED, session,
                content);
    }

    /** Whether the context has a login method (FORM, BASIC, ...), whose login the session keeps. */
    private static boolean usesContainerLogin(Context context) {
        LoginConfig login = context.getLoginConfig();
        return login != null && login.getAuthMethod() != null
                && !login.getAuthMethod().equalsIgnoreCase("NONE");
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
        Pending<Void> done = new Pending<>();
        Native.setMemcachedNodes(current, memcachedNodes, done);
        done.await();
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
        if (!sticky && state != null && joins(state, (MsmSession) session)) {
            adopt(state, (MsmSession) session);
        }
        return session;
    }

    @Override
    protected String generateSessionId() {
        if (!distributing()) {
            return super.generateSessionId();
        }
        RequestState state = current.get();
        Pending<String> id = new Pending<>();
        Native.newSessionId(handle, state == null ? 0 : state.core.handle(), getJvmRoute(), id);
        return id.await();
    }

    @Override
    public Session findSession(String id) throws IOException {
        Session session = super.findSession(id);
        if (session != null && sticky || id == null || !distributing()) {
            return session;
        }
        RequestState state = current.get();
        if (sticky) {
            return loadFromMemcached(state, id);
        }
        if (state == null) {
            // Outside the valve (a valve placed ahead of it): only what this Tomcat holds; the
            // request reads memcached, under its lock, once it uses the session.
            return session;
        }
        if (session instanceof MsmSession) {
            join(state, (MsmSession) session);
            return session;
        }
        if (session != null) {
            return session;
        }
        session = loadFromMemcached(state, id);
        if (state.loadFailed) {
            // Not "no session": a new one would orphan the user's. The request fails (503).
            throw new SessionStoreUnavailableException(
                    "session " + redact(id) + ": the session store is not available");
        }
        if (session != null && !session.getIdInternal().equals(id)) {
            // It moved to its second copy's node, which is its primary now: new cookie.
            state.request.changeSessionId(session.getIdInternal());
        }
        return session;
    }

    /**
     * Non-sticky mode: whether a session this Tomcat holds becomes the current request's: it
     * uses none yet, or a new one after it invalidated its own (a login does).
     */
    private static boolean joins(RequestState state, MsmSession session) {
        return state.session != session && (state.session == null || !state.session.isLive());
    }

    /** Non-sticky mode: the current request uses a copy it created or read itself. */
    private static void adopt(RequestState state, MsmSession session) {
        session.enter();
        state.session = session;
    }

    /**
     * Non-sticky mode: records that the current request uses a session this Tomcat holds, which
     * another request read. The core reads it again when the request holds the lock (it was
     * read before the lock was this request's), or when its last request handed it back
     * meanwhile.
     */
    private void join(RequestState state, MsmSession session) {
        if (!joins(state, session)) {
            return;
        }
        if (session.enter()) {
            refill(state, session, session.isNew() || session.isHeld() ? Native.HOST_COPY_HELD
                    : Native.HOST_COPY_SHARED);
        } else {
            session.reenter(() -> {
                refill(state, session, Native.HOST_COPY_NONE);
                // Its hand-back passivated it: in use here again.
                session.activateIfPassivated();
            });
        }
        state.session = session;
    }

    /** Looks up a session this Tomcat holds as {@code hostCopy}; fills it with what was read. */
    private void refill(RequestState state, MsmSession session, int hostCopy) {
        Lookup found = lookup(state, session.getIdInternal(), hostCopy);
        if (found != null && found.kind() == Lookup.Kind.FOUND) {
            // With deserializationFailurePolicy=dropSession, a copy that does not read leaves
            // the session as this Tomcat holds it.
            fill(session, found, session.getIdInternal());
        }
    }

    /** Asks the core for a session a request (or, null, none) uses; null when the core failed. */
    private Lookup lookup(RequestState state, String id, int hostCopy) {
        Pending<Lookup> found = new Pending<>();
        try {
            if (state == null) {
                Native.load(handle, id, found);
            } else {
                Native.lookup(handle, state.core.handle(), id, hostCopy, found);
            }
            return found.await();
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("session " + redact(id) + " not looked up: " + e.getMessage());
            return null;
        }
    }

    /**
     * Takes over a session this Tomcat does not hold (Tomcat failover, or a restart; non-sticky,
     * any session a request uses). Whether a failed read means "no session" or "refuse the
     * request" is the core's answer.
     */
    private Session loadFromMemcached(RequestState state, String id) {
        Lookup found = lookup(state, id, Native.HOST_COPY_NONE);
        if (found == null || found.kind() == Lookup.Kind.UNAVAILABLE) {
            if (state != null && !sticky) {
                state.loadFailed = true;
            }
            return null;
        }
        if (found.kind() != Lookup.Kind.FOUND) {
            return null;
        }
        MsmSession session = (MsmSession) createEmptySession();
        if (!fill(session, found, id)) {
            // deserializationFailurePolicy=dropSession: as if memcached did not hold it.
            return null;
        }
        String currentId = found.relocatedId() != null ? found.relocatedId() : id;
        // Non-sticky: the request uses the copy it returns (each copy is handed back by the
        // last request using it, with the read it derives from).
        boolean joins = !sticky && state != null && joins(state, session);
        synchronized (loadLock) {
            Session existing = sessions.get(currentId);
            if (existing != null && !joins) {
                return existing;
            }
            if (existing instanceof MsmSession && ((MsmSession) existing).enter()) {
                // Another request of this Tomcat read it meanwhile.
                state.session = (MsmSession) existing;
                return existing;
            }
            // None, or one its last request handed back meanwhile: this read replaces it.
            if (joins) {
                adopt(state, session);
            }
            session.setId(currentId, false);
        }
        session.activate();
        if (sticky) {
            statistics.tomcatFailovers.increment();
        }
        return session;
    }

    /** The web application's class loader, which deserializes attribute values. */
    private ClassLoader webappLoader() {
        return getContext().getLoader() == null
                ? Thread.currentThread().getContextClassLoader()
                : getContext().getLoader().getClassLoader();
    }

    /**
     * Puts a loaded session's times and attributes into a session object. An attribute that
     * cannot be deserialized (its class is missing, its bytes no longer read) is left out, or,
     * with {@code deserializationFailurePolicy=dropSession}, the session object is left as it was.
     *
     * @return false when the session object was left as it was
     */
    private boolean fill(MsmSession session, Lookup loaded, String id) {
        ClassLoader loader = webappLoader();
        Map<String, Object> restored = new LinkedHashMap<>();
        ContainerLogin login = null;
        boolean complete = true;
        String[] names = loaded.names();
        byte[][] values = loaded.values();
        for (int i = 0; i < names.length; i++) {
            String name = names[i];
            try {
                if (name.equals(ContainerLogin.ATTRIBUTE)) {
                    login = ContainerLogin.read(values[i], loader);
                    continue;
                }
                restored.put(name, serializer.deserialize(name, values[i], loader));
            } catch (Exception | LinkageError e) {
                statistics.deserializationFailures.increment();
                policy.deserializationFailed(id, name, e);
                complete = false;
            }
        }
        if (!complete && policy.dropsSession()) {
            return false;
        }
        session.derivesFrom(loaded.read());
        session.setNew(false);
        session.setValid(true);
        session.restoreMaxInactiveInterval(loaded.maxInactiveInterval());
        session.restoreTimes(loaded.creationTime(), loaded.lastAccessedTime());
        session.attributeMap().clear();
        restored.forEach(session::restoreAttribute);
        if (getPersistAuthentication()) {
            ContainerLogin.apply(session, login);
        }
        return true;
    }

    /**
     * Sticky: at the start of a request, gives the requested session the id the core says it
     * must have here (this Tomcat's route after a Tomcat failover, another node after a memcached
     * failover) and sends the new cookie.
     */
    private void routeRequest(RequestState state) throws IOException {
        String routed = state.core.sessionId();
        if (!state.core.newCookie()) {
            return;
        }
        Request request = state.request;
        if (sessions.containsKey(routed)) {
            // A parallel request of this session already gave it its new id here.
            request.changeSessionId(routed);
            return;
        }
        Session session = findSession(request.getRequestedSessionId());
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
        if (!sticky) {
            // The old copies (and the lock this request holds under the old id) go once the
            // session is stored under its new id, at the request's end.
            RequestState state = current.get();
            if (state != null && state.session == session && state.oldId == null) {
                state.oldId = oldId;
            }
            return;
        }
        idChanged(oldId, newId);
    }

    private void idChanged(String oldId, String newId) {
        try {
            Pending<Void> done = new Pending<>();
            Native.idChanged(handle, oldId, newId, done);
            done.await();
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("copies of session " + redact(oldId) + " could not be removed: "
                    + e.getMessage());
        }
    }

    @Override
    public void remove(Session session, boolean update) {
        if (session instanceof MsmSession && ((MsmSession) session).isSweptExpired()) {
            // Never among this manager's sessions (one of the same id may be), copies gone.
            if (update) {
                expiredSessions.incrementAndGet();
            }
            return;
        }
        super.remove(session, update);
        if (!distributing() || !(session instanceof MsmSession)
                || !((MsmSession) session).isExpiring()) {
            // Not ending (the id changes): changeSessionId handles memcached.
            return;
        }
        deleteCopies(session);
    }

    /**
     * Whether this Tomcat announces the end of a session it holds (fires its listeners): the
     * core's answer, asked before the listeners run (see {@link Native#ending}). A session kept
     * out of memcached, or one the core cannot tell about, is announced.
     *
     * @param session a session about to expire or be invalidated
     * @return false when its end was announced elsewhere (or will be, by the Tomcat that took it
     *     over)
     */
    boolean announcesEnd(MsmSession session) {
        if (!distributing() || session.isLocal()) {
            return true;
        }
        String id = session.getIdInternal();
        try {
            Pending<Boolean> announce = new Pending<>();
            Native.ending(handle, id, session.getThisAccessedTimeInternal(),
                    session.getMaxInactiveInterval(), announce);
            return announce.await();
        } catch (MsmInvalidIdException e) {
            // Not one of ours: nothing in memcached.
            return true;
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("session " + redact(id) + ": whether its end was announced elsewhere is "
                    + "unknown, announced here: " + e.getMessage());
            return true;
        }
    }

    /**
     * Tomcat's periodic expiry ({@code processExpires}, every {@code backgroundProcessorDelay}
     * times {@code processExpiresFrequency} seconds), then, with {@code sessionEvents="expiry"},
     * the sessions that ended by expiry anywhere in the cluster that the core hands to this
     * Tomcat: each is announced as Tomcat's own expiry would (see {@link #announceExpired}).
     */
    @Override
    public void processExpires() {
        super.processExpires();
        if (distributing()) {
            announceExpired();
        }
    }

    /**
     * Fires Tomcat's end of session for each session the core handed over as expired, with its
     * last stored attributes (deserialized with the serializer and policies of any read):
     * {@code sessionDestroyed}, then each attribute's {@code valueUnbound} and
     * {@code attributeRemoved}. The session never joins this manager's sessions and its end
     * touches memcached no more (the sweep removed its copies).
     */
    private void announceExpired() {
        Expired[] expired;
        try {
            Pending<Expired[]> swept = new Pending<>();
            Native.expiredSessions(handle, swept);
            expired = swept.await();
        } catch (MsmException | IllegalArgumentException e) {
            LOG.warn("expired sessions not swept: " + e.getMessage());
            return;
        }
        for (Expired one : expired) {
            MsmSession session = (MsmSession) createEmptySession();
            if (!fill(session, one.session(), one.id())) {
                LOG.warn("session " + redact(one.id()) + " expired, and its end is not announced:"
                        + " its attributes do not read (deserializationFailurePolicy=dropSession)");
                continue;
            }
            session.sweptExpired(one.id());
            session.expire(true);
        }
    }

    /**
     * With {@code sessionEvents="broadcast"}: a session event this Tomcat's listeners heard
     * (or, for a destroyed session, would have), to be published to the other Tomcats. The
     * value is serialized only when values are broadcast; one that does not serialize is sent
     * without value.
     *
     * @param kind what happened
     * @param session the session
     * @param name the attribute's name, for attribute events
     * @param value the attribute's value after the event, for added and replaced
     */
    void heardHere(SessionEvent.Kind kind, MsmSession session, String name, Object value) {
        Broadcaster current = broadcaster;
        if (current == null || !distributing()) {
            return;
        }
        byte[] bytes = null;
        if (value != null && current.sendsValues()) {
            try {
                bytes = serializer.serialize(name, value);
            } catch (IOException | RuntimeException e) {
                LOG.debug("attribute " + name + " broadcast without value: " + e);
            }
        }
        current.heardHere(new SessionEvent(kind, session.getIdInternal(), name, bytes));
    }

    /**
     * Deserializes the value of an attribute event heard from another Tomcat with the
     * serializer and class loader of any read.
     *
     * @return the value, or null (counted, logged) when it does not read
     */
    Object deserializeHeard(String id, String name, byte[] value) {
        try {
            return serializer.deserialize(name, value, webappLoader());
        } catch (Exception | LinkageError e) {
            statistics.deserializationFailures.increment();
            LOG.warn("broadcast value of attribute " + name + " of session " + redact(id)
                    + " does not read: " + e);
            return null;
        }
    }

    /**
     * A session object standing for a session another Tomcat told about: its id, and the
     * attribute {@code name} with {@code value} when given. It never joins this manager's
     * sessions.
     */
    MsmSession standIn(String id, String name, Object value) {
        MsmSession session = (MsmSession) createEmptySession();
        session.standIn(id);
        if (name != null && value != null) {
            session.restoreAttribute(name, value);
        }
        return session;
    }

    /**
     * Deletes a session's memcached copies: every one when it is still in use (invalidated, or
     * kept local from now on), else unless another Tomcat wrote a newer version meanwhile.
     */
    private void deleteCopies(Session session) {
        String id = session.getIdInternal();
        try {
            Pending<Void> done = new Pending<>();
            Native.ended(handle, id, session.getThisAccessedTimeInternal(),
                    session.getMaxInactiveInterval(), done);
            done.await();
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
     * or distribution stopped ({@code stopDistribution}). {@code request} is null when the
     * manager stores the session at its stop.
     */
    private Serialized serialize(Request request, MsmSession session) {
        List<String> names = new ArrayList<>();
        List<byte[]> values = new ArrayList<>();
        long started = System.nanoTime();
        for (Map.Entry<String, Object> attribute : session.attributeMap().entrySet()) {
            String name = attribute.getKey();
            if (name.equals(ContainerLogin.ATTRIBUTE)
                    || !storedAttributes.computeIfAbsent(name, n -> Native.storesAttribute(handle, n))) {
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
        if (getPersistAuthentication()) {
            try {
                byte[] login = ContainerLogin.serialize(session);
                if (login != null) {
                    names.add(ContainerLogin.ATTRIBUTE);
                    values.add(login);
                }
            } catch (IOException e) {
                statistics.serializationFailures.increment();
                LOG.warn("session " + redact(session.getIdInternal())
                        + ": the container login is not carried to other Tomcats: " + e);
            }
        }
        statistics.serialization.since(started);
        return new Serialized(names, values);
    }

    /**
     * A request enters the valve: the core begins it (routing its session id, taking the
     * session lock when {@code lockingMode} says so).
     *
     * @return false when the request was refused (503 sent: the lock was not acquired and
     *     {@code lockFailure="refuse"}); a request that {@code requestUriIgnorePattern} matches
     *     goes on untouched
     */
    boolean beginRequest(Request request, Response response) throws IOException {
        String requested = request.getRequestedSessionId();
        // Read before the request's state is set, so only what this Tomcat holds: Tomcat's
        // authenticator may have handed the request a session that a concurrent request of
        // this Tomcat uses, and the request keeps it.
        Session held = sticky || requested == null ? null : request.getSessionInternal(false);
        MsmRequest core;
        try {
            core = Native.begin(handle, requested, request.getDecodedRequestURI(), getJvmRoute());
        } catch (MsmLockTimeoutException e) {
            response.sendError(HttpServletResponse.SC_SERVICE_UNAVAILABLE,
                    "the session is busy; try again");
            return false;
        } catch (MsmException | IllegalArgumentException e) {
            // IllegalArgumentException: the manager stopped meanwhile.
            LOG.warn("request not begun in the core: " + e.getMessage());
            return true;
        }
        if (core.ignored()) {
            statistics.requestsIgnored.increment();
            return true;
        }
        RequestState state = new RequestState(request, core);
        current.set(state);
        if (sticky) {
            routeRequest(state);
            return true;
        }
        inFlight.put(request.getRequest(), state);
        if (held instanceof MsmSession) {
            join(state, (MsmSession) held);
        } else if (core.prefetched()) {
            // Its node is down: the core moved it to its second copy's node; the new cookie goes now.
            findSession(requested);
        }
        return true;
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
     * The valve is done with the request. Sticky: the session is handed to the core, which
     * backs it up if it changed. Non-sticky: a request that met an unreachable session store is
     * answered 503; the request ends later ({@link #finishRequest}), and an asynchronous one
     * leaves this thread.
     */
    void leaveValve(Request request) {
        RequestState state = current.get();
        if (state == null) {
            return;
        }
        if (sticky) {
            current.remove();
            backupAfterRequest(state);
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
     * of this Tomcat using the session hands it back ({@link #handBack}).
     */
    private void finishRequest(ServletRequest servletRequest) {
        RequestState state = inFlight.remove(servletRequest);
        if (state == null) {
            return;
        }
        if (current.get() == state) {
            current.remove();
        }
        MsmSession session = state.session;
        if (session == null) {
            end(state, policy.distributionStopped() ? Native.OUTCOME_NOT_STORED
                    : Native.OUTCOME_UNUSED, null, null);
            return;
        }
        if (!session.leave(() -> handBack(state, session))) {
            // Another request of this Tomcat uses it and hands it back.
            end(state, Native.OUTCOME_NOT_STORED, null, null);
        }
    }

    /**
     * Non-sticky: the last request of this Tomcat using a session hands it to the core (written
     * if changed, else its expiry renewed; the lock released; the old id retired); the session
     * leaves Tomcat's memory unless it is kept out of memcached. A session that leaves is
     * passivated before it is serialized (its attributes' {@code sessionWillPassivate}), and
     * activated again when a request of this Tomcat reads it into the same copy afterwards
     * ({@link #join}).
     *
     * @return whether this Tomcat keeps the session in memory
     */
    private boolean handBack(RequestState state, MsmSession session) {
        Request request = state.request;
        boolean leaves = session.isValid() && distributes(session);
        if (leaves) {
            // It leaves this Tomcat's memory for memcached: its attributes hear it first.
            session.passivate();
        }
        // Unchanged since the read it came from (under the same id): the core renews it as read.
        boolean unchanged = leaves && state.oldId == null && session.read() != 0
                && !session.changedSinceRead();
        boolean keeps = false;
        try {
            Ended ended = unchanged ? end(state, Native.OUTCOME_UNCHANGED, session, null) : null;
            Serialized content = null;
            if (!unchanged || ended != null && ended.needsContent()) {
                content = leaves ? serialize(request, session) : null;
                keeps = session.isValid() && !distributes(session);
                if (leaves && keeps) {
                    // Its serialization made it local or stopped distribution: it stays here.
                    session.activate();
                }
                ended = end(state, content == null ? Native.OUTCOME_NOT_STORED
                        : Native.OUTCOME_USED, session, content);
            }
            if (unchanged || content != null) {
                statistics.requestsWithSession.increment();
            }
            String moved = ended == null ? null : ended.movedId();
            if (moved != null && !request.getResponse().isCommitted()) {
                request.changeSessionId(moved);
            }
        } finally {
            if (keeps) {
                // Local, or distribution stopped: this Tomcat keeps it.
                session.hold();
            } else {
                sessions.remove(session.getIdInternal(), session);
            }
        }
        return keeps;
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

    /**
     * Ends the request in the core with what it did; the session's content when given.
     *
     * @return what the core did, or null when it failed (logged)
     */
    private Ended end(RequestState state, int outcome, MsmSession session, Serialized content) {
        String id = session == null ? null : session.getIdInternal();
        try {
            if (content != null) {
                return Native.end(handle, state.core.handle(), outcome, id,
                        session.getCreationTimeInternal(), session.getThisAccessedTimeInternal(),
                        session.getMaxInactiveInterval(), session.read(), null, null,
                        content.names, content.values, state.oldId);
            }
            int maxInactive = session == null ? 0 : session.getMaxInactiveInterval();
            long read = session == null ? 0 : session.read();
            return Native.end(handle, state.core.handle(), outcome, id, 0, 0, maxInactive, read,
                    null, null, null, null, null);
        } catch (MsmInvalidIdException e) {
            // A session created while disabled: not ours.
            return null;
        } catch (MsmException | IllegalArgumentException e) {
            // IllegalArgumentException: the manager stopped while this request ran.
            if (session != null) {
                session.markChanged();
            }
            statistics.backupCallFailures.increment();
            LOG.warn("session " + redact(id) + " not stored: " + e.getMessage());
            return null;
        }
    }

    /** Sticky: at the end of a request, hands the session to the core, which backs it up if it changed. */
    private void backupAfterRequest(RequestState state) {
        Session found = state.request.getSessionInternal(false);
        if (!(found instanceof MsmSession) || !found.isValid()) {
            statistics.requestsWithoutSession.increment();
            end(state, Native.OUTCOME_UNUSED, null, null);
            return;
        }
        statistics.requestsWithSession.increment();
        MsmSession session = (MsmSession) found;
        if (!distributes(session)) {
            // A stopped distribution resumes with a full backup.
            session.markChanged();
            end(state, Native.OUTCOME_NOT_STORED, null, null);
            return;
        }
        if (!session.takeChanged()) {
            Ended ended = end(state, Native.OUTCOME_UNCHANGED, session, null);
            if (ended == null || !ended.needsContent()) {
                return;
            }
        }
        Serialized content = serialize(state.request, session);
        end(state, content == null ? Native.OUTCOME_NOT_STORED : Native.OUTCOME_USED, session,
                content);
    }
}
