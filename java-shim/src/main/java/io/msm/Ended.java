package io.msm;

/** What the end of a request did (the contract is the core's {@code request.rs}). */
public final class Ended {
    private final int backup;
    private final String movedId;

    Ended(int backup, String movedId) {
        this.backup = backup;
        this.movedId = movedId;
    }

    /**
     * @return whether the core has no confirmed copy of a session the host called unchanged:
     *     end the request again with the session's content
     */
    public boolean needsContent() {
        return backup == -2;
    }

    /** @return sticky: the backup's outcome ({@code Native.BACKUP_*}), -1 when none ran */
    public int backup() {
        return backup;
    }

    /** @return the session's new id when it moved to another node, else null */
    public String movedId() {
        return movedId;
    }
}
