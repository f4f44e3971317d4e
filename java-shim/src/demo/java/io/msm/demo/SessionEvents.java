package io.msm.demo;

import java.io.Serializable;

import jakarta.servlet.http.HttpSession;
import jakarta.servlet.http.HttpSessionAttributeListener;
import jakarta.servlet.http.HttpSessionBindingEvent;
import jakarta.servlet.http.HttpSessionBindingListener;
import jakarta.servlet.http.HttpSessionEvent;
import jakarta.servlet.http.HttpSessionListener;

/**
 * The demo application's session listener: prints one line to standard output for every end of
 * a session it hears, so that a test reads which Tomcat announced which session's end, with
 * what, even after that Tomcat was killed:
 *
 * <ul>
 * <li>{@code EVENT destroyed <id> <tag>}: {@code sessionDestroyed}, with the session's
 * {@link Tag} ({@code /tag?value=V}), {@code -} when it has none;</li>
 * <li>{@code EVENT unbound <id> <tag>}: the tag's {@code valueUnbound};</li>
 * <li>{@code EVENT removed <id> <tag>}: {@code attributeRemoved} of the tag.</li>
 * </ul>
 */
public final class SessionEvents implements HttpSessionListener, HttpSessionAttributeListener {
    /** The attribute {@code /tag} sets. */
    static final String TAG = "tag";

    /** An attribute value that hears its own unbinding. */
    public static final class Tag implements HttpSessionBindingListener, Serializable {
        private static final long serialVersionUID = 1L;
        private final String value;

        /**
         * A tag.
         *
         * @param value its text, without spaces
         */
        public Tag(String value) {
            this.value = value;
        }

        @Override
        public void valueUnbound(HttpSessionBindingEvent event) {
            print("unbound", event.getSession(), value);
        }

        @Override
        public String toString() {
            return value;
        }
    }

    /** Created by Tomcat, from the class name the context lists. */
    public SessionEvents() {}

    @Override
    public void sessionDestroyed(HttpSessionEvent event) {
        HttpSession session = event.getSession();
        Object tag = session.getAttribute(TAG);
        print("destroyed", session, tag == null ? "-" : tag.toString());
    }

    @Override
    public void attributeRemoved(HttpSessionBindingEvent event) {
        if (event.getName().equals(TAG)) {
            print("removed", event.getSession(), String.valueOf(event.getValue()));
        }
    }

    private static void print(String what, HttpSession session, String tag) {
        synchronized (System.out) {
            System.out.println("EVENT " + what + " " + session.getId() + " " + tag);
            System.out.flush();
        }
    }
}
