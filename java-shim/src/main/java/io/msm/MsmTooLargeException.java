package io.msm;

/** A session is larger than memcached (or maxSessionSize) accepts. */
public class MsmTooLargeException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmTooLargeException(String message) {
        super(message);
    }
}
