package io.msm;

/** A session id is malformed or hostile; it is treated as no session. */
public class MsmInvalidIdException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmInvalidIdException(String message) {
        super(message);
    }
}
