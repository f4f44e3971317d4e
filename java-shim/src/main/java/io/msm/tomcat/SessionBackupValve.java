package io.msm.tomcat;

import java.io.IOException;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.ServletException;

import org.apache.catalina.connector.Request;
import org.apache.catalina.connector.Response;
import org.apache.catalina.valves.ValveBase;

/**
 * Installed by {@link MemcachedSessionManager} in its context's pipeline: begins each request in
 * the core before the application runs (routing its session, locking it when the mode says so)
 * and, sticky, hands the session to the core for backup after it. Requests matching
 * {@code requestUriIgnorePattern} pass through untouched.
 */
final class SessionBackupValve extends ValveBase {
    private final MemcachedSessionManager manager;

    SessionBackupValve(MemcachedSessionManager manager) {
        super(true);
        this.manager = manager;
    }

    @Override
    public void invoke(Request request, Response response) throws IOException, ServletException {
        if (!manager.distributing()) {
            getNext().invoke(request, response);
            return;
        }
        if (!manager.isSticky() && request.getDispatcherType() == DispatcherType.ASYNC) {
            // The request began earlier; it ends later, in the manager's request listener.
            manager.resumeRequest(request);
        } else if (!manager.beginRequest(request, response)) {
            return;
        }
        try {
            getNext().invoke(request, response);
        } finally {
            manager.leaveValve(request);
        }
    }
}
