package io.msm.spring.boot;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.LinkedHashMap;
import java.util.Map;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * The manager's attributes as Spring Boot properties under {@code msm.}, in relaxed form
 * ({@code msm.memcached-nodes}, {@code msm.sticky}, ...): the same names, values and defaults
 * as the {@code context.xml} attributes of {@code io.msm.tomcat.MemcachedSessionManager}. An
 * unknown {@code msm.*} property stops the application naming it; so does a value of the wrong
 * type (here) or one the manager refuses (when Tomcat starts). Unset properties keep the
 * manager's defaults.
 */
@ConfigurationProperties(prefix = "msm", ignoreUnknownFields = false)
public class MsmProperties {
    /** The memcached servers: {@code id:host:port} entries separated by spaces or commas ({@code n1:10.0.0.1:11211 n2:10.0.0.2:11211}). Without it the starter leaves Boot's session handling alone. */
    private String memcachedNodes;
    /** Ids of nodes used only when no other node is up. */
    private String failoverNodes;
    /** {@code true} (default): sessions live in Tomcat's memory and are backed up to memcached; {@code false}: memcached is the session store. */
    private Boolean sticky;
    /** Locking of non-sticky sessions: {@code none} (default), {@code all}, {@code auto} or {@code uriPattern:<regex>}. */
    private String lockingMode;
    /** What a changed session's write sends: {@code session} (default), the whole session in one item, or {@code attribute}, only the attributes that changed, each an item of its own. */
    private String updateGranularity;
    /** Seconds after which a session lock expires if its holder never releases it (default 5). */
    private Integer lockExpiration;
    /** Milliseconds a request waits for a session lock (default 3000). */
    private Integer lockMaxWait;
    /** Non-sticky: what a request does when it could not take the lock in time: {@code proceed} (default) or {@code refuse} (503). */
    private String lockFailure;
    /** Milliseconds between the first two lock attempts (default 5). */
    private Integer lockBackoffInitial;
    /** Longest pause between lock attempts, in milliseconds (default 200). */
    private Integer lockBackoffMax;
    /** Deadline of every memcached operation, in milliseconds (default 1000). */
    private Integer operationTimeout;
    /** Extra attempts on a fresh connection after a connection failure, 0 to 10 (default 1). */
    private Integer operationRetries;
    /** Milliseconds to wait before each such retry (default 0). */
    private Integer operationRetryBackoff;
    /** Milliseconds between probes of a node marked down (default 1000). */
    private Integer nodeProbeInterval;
    /** Follow the node list shared in the cluster (default {@code true}). */
    private Boolean sharedNodeList;
    /** Milliseconds between reads of the shared node list; 0 reads it only at start and on demand (default 60000). */
    private Integer nodeListRefreshInterval;
    /** Prefix of every memcached key of this application (default: a hash of host and context). */
    private String storageKeyPrefix;
    /** Sticky mode: write sessions after the response, in the background (default {@code true}). */
    private Boolean sessionBackupAsync;
    /** Sticky mode with synchronous backup: milliseconds a request waits for its backup (default 100). */
    private Integer sessionBackupTimeout;
    /** Session lifetime in seconds without access (default: Tomcat's, {@code server.servlet.session.timeout}). */
    private Integer maxInactiveInterval;
    /** Largest encoded session in bytes, 1 KiB to 1 GiB (default 8388608). */
    private Long maxSessionSize;
    /** Where the integrity keys are read from: {@code file:<path>} or {@code env:<VARIABLE>}, never the keys themselves. */
    private String integrityKey;
    /** {@code true}: every connection to memcached uses TLS 1.2 or 1.3 (memcached {@code -Z}); requires {@code tlsCaFile} (default {@code false}). */
    private Boolean tls;
    /** With {@code tls}: PEM file of the certificate authorities memcached's certificate must chain to. */
    private String tlsCaFile;
    /** With {@code tls}: the name memcached's certificate must carry, instead of each node's host. */
    private String tlsServerName;
    /** With {@code tls}: PEM file of the certificate chain presented to servers that ask for one; requires {@code tlsClientKey}. */
    private String tlsClientCertificateFile;
    /** Where the client's PEM private key is read from: {@code file:<path>} or {@code env:<VARIABLE>}, never the key itself. */
    private String tlsClientKey;
    /** memcached's ASCII authentication ({@code memcached -Y}): where {@code user:password} is read from, {@code file:<path>} or {@code env:<VARIABLE>}, never the credentials themselves. */
    private String memcachedCredentials;
    /** {@code aes-256-gcm} encrypts sessions with a key derived from the first integrity key; {@code none} (default) signs them only. */
    private String encryption;
    /** Session bodies of at least this many bytes are compressed with LZ4; 0 (default) never. */
    private Long compressionThreshold;
    /** A regular expression: requests whose URI matches it never touch memcached. */
    private String requestUriIgnorePattern;
    /** A regular expression: only matching attribute names are stored in memcached. */
    private String sessionAttributeFilter;
    /** {@code false} keeps sessions in memory only, like Tomcat's default manager (default {@code true}). */
    private Boolean enabled;
    /** Sticky mode: most sessions with a background write in flight (default 4096). */
    private Integer backupQueueSize;
    /** Most session copies the near cache keeps; 0 disables it (default 10000). */
    private Integer nearCacheMaxSessions;
    /** Most bytes of session copies the near cache keeps (default 67108864). */
    private Long nearCacheMaxBytes;
    /** {@code expiry}: every session that ends by expiry fires {@code sessionDestroyed} once in the cluster, on one Tomcat; {@code broadcast}: that, and every Tomcat hears every session's created, destroyed and attribute events; {@code off} (default): no event costs a command. */
    private String sessionEvents;
    /** With {@code sessionEvents}: seconds between sweeps for expired sessions, 1 to 3600 (default 60); the same on every Tomcat of a context. */
    private Integer eventSweepInterval;
    /** With {@code sessionEvents=broadcast}: milliseconds between polls for the other Tomcats' events, 50 to 60000 (default 1000). */
    private Integer broadcastPollInterval;
    /** With {@code sessionEvents=broadcast}: whether attribute events carry the attribute's value (default false: names only). */
    private Boolean broadcastValues;
    /** Class of the {@code io.msm.tomcat.AttributeSerializer} (default {@code io.msm.tomcat.JavaSerializer}). */
    private String serializer;
    /** When an attribute cannot be serialized: {@code fail} (default), {@code localSession}, {@code stopDistribution} or {@code dropAttribute}. */
    private String serializationFailurePolicy;
    /** When a stored attribute cannot be deserialized: {@code dropAttribute} (default) or {@code dropSession}. */
    private String deserializationFailurePolicy;
    /** {@code Domain} of the session cookie. */
    private String sessionCookieDomain;
    /** {@code Path} of the session cookie. */
    private String sessionCookiePath;
    /** {@code SameSite} of the session cookie: {@code Strict}, {@code Lax}, {@code None} or {@code unset}. */
    private String sessionCookieSameSite;
    /** {@code true}: the session cookie is always {@code Secure}. */
    private Boolean sessionCookieSecure;
    /** Whether the session cookie is {@code HttpOnly} (default: Tomcat's, {@code true}). */
    private Boolean sessionCookieHttpOnly;
    /** Whether Tomcat's container login (principal, authentication type) travels with the session (default {@code true}). */
    private Boolean persistAuthentication;

    /** @return the memcached servers: {@code id:host:port} entries separated by spaces or commas ({@code n1:10.0.0.1:11211 n2:10.0.0.2:11211}). Without it the starter leaves Boot's session handling alone. */
    public String getMemcachedNodes() {
        return memcachedNodes;
    }

    /** @param memcachedNodes see {@link #getMemcachedNodes()} */
    public void setMemcachedNodes(String memcachedNodes) {
        this.memcachedNodes = memcachedNodes;
    }

    /** @return ids of nodes used only when no other node is up. */
    public String getFailoverNodes() {
        return failoverNodes;
    }

    /** @param failoverNodes see {@link #getFailoverNodes()} */
    public void setFailoverNodes(String failoverNodes) {
        this.failoverNodes = failoverNodes;
    }

    /** @return {@code true} (default): sessions live in Tomcat's memory and are backed up to memcached; {@code false}: memcached is the session store. */
    public Boolean getSticky() {
        return sticky;
    }

    /** @param sticky see {@link #getSticky()} */
    public void setSticky(Boolean sticky) {
        this.sticky = sticky;
    }

    /** @return locking of non-sticky sessions: {@code none} (default), {@code all}, {@code auto} or {@code uriPattern:<regex>}. */
    public String getLockingMode() {
        return lockingMode;
    }

    /** @param lockingMode see {@link #getLockingMode()} */
    public void setLockingMode(String lockingMode) {
        this.lockingMode = lockingMode;
    }

    /** @return seconds after which a session lock expires if its holder never releases it (default 5). */
    public Integer getLockExpiration() {
        return lockExpiration;
    }

    /** @param lockExpiration see {@link #getLockExpiration()} */
    public void setLockExpiration(Integer lockExpiration) {
        this.lockExpiration = lockExpiration;
    }

    /** @return milliseconds a request waits for a session lock (default 3000). */
    public Integer getLockMaxWait() {
        return lockMaxWait;
    }

    /** @param lockMaxWait see {@link #getLockMaxWait()} */
    public void setLockMaxWait(Integer lockMaxWait) {
        this.lockMaxWait = lockMaxWait;
    }

    /** @return non-sticky: what a request does when it could not take the lock in time: {@code proceed} (default) or {@code refuse} (503). */
    public String getLockFailure() {
        return lockFailure;
    }

    /** @param lockFailure see {@link #getLockFailure()} */
    public void setLockFailure(String lockFailure) {
        this.lockFailure = lockFailure;
    }

    /** @return milliseconds between the first two lock attempts (default 5). */
    public Integer getLockBackoffInitial() {
        return lockBackoffInitial;
    }

    /** @param lockBackoffInitial see {@link #getLockBackoffInitial()} */
    public void setLockBackoffInitial(Integer lockBackoffInitial) {
        this.lockBackoffInitial = lockBackoffInitial;
    }

    /** @return longest pause between lock attempts, in milliseconds (default 200). */
    public Integer getLockBackoffMax() {
        return lockBackoffMax;
    }

    /** @param lockBackoffMax see {@link #getLockBackoffMax()} */
    public void setLockBackoffMax(Integer lockBackoffMax) {
        this.lockBackoffMax = lockBackoffMax;
    }

    /** @return deadline of every memcached operation, in milliseconds (default 1000). */
    public Integer getOperationTimeout() {
        return operationTimeout;
    }

    /** @param operationTimeout see {@link #getOperationTimeout()} */
    public void setOperationTimeout(Integer operationTimeout) {
        this.operationTimeout = operationTimeout;
    }

    /** @return extra attempts on a fresh connection after a connection failure, 0 to 10 (default 1). */
    public Integer getOperationRetries() {
        return operationRetries;
    }

    /** @param operationRetries see {@link #getOperationRetries()} */
    public void setOperationRetries(Integer operationRetries) {
        this.operationRetries = operationRetries;
    }

    /** @return milliseconds to wait before each such retry (default 0). */
    public Integer getOperationRetryBackoff() {
        return operationRetryBackoff;
    }

    /** @param operationRetryBackoff see {@link #getOperationRetryBackoff()} */
    public void setOperationRetryBackoff(Integer operationRetryBackoff) {
        this.operationRetryBackoff = operationRetryBackoff;
    }

    /** @return milliseconds between probes of a node marked down (default 1000). */
    public Integer getNodeProbeInterval() {
        return nodeProbeInterval;
    }

    /** @param nodeProbeInterval see {@link #getNodeProbeInterval()} */
    public void setNodeProbeInterval(Integer nodeProbeInterval) {
        this.nodeProbeInterval = nodeProbeInterval;
    }

    /** @return follow the node list shared in the cluster (default {@code true}). */
    public Boolean getSharedNodeList() {
        return sharedNodeList;
    }

    /** @param sharedNodeList see {@link #getSharedNodeList()} */
    public void setSharedNodeList(Boolean sharedNodeList) {
        this.sharedNodeList = sharedNodeList;
    }

    /** @return milliseconds between reads of the shared node list; 0 reads it only at start and on demand (default 60000). */
    public Integer getNodeListRefreshInterval() {
        return nodeListRefreshInterval;
    }

    /** @param nodeListRefreshInterval see {@link #getNodeListRefreshInterval()} */
    public void setNodeListRefreshInterval(Integer nodeListRefreshInterval) {
        this.nodeListRefreshInterval = nodeListRefreshInterval;
    }

    /** @return prefix of every memcached key of this application (default: a hash of host and context). */
    public String getStorageKeyPrefix() {
        return storageKeyPrefix;
    }

    /** @param storageKeyPrefix see {@link #getStorageKeyPrefix()} */
    public void setStorageKeyPrefix(String storageKeyPrefix) {
        this.storageKeyPrefix = storageKeyPrefix;
    }

    /** @return sticky mode: write sessions after the response, in the background (default {@code true}). */
    public Boolean getSessionBackupAsync() {
        return sessionBackupAsync;
    }

    /** @param sessionBackupAsync see {@link #getSessionBackupAsync()} */
    public void setSessionBackupAsync(Boolean sessionBackupAsync) {
        this.sessionBackupAsync = sessionBackupAsync;
    }

    /** @return sticky mode with synchronous backup: milliseconds a request waits for its backup (default 100). */
    public Integer getSessionBackupTimeout() {
        return sessionBackupTimeout;
    }

    /** @param sessionBackupTimeout see {@link #getSessionBackupTimeout()} */
    public void setSessionBackupTimeout(Integer sessionBackupTimeout) {
        this.sessionBackupTimeout = sessionBackupTimeout;
    }

    /** @return session lifetime in seconds without access (default: Tomcat's, {@code server.servlet.session.timeout}). */
    public Integer getMaxInactiveInterval() {
        return maxInactiveInterval;
    }

    /** @param maxInactiveInterval see {@link #getMaxInactiveInterval()} */
    public void setMaxInactiveInterval(Integer maxInactiveInterval) {
        this.maxInactiveInterval = maxInactiveInterval;
    }

    /** @return largest encoded session in bytes, 1 KiB to 1 GiB (default 8388608). */
    public Long getMaxSessionSize() {
        return maxSessionSize;
    }

    /** @param maxSessionSize see {@link #getMaxSessionSize()} */
    public void setMaxSessionSize(Long maxSessionSize) {
        this.maxSessionSize = maxSessionSize;
    }

    /** @return where the integrity keys are read from: {@code file:<path>} or {@code env:<VARIABLE>}, never the keys themselves. */
    public String getIntegrityKey() {
        return integrityKey;
    }

    /** @param integrityKey see {@link #getIntegrityKey()} */
    public void setIntegrityKey(String integrityKey) {
        this.integrityKey = integrityKey;
    }

    /** @return {@code aes-256-gcm} encrypts sessions with a key derived from the first integrity key; {@code none} (default) signs them only. */
    public String getEncryption() {
        return encryption;
    }

    /** @param encryption see {@link #getEncryption()} */
    public void setEncryption(String encryption) {
        this.encryption = encryption;
    }

    /** @return session bodies of at least this many bytes are compressed with LZ4; 0 (default) never. */
    public Long getCompressionThreshold() {
        return compressionThreshold;
    }

    /** @param compressionThreshold see {@link #getCompressionThreshold()} */
    public void setCompressionThreshold(Long compressionThreshold) {
        this.compressionThreshold = compressionThreshold;
    }

    /** @return a regular expression: requests whose URI matches it never touch memcached. */
    public String getRequestUriIgnorePattern() {
        return requestUriIgnorePattern;
    }

    /** @param requestUriIgnorePattern see {@link #getRequestUriIgnorePattern()} */
    public void setRequestUriIgnorePattern(String requestUriIgnorePattern) {
        this.requestUriIgnorePattern = requestUriIgnorePattern;
    }

    /** @return a regular expression: only matching attribute names are stored in memcached. */
    public String getSessionAttributeFilter() {
        return sessionAttributeFilter;
    }

    /** @param sessionAttributeFilter see {@link #getSessionAttributeFilter()} */
    public void setSessionAttributeFilter(String sessionAttributeFilter) {
        this.sessionAttributeFilter = sessionAttributeFilter;
    }

    /** @return {@code false} keeps sessions in memory only, like Tomcat's default manager (default {@code true}). */
    public Boolean getEnabled() {
        return enabled;
    }

    /** @param enabled see {@link #getEnabled()} */
    public void setEnabled(Boolean enabled) {
        this.enabled = enabled;
    }

    /** @return sticky mode: most sessions with a background write in flight (default 4096). */
    public Integer getBackupQueueSize() {
        return backupQueueSize;
    }

    /** @param backupQueueSize see {@link #getBackupQueueSize()} */
    public void setBackupQueueSize(Integer backupQueueSize) {
        this.backupQueueSize = backupQueueSize;
    }

    /** @return most session copies the near cache keeps; 0 disables it (default 10000). */
    public Integer getNearCacheMaxSessions() {
        return nearCacheMaxSessions;
    }

    /** @param nearCacheMaxSessions see {@link #getNearCacheMaxSessions()} */
    public void setNearCacheMaxSessions(Integer nearCacheMaxSessions) {
        this.nearCacheMaxSessions = nearCacheMaxSessions;
    }

    /** @return most bytes of session copies the near cache keeps (default 67108864). */
    public Long getNearCacheMaxBytes() {
        return nearCacheMaxBytes;
    }

    /** @param nearCacheMaxBytes see {@link #getNearCacheMaxBytes()} */
    public void setNearCacheMaxBytes(Long nearCacheMaxBytes) {
        this.nearCacheMaxBytes = nearCacheMaxBytes;
    }

    /** @return {@code expiry}: every session that ends by expiry fires {@code sessionDestroyed} once in the cluster, on one Tomcat; {@code broadcast}: that, and every Tomcat hears every session's created, destroyed and attribute events; {@code off} (default): no event costs a command. */
    public String getSessionEvents() {
        return sessionEvents;
    }

    /** @param sessionEvents see {@link #getSessionEvents()} */
    public void setSessionEvents(String sessionEvents) {
        this.sessionEvents = sessionEvents;
    }

    /** @return with {@code sessionEvents}: seconds between sweeps for expired sessions, 1 to 3600 (default 60); the same on every Tomcat of a context. */
    public Integer getEventSweepInterval() {
        return eventSweepInterval;
    }

    /** @param eventSweepInterval see {@link #getEventSweepInterval()} */
    public void setEventSweepInterval(Integer eventSweepInterval) {
        this.eventSweepInterval = eventSweepInterval;
    }

    /** @return with {@code sessionEvents=broadcast}: milliseconds between polls for the other Tomcats' events, 50 to 60000 (default 1000). */
    public Integer getBroadcastPollInterval() {
        return broadcastPollInterval;
    }

    /** @param broadcastPollInterval see {@link #getBroadcastPollInterval()} */
    public void setBroadcastPollInterval(Integer broadcastPollInterval) {
        this.broadcastPollInterval = broadcastPollInterval;
    }

    /** @return with {@code sessionEvents=broadcast}: whether attribute events carry the attribute's value (default false: names only). */
    public Boolean getBroadcastValues() {
        return broadcastValues;
    }

    /** @param broadcastValues see {@link #getBroadcastValues()} */
    public void setBroadcastValues(Boolean broadcastValues) {
        this.broadcastValues = broadcastValues;
    }

    /** @return class of the {@code io.msm.tomcat.AttributeSerializer} (default {@code io.msm.tomcat.JavaSerializer}). */
    public String getSerializer() {
        return serializer;
    }

    /** @param serializer see {@link #getSerializer()} */
    public void setSerializer(String serializer) {
        this.serializer = serializer;
    }

    /** @return when an attribute cannot be serialized: {@code fail} (default), {@code localSession}, {@code stopDistribution} or {@code dropAttribute}. */
    public String getSerializationFailurePolicy() {
        return serializationFailurePolicy;
    }

    /** @param serializationFailurePolicy see {@link #getSerializationFailurePolicy()} */
    public void setSerializationFailurePolicy(String serializationFailurePolicy) {
        this.serializationFailurePolicy = serializationFailurePolicy;
    }

    /** @return when a stored attribute cannot be deserialized: {@code dropAttribute} (default) or {@code dropSession}. */
    public String getDeserializationFailurePolicy() {
        return deserializationFailurePolicy;
    }

    /** @param deserializationFailurePolicy see {@link #getDeserializationFailurePolicy()} */
    public void setDeserializationFailurePolicy(String deserializationFailurePolicy) {
        this.deserializationFailurePolicy = deserializationFailurePolicy;
    }

    /** @return {@code Domain} of the session cookie. */
    public String getSessionCookieDomain() {
        return sessionCookieDomain;
    }

    /** @param sessionCookieDomain see {@link #getSessionCookieDomain()} */
    public void setSessionCookieDomain(String sessionCookieDomain) {
        this.sessionCookieDomain = sessionCookieDomain;
    }

    /** @return {@code Path} of the session cookie. */
    public String getSessionCookiePath() {
        return sessionCookiePath;
    }

    /** @param sessionCookiePath see {@link #getSessionCookiePath()} */
    public void setSessionCookiePath(String sessionCookiePath) {
        this.sessionCookiePath = sessionCookiePath;
    }

    /** @return {@code SameSite} of the session cookie: {@code Strict}, {@code Lax}, {@code None} or {@code unset}. */
    public String getSessionCookieSameSite() {
        return sessionCookieSameSite;
    }

    /** @param sessionCookieSameSite see {@link #getSessionCookieSameSite()} */
    public void setSessionCookieSameSite(String sessionCookieSameSite) {
        this.sessionCookieSameSite = sessionCookieSameSite;
    }

    /** @return {@code true}: the session cookie is always {@code Secure}. */
    public Boolean getSessionCookieSecure() {
        return sessionCookieSecure;
    }

    /** @param sessionCookieSecure see {@link #getSessionCookieSecure()} */
    public void setSessionCookieSecure(Boolean sessionCookieSecure) {
        this.sessionCookieSecure = sessionCookieSecure;
    }

    /** @return whether the session cookie is {@code HttpOnly} (default: Tomcat's, {@code true}). */
    public Boolean getSessionCookieHttpOnly() {
        return sessionCookieHttpOnly;
    }

    /** @param sessionCookieHttpOnly see {@link #getSessionCookieHttpOnly()} */
    public void setSessionCookieHttpOnly(Boolean sessionCookieHttpOnly) {
        this.sessionCookieHttpOnly = sessionCookieHttpOnly;
    }

    /** @return whether Tomcat's container login (principal, authentication type) travels with the session (default {@code true}). */
    public Boolean getPersistAuthentication() {
        return persistAuthentication;
    }

    /** @param persistAuthentication see {@link #getPersistAuthentication()} */
    public void setPersistAuthentication(Boolean persistAuthentication) {
        this.persistAuthentication = persistAuthentication;
    }

    /** @return What a changed session's write sends: {@code session} (default), the whole session in one item, or {@code attribute}, only the attributes that changed, each an item of its own. */
    public String getUpdateGranularity() {
        return updateGranularity;
    }

    /** @param updateGranularity see {@link #getUpdateGranularity()} */
    public void setUpdateGranularity(String updateGranularity) {
        this.updateGranularity = updateGranularity;
    }

    /** @return {@code true}: every connection to memcached uses TLS 1.2 or 1.3 (memcached {@code -Z}); requires {@code tlsCaFile} (default {@code false}). */
    public Boolean getTls() {
        return tls;
    }

    /** @param tls see {@link #getTls()} */
    public void setTls(Boolean tls) {
        this.tls = tls;
    }

    /** @return With {@code tls}: PEM file of the certificate authorities memcached's certificate must chain to. */
    public String getTlsCaFile() {
        return tlsCaFile;
    }

    /** @param tlsCaFile see {@link #getTlsCaFile()} */
    public void setTlsCaFile(String tlsCaFile) {
        this.tlsCaFile = tlsCaFile;
    }

    /** @return With {@code tls}: the name memcached's certificate must carry, instead of each node's host. */
    public String getTlsServerName() {
        return tlsServerName;
    }

    /** @param tlsServerName see {@link #getTlsServerName()} */
    public void setTlsServerName(String tlsServerName) {
        this.tlsServerName = tlsServerName;
    }

    /** @return With {@code tls}: PEM file of the certificate chain presented to servers that ask for one; requires {@code tlsClientKey}. */
    public String getTlsClientCertificateFile() {
        return tlsClientCertificateFile;
    }

    /** @param tlsClientCertificateFile see {@link #getTlsClientCertificateFile()} */
    public void setTlsClientCertificateFile(String tlsClientCertificateFile) {
        this.tlsClientCertificateFile = tlsClientCertificateFile;
    }

    /** @return Where the client's PEM private key is read from: {@code file:<path>} or {@code env:<VARIABLE>}, never the key itself. */
    public String getTlsClientKey() {
        return tlsClientKey;
    }

    /** @param tlsClientKey see {@link #getTlsClientKey()} */
    public void setTlsClientKey(String tlsClientKey) {
        this.tlsClientKey = tlsClientKey;
    }

    /** @return memcached's ASCII authentication ({@code memcached -Y}): where {@code user:password} is read from, {@code file:<path>} or {@code env:<VARIABLE>}, never the credentials themselves. */
    public String getMemcachedCredentials() {
        return memcachedCredentials;
    }

    /** @param memcachedCredentials see {@link #getMemcachedCredentials()} */
    public void setMemcachedCredentials(String memcachedCredentials) {
        this.memcachedCredentials = memcachedCredentials;
    }

    /**
     * The properties that are set, as manager attributes.
     *
     * @return attribute name to value, in declaration order
     */
    public Map<String, String> attributes() {
        Map<String, String> attributes = new LinkedHashMap<>();
        for (Field field : MsmProperties.class.getDeclaredFields()) {
            if (Modifier.isStatic(field.getModifiers())) {
                continue;
            }
            try {
                Object value = field.get(this);
                if (value != null) {
                    attributes.put(field.getName(), value.toString());
                }
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
        }
        return attributes;
    }
}
