package io.msm.tomcat;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

import io.msm.Native;

/**
 * The statistics of one manager: what the shim counts (requests, serialization, Tomcat
 * failovers) and what the native core counts (writes, loads, nodes), behind one MBean.
 */
public final class ManagerStatistics implements ManagerStatisticsMBean {
    final LongAdder requestsWithSession = new LongAdder();
    final LongAdder requestsWithoutSession = new LongAdder();
    final LongAdder requestsIgnored = new LongAdder();
    final LongAdder serializationFailures = new LongAdder();
    /** Backups abandoned because an attribute could not be serialized (not dropAttribute). */
    final LongAdder backupsNotSerialized = new LongAdder();
    final LongAdder deserializationFailures = new LongAdder();
    final LongAdder backupCallFailures = new LongAdder();
    final LongAdder tomcatFailovers = new LongAdder();
    /** Broadcast events dropped before the core had them: their queue full, or refused. */
    final LongAdder broadcastEventsDropped = new LongAdder();
    final Timing serialization = new Timing();

    private final MemcachedSessionManager manager;

    ManagerStatistics(MemcachedSessionManager manager) {
        this.manager = manager;
    }

    /** The native core's counters, by name; empty while the manager is not running. */
    private Map<String, Long> core() {
        Map<String, Long> values = new HashMap<>();
        String text = getCoreStatistics();
        for (String line : text.split("\n")) {
            int space = line.indexOf(' ');
            if (space > 0) {
                try {
                    values.put(line.substring(0, space), Long.parseLong(line.substring(space + 1)));
                } catch (NumberFormatException e) {
                    // Node state lines are text, not counters.
                }
            }
        }
        return values;
    }

    private long core(String name) {
        return core().getOrDefault(name, 0L);
    }

    @Override
    public long getRequestsWithSession() {
        return requestsWithSession.sum();
    }

    @Override
    public long getRequestsWithoutSession() {
        return requestsWithoutSession.sum();
    }

    @Override
    public long getRequestsIgnored() {
        return requestsIgnored.sum();
    }

    @Override
    public long getBackupsWritten() {
        return core("session_backups");
    }

    @Override
    public long getBackupsSkipped() {
        return core("session_backups_skipped");
    }

    @Override
    public long getBackupsRefreshed() {
        return core("session_backups_refreshed");
    }

    @Override
    public long getBroadcastEventsPublished() {
        return core("broadcast_events_published");
    }

    @Override
    public long getBroadcastEventsUnpublished() {
        return core("broadcast_events_unpublished") + broadcastEventsDropped.sum();
    }

    @Override
    public long getBroadcastEventsHeard() {
        return core("broadcast_events_heard");
    }

    @Override
    public long getBroadcastRecordsRefused() {
        return core("broadcast_records_refused");
    }

    @Override
    public long getBackupsFailed() {
        return core("session_backups_failed") + backupsNotSerialized.sum()
                + backupCallFailures.sum();
    }

    @Override
    public long getSecondCopiesWritten() {
        return core("second_copies_written");
    }

    @Override
    public long getSecondCopiesMissed() {
        return core("second_copies_skipped") + core("second_copies_failed");
    }

    @Override
    public long getRenewalsSkipped() {
        return core("renewals_skipped");
    }

    @Override
    public long getSerializationFailures() {
        return serializationFailures.sum();
    }

    @Override
    public long getDeserializationFailures() {
        return deserializationFailures.sum();
    }

    @Override
    public boolean isDistributionStopped() {
        return manager.policy().distributionStopped();
    }

    @Override
    public void resumeDistribution() {
        manager.policy().resumeDistribution();
    }

    @Override
    public String getSerializationBlacklist() {
        return manager.policy().blacklist();
    }

    @Override
    public long getLocalSessions() {
        return manager.localSessions();
    }

    @Override
    public long getTomcatFailovers() {
        return tomcatFailovers.sum();
    }

    @Override
    public long getMemcachedFailovers() {
        return core("sessions_relocated");
    }

    @Override
    public long getCorruptValues() {
        return core("corrupt_values");
    }

    @Override
    public long getBackupTimeCount() {
        return core("backup_time_count");
    }

    @Override
    public long getBackupTimeMin() {
        return core("backup_time_min_us");
    }

    @Override
    public long getBackupTimeAvg() {
        return core("backup_time_avg_us");
    }

    @Override
    public long getBackupTimeMax() {
        return core("backup_time_max_us");
    }

    @Override
    public long getLoadTimeCount() {
        return core("load_time_count");
    }

    @Override
    public long getLoadTimeMin() {
        return core("load_time_min_us");
    }

    @Override
    public long getLoadTimeAvg() {
        return core("load_time_avg_us");
    }

    @Override
    public long getLoadTimeMax() {
        return core("load_time_max_us");
    }

    @Override
    public long getBackupTimeP50() {
        return core("backup_time_p50_us");
    }

    @Override
    public long getBackupTimeP99() {
        return core("backup_time_p99_us");
    }

    @Override
    public long getBackupTimeP999() {
        return core("backup_time_p999_us");
    }

    @Override
    public long getLoadTimeP50() {
        return core("load_time_p50_us");
    }

    @Override
    public long getLoadTimeP99() {
        return core("load_time_p99_us");
    }

    @Override
    public long getLoadTimeP999() {
        return core("load_time_p999_us");
    }

    @Override
    public long getStoreTimeCount() {
        return core("store_time_count");
    }

    @Override
    public long getStoreTimeMin() {
        return core("store_time_min_us");
    }

    @Override
    public long getStoreTimeAvg() {
        return core("store_time_avg_us");
    }

    @Override
    public long getStoreTimeP50() {
        return core("store_time_p50_us");
    }

    @Override
    public long getStoreTimeP99() {
        return core("store_time_p99_us");
    }

    @Override
    public long getStoreTimeP999() {
        return core("store_time_p999_us");
    }

    @Override
    public long getStoreTimeMax() {
        return core("store_time_max_us");
    }

    @Override
    public long getLockWaitTimeCount() {
        return core("lock_wait_time_count");
    }

    @Override
    public long getLockWaitTimeMin() {
        return core("lock_wait_time_min_us");
    }

    @Override
    public long getLockWaitTimeAvg() {
        return core("lock_wait_time_avg_us");
    }

    @Override
    public long getLockWaitTimeP50() {
        return core("lock_wait_time_p50_us");
    }

    @Override
    public long getLockWaitTimeP99() {
        return core("lock_wait_time_p99_us");
    }

    @Override
    public long getLockWaitTimeP999() {
        return core("lock_wait_time_p999_us");
    }

    @Override
    public long getLockWaitTimeMax() {
        return core("lock_wait_time_max_us");
    }

    @Override
    public long getRequestTimeCount() {
        return core("request_time_count");
    }

    @Override
    public long getRequestTimeMin() {
        return core("request_time_min_us");
    }

    @Override
    public long getRequestTimeAvg() {
        return core("request_time_avg_us");
    }

    @Override
    public long getRequestTimeP50() {
        return core("request_time_p50_us");
    }

    @Override
    public long getRequestTimeP99() {
        return core("request_time_p99_us");
    }

    @Override
    public long getRequestTimeP999() {
        return core("request_time_p999_us");
    }

    @Override
    public long getRequestTimeMax() {
        return core("request_time_max_us");
    }

    @Override
    public long getSerializationTimeCount() {
        return serialization.count();
    }

    @Override
    public long getSerializationTimeMin() {
        return serialization.minMicros();
    }

    @Override
    public long getSerializationTimeAvg() {
        return serialization.avgMicros();
    }

    @Override
    public long getSerializationTimeMax() {
        return serialization.maxMicros();
    }

    @Override
    public String getNodeStates() {
        StringBuilder states = new StringBuilder();
        for (String line : getCoreStatistics().split("\n")) {
            if (line.startsWith("node_")) {
                states.append(line).append('\n');
            }
        }
        return states.toString();
    }

    @Override
    public String getCoreStatistics() {
        long handle = manager.handle();
        return handle == 0 ? "" : Native.stats(handle);
    }

    @Override
    public long getNodeListVersion() {
        return core("shared_list_version");
    }

    @Override
    public void replaceMemcachedNodes(String memcachedNodes) {
        manager.replaceMemcachedNodes(memcachedNodes);
    }
}
