package io.msm;

/** A session lock was not acquired within lockMaxWait. */
public class MsmLockTimeoutException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmLockTimeoutException(String message) {
        super(message);
    }
}
