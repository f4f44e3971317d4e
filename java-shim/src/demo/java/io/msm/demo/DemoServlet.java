package io.msm.demo;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;

import javax.management.JMException;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.http.Cookie;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpSession;

/**
 * The demo and test web application. Every answer is one line of {@code key=value} pairs; those
 * that show the session start with {@code session=<id or none> tomcat=<route>
 * requested=<the id the request sent, or none>}, so that a client holding many sessions (the
 * Tomcat benchmark's wrk script) knows which one an answer is for, even when it was lost or
 * took a new id (the request's session id is then the new one: the cookie sent is shown).
 *
 * <ul>
 * <li>{@code /} or {@code /counter}: increments the session's counter (creating the session);
 * with {@code ?attributes=N} (0 to {@value #MAX_KIB_ATTRIBUTES}) the session also holds N
 * attributes of 1 KiB ({@code byte[1024]}), {@code kib0} to {@code kib<N-1>}: {@code kib1} and
 * up are created when absent and left alone, {@code kib0} is replaced by one filled with the new
 * counter's low byte, so that exactly one 1 KiB attribute changes per request (the Tomcat
 * benchmark's {@code ATTRIBUTES});</li>
 * <li>{@code /read}: shows the counter without changing anything;</li>
 * <li>{@code /set?name=N&value=V}: stores a string attribute;</li>
 * <li>{@code /get?name=N}: shows one attribute;</li>
 * <li>{@code /append?value=V}: appends V to the session's {@code list} (an {@code ArrayList}) in
 * place: {@code setAttribute} only when the list is created; with {@code &ms=N}, N ms after
 * taking the list (so that another request of the session ends meanwhile);</li>
 * <li>{@code /tag?value=V}: stores a {@link SessionEvents.Tag}, whose end, activation and
 * passivation {@link SessionEvents} prints;</li>
 * <li>{@code /nonserializable}: stores an attribute that cannot be serialized; with
 * {@code ?commit=true} the response is committed before the manager sees the session;</li>
 * <li>{@code /extra}: stores an attribute whose class only a web application given
 * {@code msm-demo-extra.jar} has ({@code EmbeddedTomcat --webapp-jar});</li>
 * <li>{@code /invalidate}: ends the session;</li>
 * <li>{@code /login}: changes the session id (fixation protection, as a login does);</li>
 * <li>{@code /static/...}: changes the session too, but static URIs are configured to be
 * ignored by the manager in the tests;</li>
 * <li>{@code /slow?ms=N}: reads the session slowly (N ms) and reports when it started and
 * ended, to show which requests of one session run in parallel;</li>
 * <li>{@code /hold?ms=N}: increments the session's {@code counter}, then holds the session N ms
 * (as a database call would), to show that locked requests of one session lose no update;</li>
 * <li>{@code /plain}: never looks at the session (as a static resource);</li>
 * <li>{@code /missing}: answers 404, whose error page ({@code /error-page}) counts the
 * session's errors in its {@code errors} attribute;</li>
 * <li>{@code /async}: reads the session, then sets its {@code async} attribute on another
 * thread of an asynchronous request;</li>
 * <li>{@code /stats}: the manager's JMX statistics, read from the platform MBean server;</li>
 * <li>{@code /nodes?value=L}: replaces the memcached node list through the JMX operation;</li>
 * <li>{@code /resume}: resumes session distribution through the JMX operation;</li>
 * <li>{@code /secure/whoami}: behind Tomcat's FORM login ({@code EmbeddedTomcat --form-login}):
 * the user and authentication type Tomcat gives the request;</li>
 * <li>{@code /login-form} and {@code /login-error}: the FORM login's pages.</li>
 * </ul>
 */
public final class DemoServlet extends HttpServlet {
    private static final long serialVersionUID = 1L;

    /** The most 1 KiB attributes {@code /?attributes=N} keeps in a session: 4 MiB. */
    static final int MAX_KIB_ATTRIBUTES = 4096;

    /** Size of each attribute {@code /?attributes=N} keeps. */
    private static final int KIB = 1024;

    /** The class of {@code /extra}'s attribute, in {@code msm-demo-extra.jar}. */
    private static final String EXTRA_CLASS = "io.msm.demo.extra.ExtraValue";

    /** An attribute value that Java serialization refuses. */
    static final class NotSerializable {
        @Override
        public String toString() {
            return "not serializable";
        }
    }

    @Override
    protected void doGet(HttpServletRequest request, HttpServletResponse response)
            throws IOException {
        response.setContentType("text/plain");
        response.setCharacterEncoding("UTF-8");
        String path = request.getPathInfo() == null ? request.getServletPath() : request.getPathInfo();
        HttpSession session;
        switch (path) {
            case "/read":
                session = request.getSession(false);
                break;
            case "/get":
                session = request.getSession(false);
                break;
            case "/set":
                session = request.getSession();
                session.setAttribute(request.getParameter("name"), request.getParameter("value"));
                break;
            case "/append":
                session = request.getSession();
                @SuppressWarnings("unchecked")
                List<String> list = (List<String>) session.getAttribute("list");
                if (list == null) {
                    list = new ArrayList<>();
                    session.setAttribute("list", list);
                }
                String ms = request.getParameter("ms");
                if (ms != null) {
                    sleep(Long.parseLong(ms));
                }
                list.add(request.getParameter("value"));
                break;
            case "/tag":
                session = request.getSession();
                session.setAttribute(SessionEvents.TAG,
                        new SessionEvents.Tag(request.getParameter("value")));
                break;
            case "/nonserializable":
                session = request.getSession();
                session.setAttribute("unserializable", new NotSerializable());
                if ("true".equals(request.getParameter("commit"))) {
                    response.flushBuffer();
                }
                break;
            case "/extra":
                session = request.getSession();
                session.setAttribute("extra", extraValue());
                break;
            case "/slow":
                session = request.getSession(false);
                long started = System.currentTimeMillis();
                sleep(Long.parseLong(request.getParameter("ms")));
                reply(response, "started=" + started + " ended=" + System.currentTimeMillis()
                        + " counter=" + (session == null ? null : session.getAttribute("counter")));
                return;
            case "/hold":
                session = request.getSession();
                Integer held = (Integer) session.getAttribute("counter");
                session.setAttribute("counter", held == null ? 1 : held + 1);
                sleep(Long.parseLong(request.getParameter("ms")));
                break;
            case "/missing":
                response.sendError(HttpServletResponse.SC_NOT_FOUND);
                return;
            case "/error-page":
                session = request.getSession();
                Integer errors = (Integer) session.getAttribute("errors");
                session.setAttribute("errors", errors == null ? 1 : errors + 1);
                reply(response, "errors=" + session.getAttribute("errors"));
                return;
            case "/async":
                HttpSession used = request.getSession();
                AsyncContext async = request.startAsync();
                async.start(() -> {
                    used.setAttribute("async", "done");
                    try {
                        reply((HttpServletResponse) async.getResponse(), "async=done");
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                    async.complete();
                });
                return;
            case "/secure/whoami":
                session = request.getSession(false);
                reply(response, "user=" + request.getRemoteUser() + " auth=" + request.getAuthType()
                        + " session=" + (session == null ? "none" : session.getId()));
                return;
            case "/login-form":
            case "/login-error":
                reply(response, "page=" + path.substring(1));
                return;
            case "/plain":
                // Like a static resource: never looks at the session.
                reply(response, "plain");
                return;
            case "/stats":
            case "/nodes":
            case "/resume":
                reply(response, jmx(path, request.getParameter("value")));
                return;
            case "/invalidate":
                session = request.getSession(false);
                if (session != null) {
                    session.invalidate();
                }
                reply(response, "invalidated=true");
                return;
            case "/login":
                request.getSession();
                request.changeSessionId();
                session = request.getSession();
                break;
            default:
                int kibAttributes;
                try {
                    kibAttributes = kibAttributes(request.getParameter("attributes"));
                } catch (IllegalArgumentException e) {
                    response.sendError(HttpServletResponse.SC_BAD_REQUEST, e.getMessage());
                    return;
                }
                session = request.getSession();
                Integer counter = (Integer) session.getAttribute("counter");
                int next = counter == null ? 1 : counter + 1;
                session.setAttribute("counter", next);
                keepKibAttributes(session, kibAttributes, next);
                break;
        }
        StringBuilder line = new StringBuilder();
        line.append("session=").append(session == null ? "none" : session.getId());
        line.append(" tomcat=").append(System.getProperty("msm.demo.route", "-"));
        String requested = sentSessionCookie(request);
        line.append(" requested=").append(requested == null ? "none" : requested);
        if (session != null) {
            line.append(" counter=").append(session.getAttribute("counter"));
            String name = request.getParameter("name");
            if (name != null) {
                line.append(" ").append(name).append("=").append(session.getAttribute(name));
            }
            line.append(" attributes=").append(
                    String.join(",", Collections.list(session.getAttributeNames())));
        }
        reply(response, line.toString());
    }

    /** The session cookie's value as the request sent it, or null. */
    private static String sentSessionCookie(HttpServletRequest request) {
        String name = request.getServletContext().getSessionCookieConfig().getName();
        String cookieName = name == null ? "JSESSIONID" : name;
        Cookie[] cookies = request.getCookies();
        if (cookies == null) {
            return null;
        }
        for (Cookie cookie : cookies) {
            if (cookie.getName().equals(cookieName)) {
                return cookie.getValue();
            }
        }
        return null;
    }

    /**
     * The N of {@code attributes=N}, 0 when absent.
     *
     * @throws IllegalArgumentException unless it is a whole number from 0 to
     *     {@link #MAX_KIB_ATTRIBUTES} (so that a request cannot make the session huge)
     */
    private static int kibAttributes(String value) {
        if (value == null) {
            return 0;
        }
        int count = Integer.parseInt(value);
        if (count < 0 || count > MAX_KIB_ATTRIBUTES) {
            throw new IllegalArgumentException(
                    "attributes must be from 0 to " + MAX_KIB_ATTRIBUTES + ", not " + value);
        }
        return count;
    }

    /**
     * Makes {@code session} hold {@code count} attributes of 1 KiB, {@code kib0} to
     * {@code kib<count-1>}: the others are created once when absent and then left alone, and
     * {@code kib0} is replaced by a new array filled with the low byte of {@code counter}, so that
     * each request changes exactly one of them (what per-attribute updates are for).
     */
    private static void keepKibAttributes(HttpSession session, int count, int counter) {
        if (count == 0) {
            return;
        }
        byte[] changed = new byte[KIB];
        Arrays.fill(changed, (byte) counter);
        session.setAttribute("kib0", changed);
        for (int i = 1; i < count; i++) {
            String name = "kib" + i;
            if (session.getAttribute(name) == null) {
                session.setAttribute(name, new byte[KIB]);
            }
        }
    }

    /** An instance of {@link #EXTRA_CLASS}, through the web application's class loader. */
    private static Object extraValue() {
        try {
            return Class.forName(EXTRA_CLASS, true, Thread.currentThread().getContextClassLoader())
                    .getConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("this web application has no " + EXTRA_CLASS, e);
        }
    }

    /** Reads the manager's MBean, or invokes its node-list or resume operation. */
    private static String jmx(String path, String nodes) {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        try {
            Set<ObjectName> names =
                    server.queryNames(new ObjectName("io.msm:type=MemcachedSessionManager,*"), null);
            if (names.isEmpty()) {
                return "mbean=none";
            }
            ObjectName name = names.iterator().next();
            if (path.equals("/nodes")) {
                server.invoke(name, "replaceMemcachedNodes", new Object[] {nodes},
                        new String[] {String.class.getName()});
                return "nodes=" + nodes;
            }
            if (path.equals("/resume")) {
                server.invoke(name, "resumeDistribution", new Object[0], new String[0]);
                return "resumed=true";
            }
            StringBuilder line = new StringBuilder("mbean=").append(name);
            for (MBeanAttributeInfo attribute : server.getMBeanInfo(name).getAttributes()) {
                if (attribute.getName().equals("CoreStatistics")) {
                    continue;
                }
                Object value = server.getAttribute(name, attribute.getName());
                line.append(' ').append(attribute.getName()).append('=')
                        .append(String.valueOf(value).trim().replace('\n', ';').replace(' ', '_'));
            }
            return line.toString();
        } catch (JMException e) {
            return "error=" + e;
        }
    }

    /** Holds the request {@code ms} milliseconds, as a slow backend call would. */
    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void reply(HttpServletResponse response, String line) throws IOException {
        PrintWriter out = response.getWriter();
        out.println(line);
    }
}
