package io.msm.tomcat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InvalidClassException;
import java.io.NotSerializableException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

/** The default attribute serializer. */
class JavaSerializerTest {
    private final JavaSerializer serializer = new JavaSerializer();
    private final ClassLoader loader = JavaSerializerTest.class.getClassLoader();

    @Test
    void valuesSurviveARoundTrip() throws Exception {
        List<Object> cart = new ArrayList<>(List.of("book", 3, new int[] {1, 2}));
        @SuppressWarnings("unchecked")
        List<Object> back = (List<Object>) serializer.deserialize("cart",
                serializer.serialize("cart", cart), loader);
        assertEquals(cart.get(0), back.get(0));
        assertEquals(cart.get(1), back.get(1));
        assertArrayEquals((int[]) cart.get(2), (int[]) back.get(2));
    }

    @Test
    void aNonSerializableValueIsAnIOExceptionNamingTheClass() {
        NotSerializableException e = assertThrows(NotSerializableException.class,
                () -> serializer.serialize("thread", new Object()));
        assertEquals("java.lang.Object", e.getMessage());
    }

    @Test
    void garbageDoesNotDeserialize() {
        assertThrows(java.io.IOException.class,
                () -> serializer.deserialize("x", new byte[] {1, 2, 3}, loader));
    }

    @Test
    void commonValuesAreWrittenAsAnObjectOutputStreamWritesThem() throws Exception {
        byte[] large = new byte[70_000];
        Arrays.fill(large, (byte) 7);
        List<Object> values = List.of(new byte[0], new byte[] {-1, 0, 1}, large,
                0, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, 0L, Long.MIN_VALUE, Long.MAX_VALUE,
                "", "cart", "x".repeat(0xFFFF), "x".repeat(0x10000), "caf\u00e9", "a\0b",
                "\ud83d\ude00", 3.5, List.of("not", "common"));
        for (Object value : values) {
            byte[] written = serializer.serialize("v", value);
            assertArrayEquals(streamed(value), written, () -> "bytes of " + describe(value));
            Object back = serializer.deserialize("v", written, loader);
            if (value instanceof byte[]) {
                assertArrayEquals((byte[]) value, (byte[]) back);
            } else {
                assertEquals(value, back);
            }
        }
    }

    @Test
    void streamsAreReadAsAnObjectInputStreamReadsThem() throws Exception {
        List<Object> values = List.of(new byte[0], new byte[] {-1, 0, 1}, new byte[70_000], 7,
                Integer.MIN_VALUE, Long.MAX_VALUE, "", "cart", "x".repeat(0xFFFF),
                "x".repeat(0x10000), "caf\u00e9", "a\0b", "\ud83d\ude00", List.of("a", 1));
        for (Object value : values) {
            byte[] stream = streamed(value);
            // Whole, with a byte more, and cut short: as an ObjectInputStream reads them.
            for (byte[] bytes : List.of(stream, Arrays.copyOf(stream, stream.length + 1),
                    Arrays.copyOf(stream, stream.length - 1))) {
                Object expected;
                try {
                    expected = objectStreamRead(bytes);
                } catch (IOException e) {
                    assertThrows(e.getClass(), () -> serializer.deserialize("v", bytes, loader),
                            () -> describe(value));
                    continue;
                }
                Object read = serializer.deserialize("v", bytes, loader);
                if (value instanceof byte[]) {
                    assertArrayEquals((byte[]) expected, (byte[]) read, () -> describe(value));
                } else {
                    assertEquals(expected, read, () -> describe(value));
                }
            }
        }
    }

    @Test
    void theClassFilterHoldsForEveryValue() throws Exception {
        serializer.allowClasses(Pattern.compile("java\\.lang\\.(Integer|Number)"), false);
        assertEquals(42, serializer.deserialize("v", streamed(42), loader));
        assertEquals("cart", serializer.deserialize("v", streamed("cart"), loader));
        for (Object refused : List.of(new byte[] {1}, 42L)) {
            assertThrows(InvalidClassException.class,
                    () -> serializer.deserialize("v", streamed(refused), loader),
                    () -> describe(refused));
        }
        serializer.allowClasses(null, false);
        assertEquals(42L, serializer.deserialize("v", streamed(42L), loader));
    }

    private static Object objectStreamRead(byte[] bytes) throws Exception {
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes))) {
            return in.readObject();
        }
    }

    private static byte[] streamed(Object value) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(value);
        }
        return bytes.toByteArray();
    }

    private static String describe(Object value) {
        String text = value instanceof byte[] ? "byte[" + ((byte[]) value).length + "]"
                : value.toString();
        return value.getClass().getSimpleName() + " " + text.substring(0, Math.min(40, text.length()));
    }
}
