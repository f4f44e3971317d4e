package io.msm.tomcat;

import java.io.IOException;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.ServletException;

import org.apache.catalina.connector.Request;
import org.apache.catalina.connector.Response;
import org.apache.catalina.valves.ValveBase;

/**
 * Installed by {@link MemcachedSessionManager} in its context's pipeline: before the request it
 * gives a taken-over session its new id, after the request it hands the session to the core for
 * backup. Requests matching {@code requestUriIgnorePattern} pass through untouched.
 */
final class SessionBackupValve extends ValveBase {
    private final MemcachedSessionManager manager;

    SessionBackupValve(MemcachedSessionManager manager) {
        super(true);
        this.manager = manager;
    }

    @Override
    public void invoke(Request request, Response response) throws IOException, ServletException {
        if (!manager.distributing() || manager.ignoresUri(request.getDecodedRequestURI())) {
            getNext().invoke(request, response);
            return;
        }
        if (!manager.isSticky()) {
            // The request ends later, in the manager's request listener.
            if (request.getDispatcherType() == DispatcherType.ASYNC) {
                manager.resumeRequest(request);
            } else if (!manager.startRequest(request, response)) {
                return;
            }
            try {
                getNext().invoke(request, response);
            } finally {
                manager.leaveValve(request);
            }
            return;
        }
        manager.routeRequest(request);
        try {
            getNext().invoke(request, response);
        } finally {
            manager.backupAfterRequest(request);
        }
    }
}
