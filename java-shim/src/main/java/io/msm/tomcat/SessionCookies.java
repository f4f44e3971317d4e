package io.msm.tomcat;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import jakarta.servlet.SessionCookieConfig;

import org.apache.catalina.Context;
import org.apache.juli.logging.Log;
import org.apache.tomcat.util.http.CookieProcessor;
import org.apache.tomcat.util.http.CookieProcessorBase;

/**
 * The session cookie's attributes, as the manager's {@code context.xml} attributes
 * {@code sessionCookieDomain}, {@code sessionCookiePath}, {@code sessionCookieSameSite},
 * {@code sessionCookieSecure} and {@code sessionCookieHttpOnly} configure them.
 *
 * <p>They are checked and applied to the {@link Context} when the manager starts, so every session
 * cookie Tomcat writes carries them, the cookies reissued when a session's id changes included
 * (Tomcat builds those from the same configuration). A configured attribute wins over the same
 * setting made elsewhere ({@code <Context sessionCookieDomain/sessionCookiePath/useHttpOnly>},
 * {@code web.xml}'s {@code <cookie-config>}, the application's {@code SessionCookieConfig}); an
 * attribute left out leaves Tomcat's configuration as it is.
 */
final class SessionCookies {
    static final String DOMAIN = "sessionCookieDomain";
    static final String PATH = "sessionCookiePath";
    static final String SAME_SITE = "sessionCookieSameSite";
    static final String SECURE = "sessionCookieSecure";
    static final String HTTP_ONLY = "sessionCookieHttpOnly";
    private static final List<String> NAMES = List.of(DOMAIN, PATH, SAME_SITE, SECURE, HTTP_ONLY);
    private static final List<String> SAME_SITE_VALUES = List.of("Strict", "Lax", "None", "unset");

    private final Map<String, String> configured = new LinkedHashMap<>();
    private String domain;
    private String path;
    private String sameSite;
    private Boolean secure;
    private Boolean httpOnly;

    /**
     * Keeps the value of one of the session cookie attributes; it is checked at start.
     *
     * @param name a manager attribute name
     * @param value its value
     * @return false when {@code name} is not a session cookie attribute
     */
    boolean accept(String name, String value) {
        if (!NAMES.contains(name)) {
            return false;
        }
        configured.put(name, value);
        return true;
    }

    /**
     * Checks every configured value.
     *
     * @throws IllegalArgumentException naming the first bad attribute and its value
     */
    void validate() {
        domain = null;
        path = null;
        sameSite = null;
        secure = null;
        httpOnly = null;
        for (Map.Entry<String, String> entry : configured.entrySet()) {
            String value = entry.getValue() == null ? "" : entry.getValue();
            switch (entry.getKey()) {
                case DOMAIN:
                    domain = domain(value);
                    break;
                case PATH:
                    path = path(value);
                    break;
                case SAME_SITE:
                    sameSite = SAME_SITE_VALUES.stream().filter(v -> v.equalsIgnoreCase(value))
                            .findFirst().orElseThrow(() -> invalid(SAME_SITE, value,
                                    "expected `Strict`, `Lax`, `None` or `unset`"));
                    break;
                case SECURE:
                    secure = bool(SECURE, value);
                    break;
                default:
                    httpOnly = bool(HTTP_ONLY, value);
                    break;
            }
        }
    }

    /**
     * Checks the values and applies them to the context. Must run while the context starts (its
     * {@code SessionCookieConfig} can only be changed then): the manager's start does.
     *
     * @param context the manager's context
     * @param log where what was applied, and warnings about it, are logged
     * @throws IllegalArgumentException naming a bad attribute and its value
     * @throws IllegalStateException when the context is not starting
     */
    void apply(Context context, Log log) {
        validate();
        if (configured.isEmpty()) {
            return;
        }
        SessionCookieConfig config = context.getServletContext().getSessionCookieConfig();
        if (domain != null) {
            context.setSessionCookieDomain(domain);
        }
        if (path != null) {
            context.setSessionCookiePath(path);
        }
        if (secure != null) {
            config.setSecure(secure);
        }
        if (httpOnly != null) {
            // Tomcat sets HttpOnly when either of the two says so.
            context.setUseHttpOnly(httpOnly);
            config.setHttpOnly(httpOnly);
        }
        if (sameSite != null) {
            applySameSite(context, config, log);
        }
        if ("None".equals(sameSite) && !config.isSecure()) {
            log.warn("attribute `" + SAME_SITE + "` = `None` without `" + SECURE + "` = `true`:"
                    + " browsers drop a SameSite=None cookie that is not Secure, and Tomcat marks"
                    + " the session cookie Secure only on requests it sees as HTTPS");
        }
        log.info("session cookie of context [" + context.getName() + "]: " + describe());
    }

    /**
     * Servlet 6 (Tomcat 10.1 and later) has attributes per cookie: SameSite is then set on the
     * session cookie only. Servlet 4 (Tomcat 9) has none: only the context's cookie processor can
     * set it, for every cookie of the context. The sources are compiled for both, hence the lookup.
     */
    private void applySameSite(Context context, SessionCookieConfig config, Log log) {
        Method setAttribute;
        try {
            setAttribute = SessionCookieConfig.class.getMethod("setAttribute", String.class,
                    String.class);
        } catch (NoSuchMethodException e) {
            CookieProcessor processor = context.getCookieProcessor();
            if (!(processor instanceof CookieProcessorBase)) {
                throw invalid(SAME_SITE, configured.get(SAME_SITE), "the context's cookie processor "
                        + processor.getClass().getName() + " has no SameSite setting");
            }
            ((CookieProcessorBase) processor).setSameSiteCookies(sameSite);
            log.warn("attribute `" + SAME_SITE + "` = `" + sameSite + "` applies to every cookie of"
                    + " context [" + context.getName() + "], not only the session cookie: this"
                    + " Tomcat has no SameSite per cookie (Servlet 4)");
            return;
        }
        try {
            setAttribute.invoke(config, "SameSite", sameSite.equals("unset") ? null : sameSite);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("SessionCookieConfig.setAttribute: " + e, e);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            throw cause instanceof RuntimeException ? (RuntimeException) cause
                    : new IllegalStateException("SessionCookieConfig.setAttribute: " + cause, cause);
        }
    }

    /** @return the configured attributes as they go on the cookie */
    String describe() {
        List<String> parts = new ArrayList<>();
        if (domain != null) {
            parts.add("Domain=" + domain);
        }
        if (path != null) {
            parts.add("Path=" + path);
        }
        if (sameSite != null) {
            parts.add("SameSite=" + sameSite);
        }
        if (secure != null) {
            parts.add("Secure=" + secure);
        }
        if (httpOnly != null) {
            parts.add("HttpOnly=" + httpOnly);
        }
        return String.join(" ", parts);
    }

    /** A domain as RFC 6265 (and Tomcat's default cookie processor) accepts it. */
    private static String domain(String value) {
        if (value.startsWith(".")) {
            throw invalid(DOMAIN, value, "no leading dot (RFC 6265 ignores it; Tomcat's cookie"
                    + " processor refuses it): the cookie covers the subdomains anyway");
        }
        String[] labels = value.split("\\.", -1);
        for (String label : labels) {
            if (label.isEmpty() || !label.matches("[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")) {
                throw invalid(DOMAIN, value, "expected a host name such as `example.com`:"
                        + " dot-separated labels of letters, digits and inner hyphens");
            }
        }
        return value;
    }

    /** A path as RFC 6265 accepts it: absolute, printable ASCII without {@code ;}. */
    private static String path(String value) {
        if (!value.startsWith("/")) {
            throw invalid(PATH, value, "expected an absolute path such as `/` or `/shop`");
        }
        for (char c : value.toCharArray()) {
            if (c < 0x20 || c > 0x7e || c == ';') {
                throw invalid(PATH, value, "expected printable ASCII characters without `;`");
            }
        }
        return value;
    }

    private static boolean bool(String name, String value) {
        if (value.equalsIgnoreCase("true")) {
            return true;
        }
        if (value.equalsIgnoreCase("false")) {
            return false;
        }
        throw invalid(name, value, "expected `true` or `false`");
    }

    /**
     * The error that stops the context for a bad manager attribute.
     *
     * @param name the attribute
     * @param value its value
     * @param reason what is expected instead
     * @return the error, naming both
     */
    static IllegalArgumentException invalid(String name, String value, String reason) {
        return new IllegalArgumentException("invalid configuration: attribute `" + name + "` = `"
                + value + "`: " + reason);
    }
}
