package io.msm.demo;

import java.io.Serializable;

import jakarta.servlet.http.HttpSession;
import jakarta.servlet.http.HttpSessionActivationListener;
import jakarta.servlet.http.HttpSessionAttributeListener;
import jakarta.servlet.http.HttpSessionBindingEvent;
import jakarta.servlet.http.HttpSessionBindingListener;
import jakarta.servlet.http.HttpSessionEvent;
import jakarta.servlet.http.HttpSessionListener;

/**
 * The demo application's session listener: prints one line to standard output for every
 * session event it hears, so that a test reads which Tomcat announced what of which session,
 * even after that Tomcat was killed. Each line is {@code EVENT <what> <id> <detail>}, where
 * {@code <id>} is the session id's storage part ({@code <random>-<node>}, without the route,
 * which changes when another Tomcat takes the session over):
 *
 * <ul>
 * <li>{@code EVENT created <id> -}: {@code sessionCreated};</li>
 * <li>{@code EVENT destroyed <id> <tag>}: {@code sessionDestroyed}, with the session's
 * {@link Tag} ({@code /tag?value=V}), {@code -} when it has none;</li>
 * <li>{@code EVENT unbound <id> <tag>}: the tag's {@code valueUnbound};</li>
 * <li>{@code EVENT removed <id> <tag>}: {@code attributeRemoved} of the tag;</li>
 * <li>{@code EVENT activated <id> <tag>}: the tag's {@code sessionDidActivate};</li>
 * <li>{@code EVENT passivated <id> <tag>}: the tag's {@code sessionWillPassivate};</li>
 * <li>{@code EVENT attribute-added <id> <name>=<value>},
 * {@code EVENT attribute-replaced <id> <name>=<value>}, {@code EVENT attribute-removed <id>
 * <name>}: {@code attributeAdded}, {@code attributeReplaced} and {@code attributeRemoved} of
 * every attribute, the tag's included, with the attribute's value after the event as the
 * session shows it.</li>
 * </ul>
 *
 * <p>With {@code sessionEvents="broadcast"}, a Tomcat prints these lines for the events of
 * every Tomcat of the context, its own as they happen and the others' as it hears them.
 */
public final class SessionEvents implements HttpSessionListener, HttpSessionAttributeListener {
    /** The attribute {@code /tag} sets. */
    static final String TAG = "tag";

    /** An attribute value that hears its own unbinding, activation and passivation. */
    public static final class Tag
            implements HttpSessionBindingListener, HttpSessionActivationListener, Serializable {
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
        public void sessionDidActivate(HttpSessionEvent event) {
            print("activated", event.getSession(), value);
        }

        @Override
        public void sessionWillPassivate(HttpSessionEvent event) {
            print("passivated", event.getSession(), value);
        }

        @Override
        public String toString() {
            return value;
        }
    }

    /** Created by Tomcat, from the class name the context lists. */
    public SessionEvents() {}

    @Override
    public void sessionCreated(HttpSessionEvent event) {
        print("created", event.getSession(), "-");
    }

    @Override
    public void sessionDestroyed(HttpSessionEvent event) {
        HttpSession session = event.getSession();
        Object tag = session.getAttribute(TAG);
        print("destroyed", session, tag == null ? "-" : tag.toString());
    }

    @Override
    public void attributeAdded(HttpSessionBindingEvent event) {
        print("attribute-added", event.getSession(), withValue(event));
    }

    @Override
    public void attributeReplaced(HttpSessionBindingEvent event) {
        print("attribute-replaced", event.getSession(), withValue(event));
    }

    @Override
    public void attributeRemoved(HttpSessionBindingEvent event) {
        print("attribute-removed", event.getSession(), event.getName());
        if (event.getName().equals(TAG)) {
            print("removed", event.getSession(), String.valueOf(event.getValue()));
        }
    }

    /** {@code <name>=<value>}, the value as the session shows it now. */
    private static String withValue(HttpSessionBindingEvent event) {
        return event.getName() + "=" + event.getSession().getAttribute(event.getName());
    }

    /** Prints one line, the session id without its route. */
    private static void print(String what, HttpSession session, String detail) {
        String id = session.getId();
        int route = id.indexOf('.');
        synchronized (System.out) {
            System.out.println("EVENT " + what + " " + (route < 0 ? id : id.substring(0, route))
                    + " " + detail);
            System.out.flush();
        }
    }
}
