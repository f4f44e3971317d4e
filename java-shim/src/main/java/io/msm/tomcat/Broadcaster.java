package io.msm.tomcat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

import jakarta.servlet.http.HttpSession;
import jakarta.servlet.http.HttpSessionAttributeListener;
import jakarta.servlet.http.HttpSessionBindingEvent;
import jakarta.servlet.http.HttpSessionEvent;
import jakarta.servlet.http.HttpSessionListener;

import org.apache.catalina.Context;
import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;
import org.apache.tomcat.util.ExceptionUtils;

import io.msm.MsmException;
import io.msm.Native;
import io.msm.Pending;
import io.msm.SessionEvent;

/**
 * With {@code sessionEvents="broadcast"}: publishes the session events this Tomcat's listeners
 * hear (a session created or destroyed, an attribute added, replaced or removed) and fires the
 * listeners for those the other Tomcats of the context publish (the contract is the core's, in
 * {@code native/broadcast.rs}).
 *
 * <p>One daemon thread per manager does both, off the requests' path: it publishes queued
 * events as soon as they come (in the order this Tomcat's listeners heard them), and polls
 * every {@code broadcastPollInterval}. A heard event reaches the context's
 * {@code HttpSessionListener}s and {@code HttpSessionAttributeListener}s with a session object
 * that stands for the session elsewhere: its id, and for an attribute event the attribute's
 * value after the event when values are broadcast ({@code broadcastValues="true"}); the event's
 * {@code getValue()} is that value too (Tomcat gives the old value of a replacement, which is
 * not broadcast).
 */
final class Broadcaster {
    private static final Log LOG = LogFactory.getLog(Broadcaster.class);
    /** Most events published in one round trip. */
    private static final int BATCH = 1000;
    /**
     * Most events waiting for publication (while memcached is slow): beyond, events are
     * dropped and counted as unpublished.
     */
    private static final int QUEUED = 100_000;

    private final MemcachedSessionManager manager;
    private final long handle;
    private final long pollMillis;
    private final boolean values;
    private final LinkedBlockingQueue<SessionEvent> queue = new LinkedBlockingQueue<>(QUEUED);
    /** Events dropped here: their queue full, or their publication refused. */
    private final LongAdder dropped;
    private final Thread thread;
    private volatile boolean running = true;

    /**
     * Starts broadcasting for a manager.
     *
     * @param manager the manager, started
     * @param handle its native handle
     * @param pollMillis {@code broadcastPollInterval}
     * @param dropped counts the events dropped before the core had them
     */
    Broadcaster(MemcachedSessionManager manager, long handle, long pollMillis, LongAdder dropped) {
        this.manager = manager;
        this.handle = handle;
        this.pollMillis = pollMillis;
        this.dropped = dropped;
        this.values = Native.broadcastValues(handle);
        this.thread = new Thread(this::run,
                "msm-broadcast" + manager.getContext().getName().replace('/', '-'));
        thread.setDaemon(true);
        // Not the web application's loader, which a stopped context must be able to let go;
        // listeners run with it bound (see fire).
        thread.setContextClassLoader(Broadcaster.class.getClassLoader());
        thread.start();
    }

    /** @return whether attribute events carry their values, which the caller serializes */
    boolean sendsValues() {
        return values;
    }

    /**
     * Queues an event this Tomcat's listeners heard, for publication; drops it (counted) when
     * the queue is full.
     *
     * @param event the event
     */
    void heardHere(SessionEvent event) {
        if (!queue.offer(event)) {
            dropped.increment();
        }
    }

    /**
     * Stops polling, waits for the thread (its native calls end within their timeouts), then
     * publishes what is still queued.
     */
    void stop() {
        running = false;
        thread.interrupt();
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        publishQueued(null);
    }

    private void run() {
        long nextPoll = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(pollMillis);
        while (running) {
            try {
                long wait = nextPoll - System.nanoTime();
                SessionEvent first = wait > 0 ? queue.poll(wait, TimeUnit.NANOSECONDS) : null;
                if (first != null) {
                    publishQueued(first);
                }
                if (running && System.nanoTime() - nextPoll >= 0) {
                    nextPoll = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(pollMillis);
                    fire(poll());
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException | LinkageError e) {
                LOG.warn("session events of context [" + manager.getContext().getName()
                        + "] not broadcast: " + e, e);
            }
        }
    }

    /** Publishes {@code first} (if any) and the events queued after it, in batches. */
    private void publishQueued(SessionEvent first) {
        List<SessionEvent> batch = new ArrayList<>();
        if (first != null) {
            batch.add(first);
        }
        do {
            queue.drainTo(batch, BATCH - batch.size());
            if (!batch.isEmpty()) {
                publish(batch);
                batch.clear();
            }
        } while (!queue.isEmpty());
    }

    private void publish(List<SessionEvent> batch) {
        int n = batch.size();
        int[] kinds = new int[n];
        String[] ids = new String[n];
        String[] names = new String[n];
        byte[][] bytes = new byte[n][];
        for (int i = 0; i < n; i++) {
            SessionEvent event = batch.get(i);
            kinds[i] = event.kind().ordinal();
            ids[i] = event.id();
            names[i] = event.name();
            bytes[i] = event.value();
        }
        try {
            Pending<Void> done = new Pending<>();
            Native.publish(handle, kinds, ids, names, bytes, done);
            done.await();
        } catch (MsmException | IllegalArgumentException e) {
            dropped.add(n);
            LOG.warn(n + " session events not broadcast: " + e.getMessage());
        }
    }

    private SessionEvent[] poll() {
        try {
            Pending<SessionEvent[]> heard = new Pending<>();
            Native.broadcastEvents(handle, heard);
            return heard.await();
        } catch (MsmException | IllegalArgumentException e) {
            LOG.debug("broadcast session events not read: " + e.getMessage());
            return new SessionEvent[0];
        }
    }

    /** Fires the context's listeners for events heard from the other Tomcats, in order. */
    private void fire(SessionEvent[] heard) {
        if (heard.length == 0 || !running) {
            return;
        }
        Context context = manager.getContext();
        ClassLoader original = context.bind(false, null);
        try {
            for (SessionEvent event : heard) {
                fire(context, event);
            }
        } finally {
            context.unbind(false, original);
        }
    }

    private void fire(Context context, SessionEvent event) {
        Object value = event.value() == null ? null
                : manager.deserializeHeard(event.id(), event.name(), event.value());
        HttpSession session = manager.standIn(event.id(), event.name(), value).getSession();
        Object[] listeners = event.kind().namesAttribute()
                ? context.getApplicationEventListeners()
                : context.getApplicationLifecycleListeners();
        for (Object listener : listeners) {
            try {
                switch (event.kind()) {
                    case CREATED:
                        if (listener instanceof HttpSessionListener) {
                            ((HttpSessionListener) listener)
                                    .sessionCreated(new HttpSessionEvent(session));
                        }
                        break;
                    case DESTROYED:
                        if (listener instanceof HttpSessionListener) {
                            ((HttpSessionListener) listener)
                                    .sessionDestroyed(new HttpSessionEvent(session));
                        }
                        break;
                    default:
                        if (listener instanceof HttpSessionAttributeListener) {
                            fireAttribute((HttpSessionAttributeListener) listener,
                                    new HttpSessionBindingEvent(session, event.name(), value),
                                    event.kind());
                        }
                        break;
                }
            } catch (Throwable t) {
                ExceptionUtils.handleThrowable(t);
                LOG.warn("session listener " + listener.getClass().getName() + " failed on a "
                        + "broadcast event: " + t, t);
            }
        }
    }

    private static void fireAttribute(HttpSessionAttributeListener listener,
            HttpSessionBindingEvent event, SessionEvent.Kind kind) {
        switch (kind) {
            case ATTRIBUTE_ADDED:
                listener.attributeAdded(event);
                break;
            case ATTRIBUTE_REPLACED:
                listener.attributeReplaced(event);
                break;
            default:
                listener.attributeRemoved(event);
                break;
        }
    }
}
