package io.msm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The JNI face without memcached: loading, configuration errors, contained panics. */
class NativeTest {
    private static final String[] NONE = new String[0];

    @Test
    void theLibraryLoadsFromTheJarForThisPlatform() {
        assertEquals("linux-x86_64", NativeLibrary.platform());
        assertEquals("META-INF/native/linux-x86_64/libmsm.so", NativeLibrary.resource());
        assertTrue(NativeTest.class.getClassLoader().getResource(NativeLibrary.resource()) != null);
        NativeLibrary.load();
        assertEquals("jar resource META-INF/native/linux-x86_64/libmsm.so",
                NativeLibrary.loadedFrom(), "nothing else on this JVM's paths provides libmsm");
    }

    @Test
    void anUnknownAttributeIsRefusedByName() {
        MsmConfigException e = assertThrows(MsmConfigException.class, () -> Native.create(
                new String[] {"memcachedNodes", "colour"}, new String[] {"n1:localhost:1", "blue"},
                "localhost", "/shop"));
        assertTrue(e.getMessage().contains("`colour`"), e.getMessage());
        assertTrue(e.getMessage().contains("unknown attribute"), e.getMessage());
    }

    @Test
    void aBadValueIsRefusedWithAttributeAndValue() {
        MsmConfigException e = assertThrows(MsmConfigException.class, () -> Native.create(
                new String[] {"memcachedNodes", "operationTimeout"},
                new String[] {"n1:localhost:1", "soon"}, "localhost", ""));
        assertTrue(e.getMessage().contains("`operationTimeout`"), e.getMessage());
        assertTrue(e.getMessage().contains("`soon`"), e.getMessage());
        assertThrows(MsmConfigException.class,
                () -> Native.create(NONE, NONE, "localhost", ""), "memcachedNodes is required");
    }

    @Test
    void aPanicBecomesAnExceptionAndTheJvmGoesOn() {
        MsmException e = assertThrows(MsmException.class, Native::selftestPanic);
        assertTrue(e.getMessage().contains("panic"), e.getMessage());
        long handle = Native.create(new String[] {"memcachedNodes"},
                new String[] {"n1:127.0.0.1:1"}, "localhost", "");
        try {
            assertTrue(Native.stats(handle).contains("ids_generated 0"));
        } finally {
            Native.destroy(handle);
        }
    }

    @Test
    void badArgumentsAreExceptionsNotCrashes() {
        assertThrows(IllegalArgumentException.class, () -> Native.stats(987654321L));
        assertThrows(IllegalArgumentException.class,
                () -> Native.create(null, NONE, "localhost", ""));
        long handle = Native.create(new String[] {"memcachedNodes"},
                new String[] {"n1:127.0.0.1:1"}, "localhost", "");
        try {
            assertThrows(IllegalArgumentException.class, () -> Native.end(handle, 987654321L,
                    Native.OUTCOME_UNUSED, null, 0, 0, 0, 0, null, null, null, null, null),
                    "no such request");
            MsmRequest hostile = begin(handle, "x\r\nflush_all", null);
            assertTrue(hostile.invalidId());
            assertNull(hostile.sessionId());
            end(handle, hostile);
            assertThrows(IllegalArgumentException.class,
                    () -> Native.load(handle, null, new Pending<>()));
        } finally {
            Native.destroy(handle);
        }
        assertThrows(IllegalArgumentException.class, () -> Native.stats(handle),
                "a destroyed handle is refused");
    }

    @Test
    void routingRewritesTheRouteAndKeepsAGoodId() {
        long handle = Native.create(new String[] {"memcachedNodes"},
                new String[] {"n1:127.0.0.1:1"}, "localhost", "");
        try {
            String id = "0123456789ABCDEF0123456789ABCDEF-n1.a";
            MsmRequest elsewhere = begin(handle, id, "b");
            assertTrue(elsewhere.newCookie());
            assertEquals("0123456789ABCDEF0123456789ABCDEF-n1.b", elsewhere.sessionId());
            end(handle, elsewhere);
            MsmRequest here = begin(handle, id, "a");
            assertFalse(here.newCookie());
            assertEquals(id, here.sessionId());
            end(handle, here);
        } finally {
            Native.destroy(handle);
        }
    }

    private static MsmRequest begin(long handle, String id, String route) {
        return Native.begin(handle, id, "/", route);
    }

    private static void end(long handle, MsmRequest request) {
        Native.end(handle, request.handle(), Native.OUTCOME_UNUSED, null, 0, 0, 0, 0, null,
                null, null, null, null);
    }
}
