package io.msm.tomcat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.regex.Pattern;

import org.apache.catalina.util.CustomObjectInputStream;
import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;

/**
 * Java serialization of attribute values; classes resolve through the web application's class
 * loader and, when the manager sets Tomcat's {@code sessionAttributeValueClassNameFilter}, only
 * the classes it allows are read. Values reach it only after the native core checked their tag;
 * that tag is a checksum unless {@code integrityKey} is configured, so anyone who can write to
 * memcached can offer bytes here: configure the key, or the class filter, or both.
 */
public final class JavaSerializer implements AttributeSerializer {
    private static final Log LOG = LogFactory.getLog(JavaSerializer.class);

    private volatile Pattern allowedClasses;
    private volatile boolean warnOnRefusal = true;

    /**
     * Restricts deserialization to classes whose names match.
     *
     * @param pattern allowed class names, or null for any
     * @param warn whether a refused class is logged
     */
    public void allowClasses(Pattern pattern, boolean warn) {
        this.allowedClasses = pattern;
        this.warnOnRefusal = warn;
    }

    @Override
    public byte[] serialize(String name, Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(value);
        }
        return bytes.toByteArray();
    }

    @Override
    public Object deserialize(String name, byte[] bytes, ClassLoader loader)
            throws IOException, ClassNotFoundException {
        try (ObjectInputStream in = new CustomObjectInputStream(new ByteArrayInputStream(bytes),
                loader, LOG, allowedClasses, warnOnRefusal)) {
            return in.readObject();
        }
    }
}
