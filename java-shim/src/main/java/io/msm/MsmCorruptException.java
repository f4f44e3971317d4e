package io.msm;

/** A stored session failed its integrity check or could not be decoded. */
public class MsmCorruptException extends MsmException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened, as the native core said it
     */
    public MsmCorruptException(String message) {
        super(message);
    }
}
