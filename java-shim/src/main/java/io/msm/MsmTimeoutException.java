package io.msm;

/** A memcached node did not answer within operationTimeout. */
public class MsmTimeoutException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmTimeoutException(String message) {
        super(message);
    }
}
