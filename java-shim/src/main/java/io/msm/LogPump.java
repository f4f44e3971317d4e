package io.msm;

import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;

/**
 * Forwards the native core's log records into Tomcat's log (JULI), at matching levels, from one
 * daemon thread per class loader. The core never calls into Java: this thread asks.
 */
final class LogPump implements Runnable {
    private static final Log LOG = LogFactory.getLog("io.msm.core");
    private static boolean started;

    private LogPump() {}

    static synchronized void start() {
        if (started) {
            return;
        }
        started = true;
        int level = LOG.isTraceEnabled() ? 5 : LOG.isDebugEnabled() ? 4 : LOG.isInfoEnabled() ? 3
                : LOG.isWarnEnabled() ? 2 : 1;
        if (!Native.installLogging(level)) {
            LOG.info("another tracing collector is installed; msm core records go there");
            return;
        }
        Thread thread = new Thread(new LogPump(), "msm-log-pump");
        thread.setDaemon(true);
        thread.start();
    }

    @Override
    public void run() {
        while (!Thread.currentThread().isInterrupted()) {
            String[] records = Native.drainLogs(256, 500);
            for (int i = 0; i + 2 < records.length; i += 3) {
                String message = "[" + records[i + 1] + "] " + records[i + 2];
                switch (records[i]) {
                    case "1":
                        LOG.error(message);
                        break;
                    case "2":
                        LOG.warn(message);
                        break;
                    case "3":
                        LOG.info(message);
                        break;
                    case "4":
                        LOG.debug(message);
                        break;
                    default:
                        LOG.trace(message);
                        break;
                }
            }
        }
    }
}
