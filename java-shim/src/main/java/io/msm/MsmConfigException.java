package io.msm;

/** A configuration attribute is unknown, malformed or inconsistent; the message names it. */
public class MsmConfigException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmConfigException(String message) {
        super(message);
    }
}
