package io.msm;

import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;

/**
 * Forwards the native core's log records into Tomcat's log (JULI), at matching levels, from one
 * daemon thread per class loader. The core never calls into Java: this thread asks.
 */
final class LogPump implements Runnable {
    private static boolean started;

    private final Log log;

    private LogPump(Log log) {
        this.log = log;
    }

    /**
     * Starts the pump once. It belongs to the class loader of this jar (Tomcat's common loader),
     * not to the web application whose manager happened to start first: its logger and thread
     * are created under this class's loader, so no application is pinned by them.
     */
    static synchronized void start() {
        if (started) {
            return;
        }
        started = true;
        ClassLoader own = LogPump.class.getClassLoader();
        Thread current = Thread.currentThread();
        ClassLoader previous = current.getContextClassLoader();
        current.setContextClassLoader(own);
        try {
            Log log = LogFactory.getLog("io.msm.core");
            int level = log.isTraceEnabled() ? 5 : log.isDebugEnabled() ? 4
                    : log.isInfoEnabled() ? 3 : log.isWarnEnabled() ? 2 : 1;
            if (!Native.installLogging(level)) {
                log.info("another tracing collector is installed; msm core records go there");
                return;
            }
            Thread thread = new Thread(new LogPump(log), "msm-log-pump");
            thread.setContextClassLoader(own);
            thread.setDaemon(true);
            thread.start();
        } finally {
            current.setContextClassLoader(previous);
        }
    }

    @Override
    public void run() {
        while (!Thread.currentThread().isInterrupted()) {
            String[] records = Native.drainLogs(256, 500);
            for (int i = 0; i + 2 < records.length; i += 3) {
                String message = "[" + records[i + 1] + "] " + records[i + 2];
                switch (records[i]) {
                    case "1":
                        log.error(message);
                        break;
                    case "2":
                        log.warn(message);
                        break;
                    case "3":
                        log.info(message);
                        break;
                    case "4":
                        log.debug(message);
                        break;
                    default:
                        log.trace(message);
                        break;
                }
            }
        }
    }
}
