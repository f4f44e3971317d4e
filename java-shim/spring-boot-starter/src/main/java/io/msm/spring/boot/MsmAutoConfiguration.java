package io.msm.spring.boot;

import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Bean;

/**
 * Installs msm's session manager into Boot's embedded Tomcat when {@code msm.memcached-nodes}
 * is set, through Boot's own customizer mechanism (a {@code WebServerFactoryCustomizer} that
 * adds a {@code TomcatContextCustomizer}). The {@code msm.*} properties are always bound, so an
 * unknown one stops the application even before the nodes are configured.
 */
@AutoConfiguration
@EnableConfigurationProperties(MsmProperties.class)
public class MsmAutoConfiguration {
    /** Creates the auto-configuration (Spring does). */
    public MsmAutoConfiguration() {}

    /**
     * The customizer of the embedded web server.
     *
     * @param properties the bound {@code msm.*} properties
     * @return the customizer
     */
    @Bean
    public MsmWebServerCustomizer msmWebServerCustomizer(MsmProperties properties) {
        return new MsmWebServerCustomizer(properties);
    }
}
