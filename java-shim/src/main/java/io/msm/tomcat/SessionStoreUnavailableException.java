package io.msm.tomcat;

/**
 * Thrown to the application by {@code request.getSession()} in non-sticky mode when the session
 * the request names cannot be read because memcached is unreachable. Answering with a new session
 * instead would orphan the user's; the manager answers the request with 503.
 */
public class SessionStoreUnavailableException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what could not be read
     */
    public SessionStoreUnavailableException(String message) {
        super(message);
    }
}
