package io.msm;

/**
 * A session event with {@code sessionEvents="broadcast"}: published by the host where it
 * happened, heard by every other host of the context (the contract is the core's, in
 * {@code native/broadcast.rs}).
 */
public final class SessionEvent {
    /** What happened; the ordinals are the core's numbers. */
    public enum Kind {
        /** {@code sessionCreated}. */
        CREATED,
        /** {@code sessionDestroyed}: invalidated, or expired. */
        DESTROYED,
        /** {@code attributeAdded}. */
        ATTRIBUTE_ADDED,
        /** {@code attributeReplaced}. */
        ATTRIBUTE_REPLACED,
        /** {@code attributeRemoved}. */
        ATTRIBUTE_REMOVED;

        /** @return whether events of this kind name an attribute */
        public boolean namesAttribute() {
            return this != CREATED && this != DESTROYED;
        }
    }

    private final Kind kind;
    private final String id;
    private final String name;
    private final byte[] value;

    /**
     * An event.
     *
     * @param kind what happened
     * @param id the session's id
     * @param name the attribute's name, for attribute events; else null
     * @param value the attribute's serialized value after the event, or null when not sent
     */
    public SessionEvent(Kind kind, String id, String name, byte[] value) {
        this.kind = kind;
        this.id = id;
        this.name = name;
        this.value = value;
    }

    /** @return what happened */
    public Kind kind() {
        return kind;
    }

    /** @return the session's id (without route, when heard) */
    public String id() {
        return id;
    }

    /** @return the attribute's name, for attribute events; else null */
    public String name() {
        return name;
    }

    /**
     * @return the attribute's serialized value after the event (added, or the new one of a
     *     replacement) when sent ({@code broadcastValues="true"}); else null
     */
    public byte[] value() {
        return value;
    }
}
