package io.msm.tomcat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.NotSerializableException;
import java.util.ArrayList;
import java.util.List;

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
}
