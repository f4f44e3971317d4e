package io.msm.demo;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.Collections;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpSession;

/**
 * The demo and test web application. Every answer is one line of {@code key=value} pairs.
 *
 * <ul>
 * <li>{@code /} or {@code /counter}: increments the session's counter (creating the session);</li>
 * <li>{@code /read}: shows the counter without changing anything;</li>
 * <li>{@code /set?name=N&value=V}: stores a string attribute;</li>
 * <li>{@code /get?name=N}: shows one attribute;</li>
 * <li>{@code /nonserializable}: stores an attribute that cannot be serialized;</li>
 * <li>{@code /invalidate}: ends the session;</li>
 * <li>{@code /login}: changes the session id (fixation protection, as a login does);</li>
 * <li>{@code /static/...}: changes the session too, but static URIs are configured to be
 * ignored by the manager in the tests.</li>
 * </ul>
 */
public final class DemoServlet extends HttpServlet {
    private static final long serialVersionUID = 1L;

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
            case "/nonserializable":
                session = request.getSession();
                session.setAttribute("unserializable", new NotSerializable());
                break;
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
                session = request.getSession();
                Integer counter = (Integer) session.getAttribute("counter");
                session.setAttribute("counter", counter == null ? 1 : counter + 1);
                break;
        }
        StringBuilder line = new StringBuilder();
        line.append("session=").append(session == null ? "none" : session.getId());
        line.append(" tomcat=").append(System.getProperty("msm.demo.route", "-"));
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

    private static void reply(HttpServletResponse response, String line) throws IOException {
        PrintWriter out = response.getWriter();
        out.println(line);
    }
}
