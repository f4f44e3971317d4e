package io.msm.tomcat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Checking the session cookie attributes (applying them is tested end to end). */
class SessionCookiesTest {
    private static SessionCookies with(String... nameValues) {
        SessionCookies cookies = new SessionCookies();
        for (int i = 0; i + 1 < nameValues.length; i += 2) {
            assertTrue(cookies.accept(nameValues[i], nameValues[i + 1]), nameValues[i]);
        }
        return cookies;
    }

    @Test
    void otherNamesAreNotTaken() {
        assertFalse(new SessionCookies().accept("memcachedNodes", "n1:127.0.0.1:11211"));
        assertFalse(new SessionCookies().accept("sessionCookieName", "SID"));
    }

    @Test
    void goodValuesAreAcceptedAndNormalized() {
        SessionCookies cookies = with("sessionCookieDomain", "shop.example-1.com",
                "sessionCookiePath", "/shop", "sessionCookieSameSite", "lax",
                "sessionCookieSecure", "TRUE", "sessionCookieHttpOnly", "false");
        cookies.validate();
        assertEquals("Domain=shop.example-1.com Path=/shop SameSite=Lax Secure=true HttpOnly=false",
                cookies.describe());
        SessionCookies unset = with("sessionCookieSameSite", "UNSET");
        unset.validate();
        assertEquals("SameSite=unset", unset.describe());
    }

    @Test
    void badValuesNameTheAttributeAndTheValue() {
        String[][] bad = {
            {"sessionCookieSameSite", "sometimes"},
            {"sessionCookieSameSite", ""},
            {"sessionCookieSecure", "yes"},
            {"sessionCookieHttpOnly", "1"},
            {"sessionCookieDomain", ".example.com"},
            {"sessionCookieDomain", "example..com"},
            {"sessionCookieDomain", "-example.com"},
            {"sessionCookieDomain", "example.com."},
            {"sessionCookieDomain", "exa mple.com"},
            {"sessionCookieDomain", ""},
            {"sessionCookiePath", "shop"},
            {"sessionCookiePath", "/shop;Domain=evil.com"},
            {"sessionCookiePath", "/caf\u00e9"},
        };
        for (String[] attribute : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> with(attribute[0], attribute[1]).validate(), attribute[1]);
            assertTrue(e.getMessage().contains("`" + attribute[0] + "` = `" + attribute[1] + "`"),
                    e.getMessage());
        }
    }
}
