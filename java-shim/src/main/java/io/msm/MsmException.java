package io.msm;

/**
 * A failure reported by the native core. Subclasses name the kind; the message comes from the
 * core and says what happened.
 */
public class MsmException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened
     */
    public MsmException(String message) {
        super(message);
    }

    /**
     * Creates the exception with its cause.
     *
     * @param message what happened
     * @param cause the underlying failure
     */
    public MsmException(String message, Throwable cause) {
        super(message, cause);
    }
}
