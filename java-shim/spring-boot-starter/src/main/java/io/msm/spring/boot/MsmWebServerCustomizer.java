package io.msm.spring.boot;

import java.lang.reflect.Array;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.Map;
import java.util.logging.Logger;

import org.springframework.boot.web.server.ConfigurableWebServerFactory;
import org.springframework.boot.web.server.WebServerFactoryCustomizer;

/**
 * Gives Boot's embedded Tomcat a context customizer that sets msm's manager on the application's
 * context, with the {@code msm.*} properties as its attributes. Boot 3.5 and 4.0 name Tomcat's
 * customizer type differently ({@code org.springframework.boot.web.embedded.tomcat} and
 * {@code org.springframework.boot.tomcat}); this one class serves both by finding the factory's
 * {@code addContextCustomizers} method and implementing the type it takes.
 *
 * <p>Without {@code msm.memcached-nodes} it does nothing. On a web server other than Tomcat
 * (Jetty, Undertow) it says so at start and does nothing, unless {@code msm.memcached-nodes} is
 * set: then the application stops with a message saying msm needs Tomcat.
 */
public class MsmWebServerCustomizer implements WebServerFactoryCustomizer<ConfigurableWebServerFactory> {
    private static final Logger LOG = Logger.getLogger(MsmWebServerCustomizer.class.getName());

    private final MsmProperties properties;

    /**
     * A customizer for these properties.
     *
     * @param properties the bound {@code msm.*} properties
     */
    public MsmWebServerCustomizer(MsmProperties properties) {
        this.properties = properties;
    }

    @Override
    public void customize(ConfigurableWebServerFactory factory) {
        boolean configured = properties.getMemcachedNodes() != null;
        Method add = contextCustomizers(factory.getClass());
        if (add == null) {
            String message = "msm's session manager needs Tomcat, and this application's web server is "
                    + factory.getClass().getSimpleName();
            if (configured) {
                throw new IllegalStateException(message + ": remove the msm.* properties, or use Boot's"
                        + " Tomcat (spring-boot-starter-tomcat) instead of Jetty or Undertow");
            }
            LOG.info(message + ": msm stays out of the way");
            return;
        }
        if (!configured) {
            LOG.fine("msm.memcached-nodes is not set: sessions stay in Tomcat's memory");
            return;
        }
        Class<?> type = add.getParameterTypes()[0].getComponentType();
        Map<String, String> attributes = properties.attributes();
        Object customizer = Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type},
                (proxy, method, args) -> {
                    switch (method.getName()) {
                        case "customize":
                            TomcatContexts.install(args[0], attributes);
                            return null;
                        case "equals":
                            return proxy == args[0];
                        case "hashCode":
                            return System.identityHashCode(proxy);
                        default:
                            return "msm context customizer " + attributes.keySet();
                    }
                });
        Object array = Array.newInstance(type, 1);
        Array.set(array, 0, customizer);
        try {
            add.invoke(factory, array);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        } catch (InvocationTargetException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    /** The factory's {@code addContextCustomizers(TomcatContextCustomizer...)}, or null. */
    private static Method contextCustomizers(Class<?> factory) {
        for (Method method : factory.getMethods()) {
            Class<?>[] parameters = method.getParameterTypes();
            if (method.getName().equals("addContextCustomizers") && parameters.length == 1
                    && parameters[0].isArray()
                    && parameters[0].getComponentType().getSimpleName().equals("TomcatContextCustomizer")) {
                return method;
            }
        }
        return null;
    }
}
