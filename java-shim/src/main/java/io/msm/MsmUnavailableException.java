package io.msm;

/** The memcached node(s) needed are down or unreachable. */
public class MsmUnavailableException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmUnavailableException(String message) {
        super(message);
    }
}
