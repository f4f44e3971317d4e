package io.msm.tomcat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.NotSerializableException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.security.Principal;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

import org.apache.catalina.Session;
import org.apache.catalina.util.CustomObjectInputStream;

/**
 * Tomcat's container login (FORM, BASIC, ... against a {@code Realm}): the principal and the
 * authentication type that Tomcat's authenticators cache in the session, and the authenticators'
 * serializable session notes (a FORM login's saved request, between the login page and the
 * posted form), carried with the session between Tomcats as one reserved attribute, {@value #ATTRIBUTE}, the way Tomcat's own
 * {@code persistAuthentication} keeps them across a restart. Written with Java serialization,
 * inside the session's integrity tag like every attribute.
 */
final class ContainerLogin {
    /** The name the login is stored under; applications never see it as an attribute. */
    static final String ATTRIBUTE = "io.msm.tomcat.containerLogin";

    /** The prefix of the names of the session notes Tomcat's authenticators keep. */
    private static final String NOTES = "org.apache.catalina.authenticator.";

    private final String authType;
    private final Principal principal;
    private final HashMap<String, Object> notes;

    private ContainerLogin(String authType, Principal principal, HashMap<String, Object> notes) {
        this.authType = authType;
        this.principal = principal;
        this.notes = notes;
    }

    /**
     * The session's login as bytes.
     *
     * @param session a session
     * @return null when there is no container login, nor a login under way
     * @throws IOException when the principal cannot be serialized (a Realm's own class)
     */
    static byte[] serialize(Session session) throws IOException {
        Principal principal = session.getPrincipal();
        HashMap<String, Object> notes = new HashMap<>();
        for (Iterator<String> names = session.getNoteNames(); names.hasNext();) {
            String name = names.next();
            Object note = session.getNote(name);
            if (name.startsWith(NOTES) && note instanceof Serializable) {
                notes.put(name, note);
            }
        }
        if (principal == null && notes.isEmpty()) {
            return null;
        }
        try {
            return write(session.getAuthType(), principal, notes);
        } catch (NotSerializableException e) {
            // A note holding something that does not serialize: the login itself still travels.
            return write(session.getAuthType(), principal, new HashMap<>());
        }
    }

    private static byte[] write(String authType, Principal principal,
            HashMap<String, Object> notes) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(authType);
            out.writeObject(principal);
            out.writeObject(notes);
        }
        return bytes.toByteArray();
    }

    /**
     * Reads a stored login.
     *
     * @param bytes what {@link #serialize} wrote
     * @param loader the web application's class loader (a Realm's principal class may be there)
     * @return the login
     * @throws IOException when the bytes do not read
     * @throws ClassNotFoundException when the principal's class is missing
     */
    static ContainerLogin read(byte[] bytes, ClassLoader loader)
            throws IOException, ClassNotFoundException {
        try (ObjectInputStream in = new CustomObjectInputStream(new ByteArrayInputStream(bytes),
                loader)) {
            String authType = (String) in.readObject();
            Principal principal = (Principal) in.readObject();
            @SuppressWarnings("unchecked")
            HashMap<String, Object> notes = (HashMap<String, Object>) in.readObject();
            return new ContainerLogin(authType, principal, notes);
        }
    }

    /**
     * Gives a session the login it was stored with; restoring it is no change of the session.
     *
     * @param session the session being restored
     * @param login what {@link #read} returned, or null when it was stored without a login
     */
    static void apply(MsmSession session, ContainerLogin login) {
        if (login == null) {
            session.restoreLogin(null, null, Map.of());
        } else {
            session.restoreLogin(login.authType, login.principal, login.notes);
        }
    }
}
