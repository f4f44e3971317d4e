package io.msm.spring.boot;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Configuration;

/**
 * The starter in a Boot application whose web server is Undertow (Tomcat is not on this test's
 * classpath): it stays out of the way without {@code msm.memcached-nodes}, and with it the
 * application stops with a message saying msm needs Tomcat.
 */
class UndertowTest {
    /** A Boot web application with every auto-configuration, the starter's included. */
    @Configuration(proxyBeanMethods = false)
    @EnableAutoConfiguration
    static class App {}

    private static ConfigurableApplicationContext run(String... args) {
        SpringApplication application = new SpringApplication(App.class);
        return application.run(args);
    }

    @Test
    void withoutNodesTheApplicationStartsOnUndertow() {
        try (ConfigurableApplicationContext context = run("--server.port=0", "--server.address=127.0.0.1")) {
            assertTrue(context.isRunning());
            assertThrows(ClassNotFoundException.class,
                    () -> Class.forName("org.apache.catalina.startup.Tomcat"));
        }
    }

    @Test
    void withNodesTheApplicationStopsSayingMsmNeedsTomcat() {
        Throwable failure = assertThrows(Throwable.class, () -> run("--server.port=0",
                "--server.address=127.0.0.1", "--msm.memcached-nodes=n1:127.0.0.1:11211").close());
        StringBuilder messages = new StringBuilder();
        for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
            messages.append(cause.getMessage()).append('\n');
        }
        assertTrue(messages.toString().contains("msm's session manager needs Tomcat, and this"
                + " application's web server is UndertowServletWebServerFactory"), messages.toString());
    }
}
