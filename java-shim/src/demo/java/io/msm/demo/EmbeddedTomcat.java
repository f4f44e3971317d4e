package io.msm.demo;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;

import org.apache.catalina.Context;
import org.apache.catalina.Lifecycle;
import org.apache.catalina.LifecycleException;
import org.apache.catalina.LifecycleState;
import org.apache.catalina.Manager;
import org.apache.catalina.Pipeline;
import org.apache.catalina.Valve;
import org.apache.catalina.WebResourceRoot;
import org.apache.catalina.Wrapper;
import org.apache.catalina.authenticator.FormAuthenticator;
import org.apache.catalina.realm.MemoryRealm;
import org.apache.catalina.session.StandardManager;
import org.apache.catalina.startup.Tomcat;
import org.apache.catalina.webresources.JarResourceSet;
import org.apache.catalina.webresources.StandardRoot;
import org.apache.tomcat.util.IntrospectionUtils;
import org.apache.tomcat.util.descriptor.web.ErrorPage;
import org.apache.tomcat.util.descriptor.web.LoginConfig;
import org.apache.tomcat.util.descriptor.web.SecurityCollection;
import org.apache.tomcat.util.descriptor.web.SecurityConstraint;

import io.msm.tomcat.MemcachedSessionManager;

/**
 * An embedded Tomcat serving {@link DemoServlet} at the root context, for the demo, the tests
 * and the benchmarks.
 *
 * <pre>
 * java io.msm.demo.EmbeddedTomcat --port 8080 [--route a] [--manager msm|standard|class:NAME]
 *      [--attr name=value]... [--context name=value]... [--connector name=value]...
 *      [--webapp-jar path]... [--form-login user:password:role]
 * </pre>
 *
 * {@code --manager} chooses this project's manager ({@code msm}, the default), Tomcat's
 * {@code StandardManager} ({@code standard}), or any other {@link Manager} on the class path by
 * its class name ({@code class:NAME}, with a public no-argument constructor, as
 * {@code <Manager className="NAME">} in {@code context.xml}): the benchmark compares this manager
 * with the original memcached-session-manager that way.
 * {@code --attr} sets an attribute of the manager (an error when the manager does not take it),
 * {@code --context} one of the context, the way
 * {@code context.xml} sets them on {@code <Manager>} and {@code <Context>}; {@code --connector}
 * one of the HTTP connector, as {@code server.xml} does (e.g. {@code useVirtualThreads=true});
 * {@code --webapp-jar}
 * adds a jar to the web application, as one in its {@code WEB-INF/lib} (its classes load through
 * the web application's class loader, not Tomcat's); {@code --form-login} protects
 * {@code /secure/*} with Tomcat's FORM authentication against a {@code MemoryRealm} holding that
 * one user, added as Tomcat adds an authenticator when a context starts: after the manager. The
 * context has the {@link SessionEvents} listener. Once started, prints
 * {@code MANAGER <class>} and {@code VALVES host=<classes> context=<classes>} (the valves of the
 * host's and the context's pipelines, comma-separated, e.g. those a manager added at its start),
 * then {@code READY <port>} when serving; exits with status 2 when the context failed to start. The
 * line {@code reload} on standard input reloads the context, as JMX or the manager application does. A
 * SIGTERM stops Tomcat gracefully (its contexts and their managers stop, as a Tomcat shutdown
 * does); a SIGKILL is a crash.
 */
public final class EmbeddedTomcat {
    private EmbeddedTomcat() {}

    /**
     * Starts Tomcat and serves until stopped (SIGTERM) or killed.
     *
     * @param args see the class documentation
     * @throws Exception when Tomcat cannot start
     */
    public static void main(String[] args) throws Exception {
        int port = 8080;
        String route = null;
        String manager = "msm";
        List<String[]> attributes = new ArrayList<>();
        List<String[]> contextAttributes = new ArrayList<>();
        List<String> webappJars = new ArrayList<>();
        List<String[]> connectorAttributes = new ArrayList<>();
        String formLogin = null;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--port":
                    port = Integer.parseInt(args[i + 1]);
                    break;
                case "--route":
                    route = args[i + 1];
                    break;
                case "--manager":
                    manager = args[i + 1];
                    break;
                case "--attr":
                    attributes.add(args[i + 1].split("=", 2));
                    break;
                case "--context":
                    contextAttributes.add(args[i + 1].split("=", 2));
                    break;
                case "--connector":
                    connectorAttributes.add(args[i + 1].split("=", 2));
                    break;
                case "--webapp-jar":
                    webappJars.add(args[i + 1]);
                    break;
                case "--form-login":
                    formLogin = args[i + 1];
                    break;
                default:
                    throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        File base = Files.createTempDirectory("msm-tomcat").toFile();
        base.deleteOnExit();
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(base.getAbsolutePath());
        tomcat.setPort(port);
        for (String[] attribute : connectorAttributes) {
            tomcat.getConnector().setProperty(attribute[0], attribute.length > 1 ? attribute[1] : "");
        }
        tomcat.getConnector();
        if (route != null) {
            tomcat.getEngine().setJvmRoute(route);
            System.setProperty("msm.demo.route", route);
        }
        Context context = tomcat.addContext("", base.getAbsolutePath());
        // What a web.xml declares, declared again at each start, as ContextConfig reads web.xml
        // again: a reload removes the servlets and listeners (StandardContext.resetContext).
        context.addLifecycleListener(event -> {
            if (event.getType().equals(Lifecycle.CONFIGURE_START_EVENT)) {
                declareApplication(context);
            }
        });
        ErrorPage notFound = new ErrorPage();
        notFound.setErrorCode(404);
        notFound.setLocation("/error-page");
        context.addErrorPage(notFound);
        if (!webappJars.isEmpty()) {
            WebResourceRoot resources = new StandardRoot(context);
            for (String jar : webappJars) {
                // Mounted as Tomcat mounts each jar of WEB-INF/lib.
                resources.addPreResources(new JarResourceSet(resources, "/WEB-INF/classes",
                        new File(jar).getAbsolutePath(), "/"));
            }
            context.setResources(resources);
        }
        for (String[] attribute : contextAttributes) {
            IntrospectionUtils.setProperty(context, attribute[0],
                    attribute.length > 1 ? attribute[1] : "", true);
        }
        context.setManager(newManager(manager, attributes));
        if (formLogin != null) {
            protect(context, base, formLogin.split(":", 3));
        }
        tomcat.start();
        if (context.getState() != LifecycleState.STARTED) {
            System.out.println("CONTEXT FAILED");
            System.out.flush();
            tomcat.stop();
            System.exit(2);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                tomcat.stop();
            } catch (LifecycleException e) {
                System.err.println("Tomcat did not stop: " + e);
            }
        }, "graceful-stop"));
        System.out.println("MANAGER " + context.getManager().getClass().getName());
        System.out.println("VALVES host=" + valves(context.getParent().getPipeline())
                + " context=" + valves(context.getPipeline()));
        System.out.println("READY " + port);
        System.out.flush();
        Thread commands = new Thread(() -> obey(context), "commands");
        commands.setDaemon(true);
        commands.start();
        tomcat.getServer().await();
    }

    /**
     * The manager {@code --manager} names, with the {@code --attr} attributes set as
     * {@code context.xml}'s digester sets them: a setter, else {@code setProperty(name, value)}.
     *
     * @throws IllegalArgumentException when the name is unknown, or the manager has no such
     *     attribute or its setter refused the value (the digester would only log it, and a
     *     mistyped attribute go unnoticed)
     * @throws ReflectiveOperationException when a {@code class:} manager cannot be created
     */
    private static Manager newManager(String name, List<String[]> attributes)
            throws ReflectiveOperationException {
        Manager manager;
        if (name.equals("msm")) {
            manager = new MemcachedSessionManager();
        } else if (name.equals("standard")) {
            manager = new StandardManager();
        } else if (name.startsWith("class:")) {
            manager = Class.forName(name.substring("class:".length()))
                    .asSubclass(Manager.class).getConstructor().newInstance();
        } else {
            throw new IllegalArgumentException("unknown manager " + name
                    + " (msm, standard or class:NAME)");
        }
        for (String[] attribute : attributes) {
            if (!IntrospectionUtils.setProperty(manager, attribute[0],
                    attribute.length > 1 ? attribute[1] : "", true)) {
                // The name only: a value may be a secret.
                throw new IllegalArgumentException(manager.getClass().getName()
                        + " did not take the attribute " + attribute[0]
                        + ": no such attribute, or a value its setter refused (see the log)");
            }
        }
        return manager;
    }

    /** The class names of a pipeline's valves, basic valve last, comma-separated. */
    private static String valves(Pipeline pipeline) {
        List<String> names = new ArrayList<>();
        for (Valve valve : pipeline.getValves()) {
            names.add(valve.getClass().getName());
        }
        return String.join(",", names);
    }

    /** The demo servlet at {@code /*} and the {@link SessionEvents} listener. */
    private static void declareApplication(Context context) {
        // Prints every end of a session it hears (the tests of session events read it).
        context.addApplicationListener(SessionEvents.class.getName());
        Wrapper demo = Tomcat.addServlet(context, "demo", new DemoServlet());
        demo.addMapping("/*");
        demo.setAsyncSupported(true);
    }

    /**
     * Carries out the commands read from standard input, one per line, until it ends:
     * {@code reload} reloads the context as Tomcat's manager application or JMX does (its
     * manager stopped and started again), then prints {@code RELOADED <count>}, or
     * {@code RELOAD FAILED} with the reason when the context did not start again.
     */
    private static void obey(Context context) {
        BufferedReader input = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8));
        int reloads = 0;
        try {
            for (String line = input.readLine(); line != null; line = input.readLine()) {
                if (!line.trim().equals("reload")) {
                    System.out.println("UNKNOWN COMMAND " + line);
                } else {
                    context.reload();
                    reloads++;
                    System.out.println(context.getState() == LifecycleState.STARTED
                            ? "RELOADED " + reloads
                            : "RELOAD FAILED: context " + context.getState());
                }
                System.out.flush();
            }
        } catch (IOException e) {
            System.err.println("standard input unreadable: " + e);
        }
    }

    /** {@code /secure/*} behind FORM login, for the one user {@code login} (name, password, role). */
    private static void protect(Context context, File base, String[] login) throws IOException {
        File users = new File(base, "users.xml");
        Files.write(users.toPath(), ("<tomcat-users><user username=\"" + login[0] + "\" password=\""
                + login[1] + "\" roles=\"" + login[2] + "\"/></tomcat-users>")
                .getBytes(StandardCharsets.UTF_8));
        MemoryRealm realm = new MemoryRealm();
        realm.setPathname(users.getAbsolutePath());
        context.setRealm(realm);
        context.setLoginConfig(new LoginConfig("FORM", null, "/login-form", "/login-error"));
        context.addSecurityRole(login[2]);
        SecurityCollection secured = new SecurityCollection();
        secured.addPattern("/secure/*");
        SecurityConstraint constraint = new SecurityConstraint();
        constraint.addAuthRole(login[2]);
        constraint.addCollection(secured);
        context.addConstraint(constraint);
        context.getPipeline().addValve(new FormAuthenticator());
    }
}
