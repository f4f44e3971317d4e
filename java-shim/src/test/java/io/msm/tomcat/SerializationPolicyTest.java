package io.msm.tomcat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.juli.logging.LogFactory;
import org.junit.jupiter.api.Test;

/** Checking the policy attributes (the policies themselves are tested end to end). */
class SerializationPolicyTest {
    private static SerializationPolicy with(String... nameValues) {
        SerializationPolicy policy =
                new SerializationPolicy(LogFactory.getLog(SerializationPolicyTest.class));
        for (int i = 0; i + 1 < nameValues.length; i += 2) {
            assertTrue(policy.accept(nameValues[i], nameValues[i + 1]), nameValues[i]);
        }
        return policy;
    }

    @Test
    void otherNamesAreNotTaken() {
        assertFalse(with().accept("serializer", "io.msm.tomcat.JavaSerializer"));
        assertFalse(with().accept("sessionCookieDomain", "example.com"));
    }

    @Test
    void defaultsFailAndDropTheAttribute() {
        SerializationPolicy policy = with();
        policy.start();
        assertEquals(SerializationPolicy.Action.FAIL, policy.action());
        assertFalse(policy.dropsSession());
        assertFalse(policy.distributionStopped());
        assertEquals("", policy.blacklist());
    }

    @Test
    void everyValueIsAccepted() {
        for (SerializationPolicy.Action action : SerializationPolicy.Action.values()) {
            SerializationPolicy policy = with("serializationFailurePolicy", " " + action.value,
                    "deserializationFailurePolicy", "dropSession");
            policy.start();
            assertEquals(action, policy.action());
            assertTrue(policy.dropsSession());
        }
        SerializationPolicy policy = with("deserializationFailurePolicy", "dropAttribute");
        policy.start();
        assertFalse(policy.dropsSession());
    }

    @Test
    void badValuesNameTheAttributeAndTheValue() {
        String[][] bad = {
            {"serializationFailurePolicy", "ignore"},
            {"serializationFailurePolicy", "FAIL"},
            {"serializationFailurePolicy", ""},
            {"deserializationFailurePolicy", "dropAttributes"},
            {"deserializationFailurePolicy", "fail"},
        };
        for (String[] attribute : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> with(attribute[0], attribute[1]).start(), attribute[1]);
            assertTrue(e.getMessage().startsWith("invalid configuration: attribute `"
                    + attribute[0] + "` = `" + attribute[1] + "`: expected"), e.getMessage());
        }
    }
}
