package io.msm.spring.boot;

import java.util.Map;

import org.apache.catalina.Context;
import org.apache.tomcat.util.IntrospectionUtils;

import io.msm.tomcat.MemcachedSessionManager;

/**
 * The only class of the starter that names Tomcat's types: loaded when Boot's Tomcat customizes
 * a context, never on Jetty or Undertow, where Tomcat is not on the class path.
 */
final class TomcatContexts {
    private TomcatContexts() {}

    /**
     * Sets msm's manager on a context, each property as the attribute of the same name.
     *
     * @param context Tomcat's {@code Context}
     * @param attributes manager attributes
     */
    static void install(Object context, Map<String, String> attributes) {
        MemcachedSessionManager manager = new MemcachedSessionManager();
        for (Map.Entry<String, String> attribute : attributes.entrySet()) {
            // As context.xml's digester does: a setter, else setProperty(name, value).
            IntrospectionUtils.setProperty(manager, attribute.getKey(), attribute.getValue(), true);
        }
        ((Context) context).setManager(manager);
    }
}
