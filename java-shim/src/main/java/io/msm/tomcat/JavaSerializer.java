package io.msm.tomcat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
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

    /*
     * The most common values (byte arrays, ASCII strings, boxed ints and longs) are written
     * without an ObjectOutputStream, whose construction costs more than writing them: each is the
     * stream an ObjectOutputStream writes for a value of its class, its variable end (a length
     * and the bytes, or the number) after a prefix that is the same for every value of the class,
     * taken here from what an ObjectOutputStream writes. Readers cannot tell the difference.
     */
    private static final byte[] BYTES_PREFIX = prefix(new byte[0], Integer.BYTES);
    private static final byte[] INTEGER_PREFIX = prefix(0, Integer.BYTES);
    private static final byte[] LONG_PREFIX = prefix(0L, Long.BYTES);
    /** The stream header, then a short string's tag; its length and characters follow. */
    private static final byte[] STRING_PREFIX = prefix("", Short.BYTES);

    private volatile Pattern allowedClasses;
    private volatile boolean warnOnRefusal = true;
    /**
     * Which common values are read directly: those whose classes (the ones an ObjectInputStream
     * would resolve for them) the filter allows. Strings resolve no class.
     */
    private volatile boolean readsBytes = true;
    private volatile boolean readsNumbers = true;

    /**
     * Restricts deserialization to classes whose names match.
     *
     * @param pattern allowed class names, or null for any
     * @param warn whether a refused class is logged
     */
    public void allowClasses(Pattern pattern, boolean warn) {
        this.allowedClasses = pattern;
        this.warnOnRefusal = warn;
        this.readsBytes = allows(pattern, "[B");
        this.readsNumbers = allows(pattern, "java.lang.Integer", "java.lang.Long",
                "java.lang.Number");
    }

    private static boolean allows(Pattern pattern, String... classes) {
        return pattern == null
                || Arrays.stream(classes).allMatch(name -> pattern.matcher(name).matches());
    }

    @Override
    public byte[] serialize(String name, Object value) throws IOException {
        byte[] written = written(value);
        if (written != null) {
            return written;
        }
        return streamed(value);
    }

    /** The serialized form of {@code value}, written directly; null when it has no such form. */
    private static byte[] written(Object value) {
        if (value == null) {
            return null;
        }
        Class<?> type = value.getClass();
        if (type == byte[].class) {
            byte[] array = (byte[]) value;
            return ByteBuffer.allocate(BYTES_PREFIX.length + Integer.BYTES + array.length)
                    .put(BYTES_PREFIX).putInt(array.length).put(array).array();
        }
        if (type == Integer.class) {
            return ByteBuffer.allocate(INTEGER_PREFIX.length + Integer.BYTES)
                    .put(INTEGER_PREFIX).putInt((Integer) value).array();
        }
        if (type == Long.class) {
            return ByteBuffer.allocate(LONG_PREFIX.length + Long.BYTES)
                    .put(LONG_PREFIX).putLong((Long) value).array();
        }
        if (type == String.class) {
            return ascii((String) value);
        }
        return null;
    }

    /**
     * A string of ASCII characters but NUL, short enough for a short string: its modified UTF-8
     * is its characters, one byte each. Null for any other string.
     */
    private static byte[] ascii(String value) {
        int length = value.length();
        if (length > 0xFFFF) {
            return null;
        }
        byte[] out = Arrays.copyOf(STRING_PREFIX, STRING_PREFIX.length + Short.BYTES + length);
        int at = STRING_PREFIX.length;
        out[at++] = (byte) (length >>> 8);
        out[at++] = (byte) length;
        for (int i = 0; i < length; i++) {
            char c = value.charAt(i);
            if (c == 0 || c > 0x7F) {
                return null;
            }
            out[at++] = (byte) c;
        }
        return out;
    }

    /**
     * The value of a stream that is exactly what an ObjectOutputStream writes for a common value
     * ({@link #written}), read without an ObjectInputStream; null for any other stream, which an
     * ObjectInputStream reads (a string with other than ASCII characters, a class the filter
     * refuses, anything malformed).
     */
    private Object read(byte[] bytes) {
        if (readsBytes && startsWith(bytes, BYTES_PREFIX)) {
            int length = bytes.length - BYTES_PREFIX.length - Integer.BYTES;
            if (length >= 0 && intAt(bytes, BYTES_PREFIX.length) == length) {
                return Arrays.copyOfRange(bytes, bytes.length - length, bytes.length);
            }
        } else if (readsNumbers && bytes.length == INTEGER_PREFIX.length + Integer.BYTES
                && startsWith(bytes, INTEGER_PREFIX)) {
            return intAt(bytes, INTEGER_PREFIX.length);
        } else if (readsNumbers && bytes.length == LONG_PREFIX.length + Long.BYTES
                && startsWith(bytes, LONG_PREFIX)) {
            return ByteBuffer.wrap(bytes, LONG_PREFIX.length, Long.BYTES).getLong();
        } else if (startsWith(bytes, STRING_PREFIX)
                && bytes.length >= STRING_PREFIX.length + Short.BYTES) {
            int at = STRING_PREFIX.length;
            int length = (bytes[at] & 0xFF) << 8 | bytes[at + 1] & 0xFF;
            at += Short.BYTES;
            if (bytes.length != at + length) {
                return null;
            }
            for (int i = at; i < bytes.length; i++) {
                if (bytes[i] <= 0) {
                    return null;
                }
            }
            return new String(bytes, at, length, StandardCharsets.US_ASCII);
        }
        return null;
    }

    private static boolean startsWith(byte[] bytes, byte[] prefix) {
        return bytes.length >= prefix.length
                && Arrays.equals(bytes, 0, prefix.length, prefix, 0, prefix.length);
    }

    private static int intAt(byte[] bytes, int at) {
        return ByteBuffer.wrap(bytes, at, Integer.BYTES).getInt();
    }

    /** What an ObjectOutputStream writes for {@code value}, without its last {@code end} bytes. */
    private static byte[] prefix(Object value, int end) {
        try {
            byte[] whole = streamed(value);
            return Arrays.copyOf(whole, whole.length - end);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] streamed(Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(value);
        }
        return bytes.toByteArray();
    }

    @Override
    public Object deserialize(String name, byte[] bytes, ClassLoader loader)
            throws IOException, ClassNotFoundException {
        Object read = read(bytes);
        if (read != null) {
            return read;
        }
        try (ObjectInputStream in = new CustomObjectInputStream(new ByteArrayInputStream(bytes),
                loader, LOG, allowedClasses, warnOnRefusal)) {
            return in.readObject();
        }
    }
}
