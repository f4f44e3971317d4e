package io.msm.tomcat;

/**
 * JMX view of one {@link MemcachedSessionManager}, registered as
 * {@code io.msm:type=MemcachedSessionManager,host=<host>,context=<context>}. Times are in
 * microseconds; percentiles are those of the native core, within an eighth of the true value.
 */
public interface ManagerStatisticsMBean {
    /** @return requests that used a session */
    long getRequestsWithSession();

    /** @return requests that used no session */
    long getRequestsWithoutSession();

    /** @return requests matching {@code requestUriIgnorePattern} */
    long getRequestsIgnored();

    /** @return sessions written to memcached after a request changed them */
    long getBackupsWritten();

    /** @return requests whose session had not changed, so nothing was written */
    long getBackupsSkipped();

    /** @return unchanged sessions whose memcached expiry was renewed */
    long getBackupsRefreshed();

    /** @return broadcast session events this Tomcat published ({@code sessionEvents="broadcast"}) */
    long getBroadcastEventsPublished();

    /**
     * @return broadcast session events that could not be published (no node up, a failed
     *     write, too many waiting for a slow memcached)
     */
    long getBroadcastEventsUnpublished();

    /** @return broadcast session events of the other Tomcats this Tomcat heard */
    long getBroadcastEventsHeard();

    /** @return broadcast log records refused (not written by a manager of the context) */
    long getBroadcastRecordsRefused();

    /**
     * @return backups that failed: memcached errors, and attributes that could not be serialized
     *     (unless {@code serializationFailurePolicy=dropAttribute} left them out)
     */
    long getBackupsFailed();

    /** @return non-sticky mode: second copies written to the node after the session's */
    long getSecondCopiesWritten();

    /**
     * @return non-sticky mode: second copies not written because the next node was down or
     *     failed
     */
    long getSecondCopiesMissed();

    /**
     * @return non-sticky mode: accesses that left the session's validity record as it was, since
     *     it had been renewed less than a second before
     */
    long getRenewalsSkipped();

    /** @return attributes that could not be serialized */
    long getSerializationFailures();

    /** @return attributes that could not be deserialized when a session was loaded */
    long getDeserializationFailures();

    /**
     * @return true while {@code serializationFailurePolicy=stopDistribution} keeps every session
     *     out of memcached
     */
    boolean isDistributionStopped();

    /**
     * Writes sessions to memcached again after {@code stopDistribution} stopped it: each session
     * is stored at the end of its next request, with what changed meanwhile.
     */
    void resumeDistribution();

    /**
     * @return the attributes {@code serializationFailurePolicy=dropAttribute} left out, one
     *     {@code name class} line per attribute name and value class, sorted
     */
    String getSerializationBlacklist();

    /**
     * @return sessions this Tomcat keeps in its memory only
     *     ({@code serializationFailurePolicy=localSession})
     */
    long getLocalSessions();

    /** @return sessions this Tomcat took over from memcached (Tomcat failover) */
    long getTomcatFailovers();

    /** @return sessions moved to another memcached node because theirs was down */
    long getMemcachedFailovers();

    /** @return corrupt values found in memcached */
    long getCorruptValues();

    /** @return backups measured */
    long getBackupTimeCount();

    /** @return shortest backup write */
    long getBackupTimeMin();

    /** @return average backup write */
    long getBackupTimeAvg();

    /** @return longest backup write */
    long getBackupTimeMax();

    /** @return loads measured */
    long getLoadTimeCount();

    /** @return shortest load */
    long getLoadTimeMin();

    /** @return average load */
    long getLoadTimeAvg();

    /** @return longest load */
    long getLoadTimeMax();

    /** @return median backup write */
    long getBackupTimeP50();

    /** @return 99th percentile of backup write */
    long getBackupTimeP99();

    /** @return 99.9th percentile of backup write */
    long getBackupTimeP999();

    /** @return median load */
    long getLoadTimeP50();

    /** @return 99th percentile of load */
    long getLoadTimeP99();

    /** @return 99.9th percentile of load */
    long getLoadTimeP999();

    /** @return stores measured */
    long getStoreTimeCount();

    /** @return shortest store of a session (all its copies) */
    long getStoreTimeMin();

    /** @return average store of a session (all its copies) */
    long getStoreTimeAvg();

    /** @return median store of a session (all its copies) */
    long getStoreTimeP50();

    /** @return 99th percentile of store of a session (all its copies) */
    long getStoreTimeP99();

    /** @return 99.9th percentile of store of a session (all its copies) */
    long getStoreTimeP999();

    /** @return longest store of a session (all its copies) */
    long getStoreTimeMax();

    /** @return lock waits measured */
    long getLockWaitTimeCount();

    /** @return shortest wait for a session lock */
    long getLockWaitTimeMin();

    /** @return average wait for a session lock */
    long getLockWaitTimeAvg();

    /** @return median wait for a session lock */
    long getLockWaitTimeP50();

    /** @return 99th percentile of wait for a session lock */
    long getLockWaitTimeP99();

    /** @return 99.9th percentile of wait for a session lock */
    long getLockWaitTimeP999();

    /** @return longest wait for a session lock */
    long getLockWaitTimeMax();

    /** @return requests measured */
    long getRequestTimeCount();

    /** @return shortest time a request spent in the manager (begin, lookups, end) */
    long getRequestTimeMin();

    /** @return average time a request spent in the manager (begin, lookups, end) */
    long getRequestTimeAvg();

    /** @return median time a request spent in the manager (begin, lookups, end) */
    long getRequestTimeP50();

    /** @return 99th percentile of time a request spent in the manager (begin, lookups, end) */
    long getRequestTimeP99();

    /** @return 99.9th percentile of time a request spent in the manager (begin, lookups, end) */
    long getRequestTimeP999();

    /** @return longest time a request spent in the manager (begin, lookups, end) */
    long getRequestTimeMax();

    /** @return serializations measured (one per backed-up request) */
    long getSerializationTimeCount();

    /** @return shortest serialization of a session's attributes */
    long getSerializationTimeMin();

    /** @return average serialization of a session's attributes */
    long getSerializationTimeAvg();

    /** @return longest serialization of a session's attributes */
    long getSerializationTimeMax();

    /** @return one line per memcached node: id, address, up or down */
    String getNodeStates();

    /** @return every statistic of the native core, as {@code name value} lines */
    String getCoreStatistics();

    /**
     * @return the version of the memcached node list shared in the cluster that this manager
     *     uses (0 before any was read or written)
     */
    long getNodeListVersion();

    /**
     * Replaces the memcached node list while Tomcat runs and publishes it as the next version of
     * the node list shared in the cluster, which the other Tomcats of the context follow.
     *
     * @param memcachedNodes the new list, in {@code memcachedNodes} syntax
     */
    void replaceMemcachedNodes(String memcachedNodes);
}
