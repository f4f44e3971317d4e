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
     * The exception for a failure the native core reports by code: the single mapping of core
     * errors to Java classes (the core's side is {@code native/ffi/jni/pending.rs}).
     *
     * @param code 1 configuration, 2 invalid id, 3 corrupt value, 4 too large, 5 timeout,
     *     6 unavailable, 7 lock timeout, anything else a general failure
     * @param message what happened
     * @return the exception, not thrown
     */
    public static MsmException of(int code, String message) {
        switch (code) {
            case 1: return new MsmConfigException(message);
            case 2: return new MsmInvalidIdException(message);
            case 3: return new MsmCorruptException(message);
            case 4: return new MsmTooLargeException(message);
            case 5: return new MsmTimeoutException(message);
            case 6: return new MsmUnavailableException(message);
            case 7: return new MsmLockTimeoutException(message);
            default: return new MsmException(message);
        }
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
