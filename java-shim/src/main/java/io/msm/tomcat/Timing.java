package io.msm.tomcat;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/** Count, minimum, average and maximum of a duration measured in microseconds. */
final class Timing {
    private final LongAdder count = new LongAdder();
    private final LongAdder total = new LongAdder();
    private final AtomicLong min = new AtomicLong(Long.MAX_VALUE);
    private final AtomicLong max = new AtomicLong();

    /**
     * Records one measurement.
     *
     * @param startNanos {@link System#nanoTime()} when it started
     */
    void since(long startNanos) {
        long micros = (System.nanoTime() - startNanos) / 1000;
        count.increment();
        total.add(micros);
        min.accumulateAndGet(micros, Math::min);
        max.accumulateAndGet(micros, Math::max);
    }

    long count() {
        return count.sum();
    }

    long minMicros() {
        return count() == 0 ? 0 : min.get();
    }

    long avgMicros() {
        long n = count();
        return n == 0 ? 0 : total.sum() / n;
    }

    long maxMicros() {
        return max.get();
    }
}
