/*
 * The C API of msm, exercised by a C host against real memcached servers.
 *
 * Usage: msm_test ADDR1 ADDR2 ADDR3 PID1
 *        msm_test poll-expired SECONDS NODES [NAME=VALUE ...]
 *        msm_test broadcast-listen SECONDS NODES [NAME=VALUE ...]
 *        msm_test broadcast-publish NODES [NAME=VALUE ...] < EVENTS
 *
 * The other forms are C hosts of one role each, with a manager of NODES and the given
 * configuration attributes: poll-expired only hears expiry events (see poll_expired_main),
 * polling msm_manager_poll_expired for SECONDS seconds and printing every expired session it is
 * handed; broadcast-listen hears broadcast events (see broadcast_listen_main), polling
 * msm_manager_poll_event for SECONDS seconds and printing every event it hears;
 * broadcast-publish publishes the broadcast events read from its standard input, one per line
 * (see broadcast_publish_main).
 *
 * ADDR1..3 are the `127.0.0.1:PORT` addresses of three memcached servers, which become the
 * nodes n1, n2 and n3; PID1 is the process id of the first one, which this program kills
 * (SIGKILL) to check failover. The process that started the servers reaps it.
 *
 * Every check is counted; the first failure prints where it happened, what the library
 * returned and its error message, and ends the program with status 1. On success the only
 * output is the line `N passed, 0 failed`.
 *
 * The conventions of the API, as this program uses them:
 * - every call returns an msm_status; its last argument, `char **error`, receives NULL on
 *   success and a message on failure, released with msm_string_free;
 * - ids, messages, names and statistics returned through `char **` are released with
 *   msm_string_free; handles with their *_free function;
 * - types are named by their tags (`struct msm_session`, `enum msm_status`), as the header's
 *   own prototypes do.
 */

#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "msm.h"

/* ------------------------------------------------------------------------------------------ */
/* Checks                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int checks_passed;

static void fail(void)
{
    printf("%d passed, 1 failed\n", checks_passed);
    exit(1);
}

static void check(int ok, const char *file, int line, const char *what)
{
    if (!ok) {
        printf("%s:%d: check failed: %s\n", file, line, what);
        fail();
    }
    checks_passed++;
}

/*
 * Checks the status of a call and its error message: a message comes with every failure
 * status, never with MSM_STATUS_OK or MSM_STATUS_NOT_FOUND. When `needle` is not NULL the
 * message must contain it. The message is released and `*error` reset to NULL.
 */
static void expect(enum msm_status got, enum msm_status want, char **error, const char *needle,
                   const char *file, int line, const char *call)
{
    int wants_message = want != MSM_STATUS_OK && want != MSM_STATUS_NOT_FOUND;
    const char *message = *error != NULL ? *error : "(no message)";

    if (got != want) {
        printf("%s:%d: %s\n    returned %s, expected %s: %s\n", file, line, call,
               msm_status_name(got), msm_status_name(want), message);
        fail();
    }
    if ((*error != NULL) != wants_message) {
        printf("%s:%d: %s\n    returned %s %s an error message: %s\n", file, line, call,
               msm_status_name(got), wants_message ? "without" : "with", message);
        fail();
    }
    if (needle != NULL && strstr(message, needle) == NULL) {
        printf("%s:%d: %s\n    the error message does not mention \"%s\": %s\n", file, line,
               call, needle, message);
        fail();
    }
    msm_string_free(*error);
    *error = NULL;
    checks_passed++;
}

/* A condition that must hold. */
#define CHECK(cond) check((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* A call that must return `want`; its error message goes to the local `char *err`. */
#define EXPECT(want, call) expect((call), (want), &err, NULL, __FILE__, __LINE__, #call)

/* The same, and the error message must contain `needle`. */
#define EXPECT_MSG(want, call, needle) \
    expect((call), (want), &err, (needle), __FILE__, __LINE__, #call)

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define RANDOM_LEN 32

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* True when `id` is `<32 upper hex>-<node>` followed by `.<route>` when route is not NULL. */
static int id_has_form(const char *id, const char *route)
{
    size_t i;
    const char *node;
    const char *end;

    for (i = 0; i < RANDOM_LEN; i++) {
        if (!is_upper_hex(id[i])) {
            return 0;
        }
    }
    if (id[RANDOM_LEN] != '-') {
        return 0;
    }
    node = id + RANDOM_LEN + 1;
    for (end = node; is_name_char(*end); end++) {
    }
    if (end == node) {
        return 0;
    }
    if (route == NULL) {
        return *end == '\0';
    }
    return *end == '.' && strcmp(end + 1, route) == 0;
}

/* True when the id (without route) names the memcached node `node`. */
static int id_on_node(const char *id, const char *node)
{
    return strlen(id) > RANDOM_LEN + 1 && id[RANDOM_LEN] == '-' &&
           strcmp(id + RANDOM_LEN + 1, node) == 0;
}

/* True when two ids share their random part: the same session, maybe on another node. */
static int same_random_part(const char *a, const char *b)
{
    return strncmp(a, b, RANDOM_LEN) == 0;
}

/* A new id on the node `node`: ids are drawn until one lands there; the others are released. */
static char *new_id_on(const struct msm_manager *m, const char *node)
{
    char *err = NULL;
    int attempt;

    for (attempt = 0; attempt < 30; attempt++) {
        char *id = NULL;
        EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
        if (id_on_node(id, node)) {
            return id;
        }
        EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
        msm_string_free(id);
    }
    check(0, __FILE__, __LINE__, "an id on the wanted node within 30 attempts");
    return NULL;
}

static void set_text(struct msm_session *s, const char *name, const char *value)
{
    char *err = NULL;
    EXPECT(MSM_STATUS_OK,
           msm_session_set_attribute(s, name, (const uint8_t *)value, strlen(value), &err));
}

/* True when the attribute `name` of `s` holds exactly `len` bytes equal to `value`. */
static int has_attribute(const struct msm_session *s, const char *name, const void *value,
                         size_t len)
{
    const uint8_t *found = NULL;
    size_t found_len = 0;
    enum msm_status status = msm_session_get_attribute(s, name, &found, &found_len, NULL);
    return status == MSM_STATUS_OK && found_len == len && memcmp(found, value, len) == 0;
}

/* True when both sessions have the same attribute names and values, byte for byte. */
static int same_attributes(const struct msm_session *a, const struct msm_session *b)
{
    size_t count = msm_session_attribute_count(a);
    size_t i;

    if (count != msm_session_attribute_count(b)) {
        return 0;
    }
    for (i = 0; i < count; i++) {
        char *name_a = NULL;
        char *name_b = NULL;
        const uint8_t *value = NULL;
        size_t len = 0;
        int same = msm_session_attribute_name(a, i, &name_a, NULL) == MSM_STATUS_OK &&
                   msm_session_attribute_name(b, i, &name_b, NULL) == MSM_STATUS_OK &&
                   strcmp(name_a, name_b) == 0 &&
                   msm_session_get_attribute(a, name_a, &value, &len, NULL) == MSM_STATUS_OK &&
                   has_attribute(b, name_b, value, len);
        msm_string_free(name_a);
        msm_string_free(name_b);
        if (!same) {
            return 0;
        }
    }
    return 1;
}

static struct msm_session_info info_of(const struct msm_session *s)
{
    char *err = NULL;
    struct msm_session_info info;
    memset(&info, 0, sizeof info);
    EXPECT(MSM_STATUS_OK, msm_session_get_info(s, &info, &err));
    return info;
}

/* The binary attribute value used throughout: NULs and bytes that are not text. */
static const uint8_t BLOB[] = {0x00, 0x01, 0x00, 0xff, 'x', '\r', '\n', 0x00};

/* A session with a text, a binary and an empty attribute. */
static struct msm_session *sample_session(void)
{
    char *err = NULL;
    struct msm_session *s = msm_session_new(1800);
    CHECK(s != NULL);
    set_text(s, "user", "alice");
    EXPECT(MSM_STATUS_OK, msm_session_set_attribute(s, "blob", BLOB, sizeof BLOB, &err));
    EXPECT(MSM_STATUS_OK, msm_session_set_attribute(s, "empty", NULL, 0, &err));
    return s;
}

/* Splits `127.0.0.1:PORT` into an IPv4 socket address. */
static int parse_address(const char *address, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(address, ':');
    long port;

    if (colon == NULL || (size_t)(colon - address) >= sizeof host) {
        return 0;
    }
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    port = strtol(colon + 1, NULL, 10);
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return port > 0 && port < 65536 && inet_pton(AF_INET, host, &out->sin_addr) == 1;
}

/* Waits up to 5 s until nothing accepts connections at `address` any more. */
static int wait_until_refused(const char *address)
{
    struct sockaddr_in sa;
    double give_up = now_ms() + 5000.0;

    if (!parse_address(address, &sa)) {
        return 0;
    }
    while (now_ms() < give_up) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int rc;
        int refused;
        if (fd < 0) {
            return 0;
        }
        rc = connect(fd, (const struct sockaddr *)&sa, sizeof sa);
        refused = rc != 0 && errno == ECONNREFUSED;
        close(fd);
        if (refused) {
            return 1;
        }
        sleep_ms(10);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static struct msm_config *test_config(const char *nodes)
{
    char *err = NULL;
    struct msm_config *config = msm_config_new();
    struct msm_config *empty = msm_config_new();
    struct msm_manager *none = NULL;

    CHECK(config != NULL);
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "memcachedNodes", nodes, &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "sticky", "false", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "operationTimeout", "500", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "storageKeyPrefix", "ctest:", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "lockMaxWait", "200", &err));

    /* Refusals name the attribute (and the value), and leave the configuration as it was. */
    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG,
               msm_config_set(config, "memcachedNodez", "n1:127.0.0.1:1", &err),
               "memcachedNodez");
    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG, msm_config_set(config, "sticky", "maybe", &err),
               "sticky");
    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG, msm_config_set(config, "sticky", "maybe", &err),
               "maybe");
    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG,
               msm_config_set(config, "operationTimeout", "soon", &err), "operationTimeout");

    /* memcachedNodes is required. */
    CHECK(empty != NULL);
    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG, msm_manager_new(empty, &none, &err), "memcachedNodes");
    CHECK(none == NULL);
    msm_config_free(empty);
    return config;
}

static void test_ids(const struct msm_manager *m)
{
    char *err = NULL;
    char *plain = NULL;
    char *routed = NULL;
    char *other = NULL;

    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &plain, &err));
    CHECK(plain != NULL && id_has_form(plain, NULL));
    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, "route1", &routed, &err));
    CHECK(routed != NULL && id_has_form(routed, "route1"));
    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &other, &err));
    CHECK(other != NULL && !same_random_part(plain, other));

    EXPECT(MSM_STATUS_OK, msm_delete(m, plain, &err));
    EXPECT(MSM_STATUS_OK, msm_delete(m, routed, &err));
    EXPECT(MSM_STATUS_OK, msm_delete(m, other, &err));
    msm_string_free(plain);
    msm_string_free(routed);
    msm_string_free(other);
}

static void test_session_content(void)
{
    char *err = NULL;
    struct msm_session *s = sample_session();
    const uint8_t *value = NULL;
    size_t len = 99;
    char *name = NULL;
    struct msm_session_info info;

    CHECK(msm_session_attribute_count(s) == 3);
    CHECK(has_attribute(s, "user", "alice", 5));
    CHECK(has_attribute(s, "blob", BLOB, sizeof BLOB));
    EXPECT(MSM_STATUS_OK, msm_session_get_attribute(s, "empty", &value, &len, &err));
    CHECK(len == 0);
    EXPECT(MSM_STATUS_NOT_FOUND, msm_session_get_attribute(s, "missing", &value, &len, &err));

    /* Names come in name order. */
    EXPECT(MSM_STATUS_OK, msm_session_attribute_name(s, 0, &name, &err));
    CHECK(strcmp(name, "blob") == 0);
    msm_string_free(name);
    EXPECT(MSM_STATUS_OK, msm_session_attribute_name(s, 2, &name, &err));
    CHECK(strcmp(name, "user") == 0);
    msm_string_free(name);
    name = NULL;
    EXPECT(MSM_STATUS_NOT_FOUND, msm_session_attribute_name(s, 3, &name, &err));
    CHECK(name == NULL);

    /* Setting again replaces; removing twice finds nothing the second time. */
    set_text(s, "user", "bob");
    CHECK(has_attribute(s, "user", "bob", 3));
    EXPECT(MSM_STATUS_OK, msm_session_remove_attribute(s, "empty", &err));
    EXPECT(MSM_STATUS_NOT_FOUND, msm_session_remove_attribute(s, "empty", &err));
    CHECK(msm_session_attribute_count(s) == 2);

    info = info_of(s);
    CHECK(info.max_inactive == 1800);
    CHECK(info.version == 0);
    CHECK(info.creation_time > 0 && info.last_accessed >= info.creation_time);
    EXPECT(MSM_STATUS_OK, msm_session_access(s, 600, &err));
    CHECK(info_of(s).max_inactive == 600);
    CHECK(info_of(s).last_accessed >= info.last_accessed);

    msm_session_free(s);
}

#define UNKNOWN_NODE_ID "0123456789ABCDEF0123456789ABCDEF-n9"

static void test_store_load(const struct msm_manager *m)
{
    char *err = NULL;
    char *id = NULL;
    char *never_stored = NULL;
    char *new_id = NULL;
    struct msm_session *s = sample_session();
    struct msm_session *loaded = NULL;
    struct msm_session_info before = info_of(s);

    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));

    /* store, then load: same attributes byte for byte, version incremented. */
    EXPECT(MSM_STATUS_OK, msm_store(m, id, s, &new_id, &err));
    CHECK(new_id == NULL);
    CHECK(info_of(s).version == before.version + 1);
    EXPECT(MSM_STATUS_OK, msm_load(m, id, &loaded, &new_id, &err));
    CHECK(loaded != NULL && new_id == NULL);
    CHECK(same_attributes(s, loaded));
    CHECK(has_attribute(loaded, "blob", BLOB, sizeof BLOB));
    CHECK(info_of(loaded).version == before.version + 1);
    CHECK(info_of(loaded).creation_time == before.creation_time);
    CHECK(info_of(loaded).max_inactive == 1800);
    msm_session_free(loaded);

    /* A second store of a changed session. */
    set_text(s, "user", "carol");
    EXPECT(MSM_STATUS_OK, msm_store(m, id, s, NULL, &err));
    EXPECT(MSM_STATUS_OK, msm_load(m, id, &loaded, NULL, &err));
    CHECK(has_attribute(loaded, "user", "carol", 5));
    CHECK(info_of(loaded).version == before.version + 2);
    msm_session_free(loaded);

    /* touch renews a stored session; a valid id that was never stored is not found. */
    EXPECT(MSM_STATUS_OK, msm_touch(m, id, 1800, &err));
    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &never_stored, &err));
    EXPECT(MSM_STATUS_NOT_FOUND, msm_touch(m, never_stored, 1800, &err));
    EXPECT(MSM_STATUS_NOT_FOUND, msm_load(m, never_stored, &loaded, NULL, &err));
    CHECK(loaded == NULL);
    EXPECT(MSM_STATUS_OK, msm_delete(m, never_stored, &err));

    /* A well-formed id naming a node that is not configured is no session either. */
    EXPECT(MSM_STATUS_NOT_FOUND, msm_load(m, UNKNOWN_NODE_ID, &loaded, NULL, &err));
    CHECK(loaded == NULL);
    EXPECT(MSM_STATUS_NOT_FOUND, msm_touch(m, UNKNOWN_NODE_ID, 1800, &err));

    /* delete: gone for load and touch. */
    EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
    EXPECT(MSM_STATUS_NOT_FOUND, msm_load(m, id, &loaded, &new_id, &err));
    CHECK(loaded == NULL && new_id == NULL);
    EXPECT(MSM_STATUS_NOT_FOUND, msm_touch(m, id, 1800, &err));

    msm_string_free(id);
    msm_string_free(never_stored);
    msm_session_free(s);
}

static void test_hostile_ids(const struct msm_manager *m)
{
    char *err = NULL;
    char long_id[301];
    const char *hostile[6];
    size_t i;
    struct msm_session *s = msm_session_new(60);

    memset(long_id, 'A', 297);
    memcpy(long_id + 297, "-n1", 4); /* 300 characters */

    hostile[0] = "";
    hostile[1] = "abc";
    hostile[2] = "0123456789ABCDEF0123456789ABCDEF-n1\r\nflush_all";
    hostile[3] = long_id;
    hostile[4] = "0123456789ABCDEF0123456789ABCDEF-n\xc3\xb6"; /* "-nö" in UTF-8 */
    hostile[5] = "0123456789abcdef0123456789abcdef-n1";       /* lower-case hex */

    for (i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *id = hostile[i];
        struct msm_session *loaded = NULL;
        struct msm_lock *lock = NULL;
        char *new_id = NULL;

        EXPECT(MSM_STATUS_INVALID_ID, msm_load(m, id, &loaded, &new_id, &err));
        CHECK(loaded == NULL && new_id == NULL);
        EXPECT(MSM_STATUS_INVALID_ID, msm_store(m, id, s, &new_id, &err));
        CHECK(new_id == NULL);
        EXPECT(MSM_STATUS_INVALID_ID, msm_delete(m, id, &err));
        EXPECT(MSM_STATUS_INVALID_ID, msm_touch(m, id, 60, &err));
        EXPECT(MSM_STATUS_INVALID_ID, msm_lock_acquire(m, id, &lock, &err));
        CHECK(lock == NULL);
    }
    msm_session_free(s);
}

/* One msm_lock attempt, made from its own thread. */
struct lock_attempt {
    const struct msm_manager *manager;
    const char *id;
    enum msm_status status;        /* of msm_lock */
    char *error;                   /* its message, to release */
    enum msm_status unlock_status; /* of msm_unlock, when the lock was taken */
    double waited_ms;
};

static void *lock_attempt_run(void *arg)
{
    struct lock_attempt *a = arg;
    struct msm_lock *lock = NULL;
    double start = now_ms();

    a->status = msm_lock_acquire(a->manager, a->id, &lock, &a->error);
    a->waited_ms = now_ms() - start;
    a->unlock_status = MSM_STATUS_OK;
    if (a->status == MSM_STATUS_OK) {
        a->unlock_status = msm_lock_release(a->manager, lock, NULL);
    }
    return NULL;
}

static struct lock_attempt lock_from_other_thread(const struct msm_manager *m, const char *id)
{
    struct lock_attempt attempt;
    pthread_t thread;

    memset(&attempt, 0, sizeof attempt);
    attempt.manager = m;
    attempt.id = id;
    CHECK(pthread_create(&thread, NULL, lock_attempt_run, &attempt) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    return attempt;
}

static void test_lock(const struct msm_manager *m)
{
    char *err = NULL;
    char *id = NULL;
    struct msm_lock *lock = NULL;
    struct lock_attempt other;

    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
    EXPECT(MSM_STATUS_OK, msm_lock_acquire(m, id, &lock, &err));
    CHECK(lock != NULL);

    /* Held here: another thread gives up after lockMaxWait (200 ms). */
    other = lock_from_other_thread(m, id);
    err = other.error;
    EXPECT_MSG(MSM_STATUS_LOCK_TIMEOUT, other.status, "lock");
    CHECK(other.waited_ms >= 150.0);

    /* Released: the other thread gets it at once. */
    EXPECT(MSM_STATUS_OK, msm_lock_release(m, lock, &err));
    other = lock_from_other_thread(m, id);
    err = other.error;
    EXPECT(MSM_STATUS_OK, other.status);
    EXPECT(MSM_STATUS_OK, other.unlock_status);

    EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
    msm_string_free(id);
}

/* The request lifecycle: begin, lookup on use, end; the lock taken and released by the core. */
static void test_request_lifecycle(const struct msm_manager *m)
{
    char *err = NULL;
    char *id = NULL;
    char *sid = NULL;
    char *moved = NULL;
    bool needs_content = true;
    struct msm_request *r = NULL;
    struct msm_request_info info;
    struct msm_session *s = NULL;
    struct msm_session *loaded = NULL;
    enum msm_lookup found;
    const uint8_t *value;
    size_t len;

    /* A first request: no cookie, so no session; a new one is stored at its end. */
    EXPECT(MSM_STATUS_OK, msm_request_begin(m, NULL, "/cart", NULL, &r, &err));
    EXPECT(MSM_STATUS_OK, msm_request_get_info(r, &info));
    CHECK(!info.ignored && !info.locked && !info.invalid_id && !info.new_cookie);
    EXPECT(MSM_STATUS_NOT_FOUND, msm_request_session_id(r, &sid));
    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
    s = msm_session_new(600);
    EXPECT(MSM_STATUS_OK, msm_session_set_attribute(s, "n", (const uint8_t *)"1", 1, &err));
    EXPECT(MSM_STATUS_OK,
           msm_request_end(m, r, MSM_OUTCOME_USED, id, s, NULL, &moved, &needs_content, &err));
    CHECK(moved == NULL && !needs_content);
    msm_request_free(r);
    msm_session_free(s);

    /* The next request carries the cookie: the session is read when used, then changed. */
    EXPECT(MSM_STATUS_OK, msm_request_begin(m, id, "/cart", NULL, &r, &err));
    EXPECT(MSM_STATUS_OK, msm_request_session_id(r, &sid));
    CHECK(strcmp(sid, id) == 0);
    msm_string_free(sid);
    EXPECT(MSM_STATUS_OK,
           msm_request_lookup(m, r, id, MSM_HOST_COPY_NONE, &found, &loaded, &moved, &err));
    CHECK(found == MSM_LOOKUP_FOUND && loaded != NULL && moved == NULL);
    EXPECT(MSM_STATUS_OK, msm_session_get_attribute(loaded, "n", &value, &len, &err));
    CHECK(len == 1 && value[0] == '1');
    EXPECT(MSM_STATUS_OK, msm_session_set_attribute(loaded, "n", (const uint8_t *)"2", 1, &err));
    EXPECT(MSM_STATUS_OK, msm_request_end(m, r, MSM_OUTCOME_USED, id, loaded, NULL, &moved,
                                          &needs_content, &err));
    msm_request_free(r);
    msm_session_free(loaded);

    /* A request that never uses its session (a static resource) renews it without reading. */
    EXPECT(MSM_STATUS_OK, msm_request_begin(m, id, "/logo.png", NULL, &r, &err));
    EXPECT(MSM_STATUS_OK,
           msm_request_end(m, r, MSM_OUTCOME_UNUSED, NULL, NULL, NULL, NULL, NULL, &err));
    msm_request_free(r);
    EXPECT(MSM_STATUS_OK, msm_load(m, id, &loaded, NULL, &err));
    EXPECT(MSM_STATUS_OK, msm_session_get_attribute(loaded, "n", &value, &len, &err));
    CHECK(len == 1 && value[0] == '2');
    msm_session_free(loaded);

    /* A hostile cookie is no session, and never reaches memcached. */
    EXPECT(MSM_STATUS_OK, msm_request_begin(m, "x\r\nflush_all", "/", NULL, &r, &err));
    EXPECT(MSM_STATUS_OK, msm_request_get_info(r, &info));
    CHECK(info.invalid_id);
    EXPECT(MSM_STATUS_OK,
           msm_request_end(m, r, MSM_OUTCOME_UNUSED, NULL, NULL, NULL, NULL, NULL, &err));
    msm_request_free(r);

    /* A well-formed id memcached does not hold: missing, the request may create a session. */
    EXPECT(MSM_STATUS_OK,
           msm_request_begin(m, "0123456789ABCDEF0123456789ABCDEF-n2", "/", NULL, &r, &err));
    EXPECT(MSM_STATUS_OK, msm_request_lookup(m, r, "0123456789ABCDEF0123456789ABCDEF-n2",
                                             MSM_HOST_COPY_NONE, &found, &loaded, NULL, &err));
    CHECK(found == MSM_LOOKUP_MISSING && loaded == NULL);
    EXPECT(MSM_STATUS_OK,
           msm_request_end(m, r, MSM_OUTCOME_NOT_STORED, NULL, NULL, NULL, NULL, NULL, &err));
    msm_request_free(r);

    EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
    msm_string_free(id);
}

static void test_failover(const struct msm_manager *m, const char *n1_address, pid_t n1_pid)
{
    char *err = NULL;
    char *on_n1 = new_id_on(m, "n1");
    char *later_on_n1 = new_id_on(m, "n1");
    char *moved = NULL;
    char *again = NULL;
    struct msm_session *s = sample_session();
    struct msm_session *fresh = sample_session();
    struct msm_session *loaded = NULL;
    int i;

    /* Non-sticky: the session goes to n1, its backup copy to n2. */
    EXPECT(MSM_STATUS_OK, msm_store(m, on_n1, s, &moved, &err));
    CHECK(moved == NULL);

    /* A real fault: n1 dies. */
    CHECK(kill(n1_pid, SIGKILL) == 0);
    CHECK(wait_until_refused(n1_address));

    /* The session is served from its backup and moves to n2 under a new id. */
    EXPECT(MSM_STATUS_OK, msm_load(m, on_n1, &loaded, &moved, &err));
    CHECK(loaded != NULL);
    CHECK(moved != NULL && id_on_node(moved, "n2") && same_random_part(moved, on_n1));
    CHECK(same_attributes(s, loaded));
    msm_session_free(loaded);

    /* The new id works as is. */
    EXPECT(MSM_STATUS_OK, msm_load(m, moved, &loaded, &again, &err));
    CHECK(loaded != NULL && again == NULL);
    CHECK(same_attributes(s, loaded));
    msm_session_free(loaded);

    /* Storing a session whose id names the dead node moves it too. */
    EXPECT(MSM_STATUS_OK, msm_store(m, later_on_n1, fresh, &again, &err));
    CHECK(again != NULL && !id_on_node(again, "n1") && same_random_part(again, later_on_n1));
    EXPECT(MSM_STATUS_OK, msm_load(m, again, &loaded, NULL, &err));
    CHECK(loaded != NULL && same_attributes(fresh, loaded));
    msm_session_free(loaded);

    /* New ids avoid the dead node. */
    for (i = 0; i < 4; i++) {
        char *id = NULL;
        EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
        CHECK(!id_on_node(id, "n1"));
        EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
        msm_string_free(id);
    }

    EXPECT(MSM_STATUS_OK, msm_delete(m, moved, &err));
    EXPECT(MSM_STATUS_OK, msm_delete(m, again, &err));
    msm_string_free(on_n1);
    msm_string_free(later_on_n1);
    msm_string_free(moved);
    msm_string_free(again);
    msm_session_free(s);
    msm_session_free(fresh);
}

/* The line of `text` that starts with `prefix`, copied into `line`; 0 when there is none. */
static int find_line(const char *text, const char *prefix, char *line, size_t size)
{
    size_t prefix_len = strlen(prefix);
    const char *p = text;

    while (*p != '\0') {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len >= prefix_len && strncmp(p, prefix, prefix_len) == 0 && len < size) {
            memcpy(line, p, len);
            line[len] = '\0';
            return 1;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The value of the statistic `name` in `text`; fails the test when it is missing. */
static unsigned long long stat_value(const char *text, const char *name)
{
    char line[256];
    char prefix[128];
    unsigned long long value = 0;

    snprintf(prefix, sizeof prefix, "%s ", name);
    if (!find_line(text, prefix, line, sizeof line) || sscanf(line + strlen(prefix), "%llu", &value) != 1) {
        printf("statistic %s missing\n", name);
        fail();
    }
    return value;
}

static void test_stats(const struct msm_manager *m)
{
    char *err = NULL;
    char *text = NULL;
    char line[256];
    unsigned long long relocated = 0;

    EXPECT(MSM_STATUS_OK, msm_stats(m, &text, &err));
    CHECK(text != NULL);
    CHECK(find_line(text, "sessions_relocated ", line, sizeof line));
    CHECK(sscanf(line, "sessions_relocated %llu", &relocated) == 1 && relocated >= 2);
    CHECK(find_line(text, "node_n1 ", line, sizeof line) && ends_with(line, " down"));
    CHECK(find_line(text, "node_n2 ", line, sizeof line) && ends_with(line, " up"));
    CHECK(find_line(text, "node_n3 ", line, sizeof line) && ends_with(line, " up"));
    /* The requests of test_request_lifecycle were timed, their percentiles in order. */
    CHECK(stat_value(text, "request_time_count") > 0);
    CHECK(stat_value(text, "request_time_min_us") <= stat_value(text, "request_time_p50_us"));
    CHECK(stat_value(text, "request_time_p50_us") <= stat_value(text, "request_time_p99_us"));
    CHECK(stat_value(text, "request_time_p99_us") <= stat_value(text, "request_time_p999_us"));
    CHECK(stat_value(text, "request_time_p999_us") <= stat_value(text, "request_time_max_us"));
    CHECK(stat_value(text, "store_time_count") > 0);
    CHECK(stat_value(text, "store_time_p99_us") <= stat_value(text, "store_time_max_us"));
    msm_string_free(text);
}

static void test_panic(const struct msm_manager *m)
{
    char *err = NULL;
    char *id = NULL;
    struct msm_session *s = sample_session();
    struct msm_session *loaded = NULL;

    EXPECT_MSG(MSM_STATUS_PANIC, msm_selftest_panic(&err), "panic");
    CHECK(msm_selftest_panic(NULL) == MSM_STATUS_PANIC);

    /* The library keeps working. */
    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
    EXPECT(MSM_STATUS_OK, msm_store(m, id, s, NULL, &err));
    EXPECT(MSM_STATUS_OK, msm_load(m, id, &loaded, NULL, &err));
    CHECK(loaded != NULL && same_attributes(s, loaded));
    EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));

    msm_session_free(loaded);
    msm_session_free(s);
    msm_string_free(id);
}

/* Two hosts (two managers, as two web servers would have) change one non-sticky session at
 * the same time, each request under the session lock: load locked, add its own attribute,
 * store and unlock. No update may be lost. Threads report back; checks run in the main one. */
enum { HOST_REQUESTS = 100 };

struct host {
    const char *nodes;
    const char *id;
    int index;
    int done;
    enum msm_status failed;
    char failure[256];
};

static void *host_run(void *arg)
{
    struct host *host = arg;
    char *err = NULL;
    struct msm_config *config = msm_config_new();
    struct msm_manager *m = NULL;
    msm_config_set(config, "memcachedNodes", host->nodes, NULL);
    msm_config_set(config, "sticky", "false", NULL);
    msm_config_set(config, "storageKeyPrefix", "ctest:", NULL);
    msm_config_set(config, "lockMaxWait", "10000", NULL);
    host->failed = msm_manager_new(config, &m, &err);
    msm_config_free(config);
    for (int i = 0; host->failed == MSM_STATUS_OK && i < HOST_REQUESTS; i++) {
        struct msm_session *s = NULL;
        struct msm_lock *lock = NULL;
        char name[32];
        enum msm_status status = msm_load_locked(m, host->id, &s, NULL, &lock, &err);
        if (status == MSM_STATUS_NOT_FOUND) {
            s = msm_session_new(1800);
        } else if (status != MSM_STATUS_OK) {
            host->failed = status;
            break;
        }
        snprintf(name, sizeof name, "host%d-%d", host->index, i);
        msm_session_set_attribute(s, name, (const uint8_t *)"x", 1, NULL);
        status = msm_store_unlock(m, host->id, s, lock, NULL, &err);
        msm_session_free(s);
        if (status != MSM_STATUS_OK) {
            host->failed = status;
            break;
        }
        host->done++;
    }
    if (err != NULL) {
        snprintf(host->failure, sizeof host->failure, "%s", err);
        msm_string_free(err);
    }
    msm_manager_free(m);
    return NULL;
}

static void test_two_hosts(const struct msm_manager *m, const char *nodes)
{
    char *err = NULL;
    char *id = NULL;
    struct msm_session *loaded = NULL;
    struct host hosts[2];
    pthread_t threads[2];

    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
    for (int h = 0; h < 2; h++) {
        hosts[h] = (struct host){.nodes = nodes, .id = id, .index = h};
        CHECK(pthread_create(&threads[h], NULL, host_run, &hosts[h]) == 0);
    }
    for (int h = 0; h < 2; h++) {
        CHECK(pthread_join(threads[h], NULL) == 0);
        if (hosts[h].failed != MSM_STATUS_OK) {
            fprintf(stderr, "host %d: %s: %s\n", h, msm_status_name(hosts[h].failed),
                    hosts[h].failure);
        }
        CHECK(hosts[h].failed == MSM_STATUS_OK && hosts[h].done == HOST_REQUESTS);
    }
    EXPECT(MSM_STATUS_OK, msm_load(m, id, &loaded, NULL, &err));
    CHECK(msm_session_attribute_count(loaded) == 2 * HOST_REQUESTS);
    for (int h = 0; h < 2; h++) {
        for (int i = 0; i < HOST_REQUESTS; i++) {
            char name[32];
            snprintf(name, sizeof name, "host%d-%d", h, i);
            CHECK(has_attribute(loaded, name, "x", 1));
        }
    }
    /* A NULL lock is refused; a bad id still releases the lock it was given. */
    struct msm_lock *lock = NULL;
    CHECK(msm_store_unlock(m, id, loaded, NULL, NULL, NULL) == MSM_STATUS_INVALID_ARGUMENT);
    EXPECT(MSM_STATUS_OK, msm_lock_acquire(m, id, &lock, &err));
    EXPECT(MSM_STATUS_INVALID_ID, msm_store_unlock(m, "no id", loaded, lock, NULL, &err));
    EXPECT(MSM_STATUS_OK, msm_lock_acquire(m, id, &lock, &err));
    EXPECT(MSM_STATUS_OK, msm_lock_release(m, lock, &err));
    EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
    msm_session_free(loaded);
    msm_string_free(id);
}

/* A manager of `nodes` with expiry events swept every second (non-sticky, prefix cevents:). */
static struct msm_manager *events_manager(const char *nodes)
{
    char *err = NULL;
    struct msm_config *config = msm_config_new();
    struct msm_manager *m = NULL;

    EXPECT(MSM_STATUS_OK, msm_config_set(config, "memcachedNodes", nodes, &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "sticky", "false", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "storageKeyPrefix", "cevents:", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "sessionEvents", "expiry", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "eventSweepInterval", "1", &err));
    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG,
               msm_config_set(config, "sessionEvents", "everything", &err), "sessionEvents");
    EXPECT(MSM_STATUS_OK, msm_manager_new(config, &m, &err));
    msm_config_free(config);
    return m;
}

/* Expiry events: of two sessions stored by one of two hosts and left to expire, the one that
 * expired is handed, with its data, to exactly one host, once; the one deleted never is. A
 * manager without events has none to give. */
static void test_expiry_events(const struct msm_manager *plain, const char *nodes)
{
    char *err = NULL;
    char *expired_id = NULL;
    char *deleted_id = NULL;
    char *id = NULL;
    struct msm_session *session = NULL;
    struct msm_manager *hosts[2] = {events_manager(nodes), events_manager(nodes)};
    struct msm_session *s = msm_session_new(1);
    int delivered = 0;

    EXPECT(MSM_STATUS_NOT_FOUND, msm_manager_poll_expired(plain, &id, &session, &err));
    CHECK(id == NULL && session == NULL);
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_manager_poll_expired(plain, NULL, &session, &err));

    set_text(s, "user", "alice");
    EXPECT(MSM_STATUS_OK, msm_session_id_new(hosts[0], NULL, &expired_id, &err));
    EXPECT(MSM_STATUS_OK, msm_store(hosts[0], expired_id, s, NULL, &err));
    EXPECT(MSM_STATUS_OK, msm_session_id_new(hosts[0], NULL, &deleted_id, &err));
    EXPECT(MSM_STATUS_OK, msm_store(hosts[0], deleted_id, s, NULL, &err));
    EXPECT(MSM_STATUS_OK, msm_delete(hosts[0], deleted_id, &err));
    msm_session_free(s);

    /* Swept about five seconds after the last access; polled by both hosts for nine. */
    double until = now_ms() + 9000;
    while (now_ms() < until) {
        for (int h = 0; h < 2; h++) {
            enum msm_status got;
            while ((got = msm_manager_poll_expired(hosts[h], &id, &session, &err)) ==
                   MSM_STATUS_OK) {
                CHECK(strcmp(id, expired_id) == 0);
                CHECK(has_attribute(session, "user", "alice", 5));
                delivered++;
                msm_string_free(id);
                msm_session_free(session);
            }
            EXPECT(MSM_STATUS_NOT_FOUND, got);
            CHECK(id == NULL && session == NULL);
        }
        sleep_ms(200);
    }
    CHECK(delivered == 1);
    msm_string_free(expired_id);
    msm_string_free(deleted_id);
    msm_manager_free(hosts[0]);
    msm_manager_free(hosts[1]);
}

/* A manager of `nodes` with broadcast events polled every 100 ms (non-sticky, prefix
 * cbroadcast:). */
static struct msm_manager *broadcast_manager(const char *nodes)
{
    char *err = NULL;
    struct msm_config *config = msm_config_new();
    struct msm_manager *m = NULL;

    EXPECT(MSM_STATUS_OK, msm_config_set(config, "memcachedNodes", nodes, &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "sticky", "false", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "storageKeyPrefix", "cbroadcast:", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "sessionEvents", "broadcast", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "broadcastPollInterval", "100", &err));
    EXPECT(MSM_STATUS_OK, msm_config_set(config, "broadcastValues", "true", &err));
    EXPECT(MSM_STATUS_OK, msm_manager_new(config, &m, &err));
    msm_config_free(config);
    return m;
}

/* The next broadcast event `m` hears within 10 s, or NULL. */
static struct msm_event *next_event(const struct msm_manager *m)
{
    char *err = NULL;
    struct msm_event *event = NULL;
    double until = now_ms() + 10000;

    for (;;) {
        enum msm_status got = msm_manager_poll_event(m, &event, &err);
        if (got == MSM_STATUS_OK) {
            return event;
        }
        EXPECT(MSM_STATUS_NOT_FOUND, got);
        CHECK(event == NULL);
        if (now_ms() > until) {
            return NULL;
        }
        sleep_ms((long)msm_manager_broadcast_poll_interval_ms(m));
    }
}

/* True when `event` is of `kind`, for the session `id`, names `name` (NULL: none) and carries
 * `len` bytes equal to `value` (NULL: none). */
static int is_event(const struct msm_event *event, enum msm_event_kind kind, const char *id,
                    const char *name, const void *value, size_t len)
{
    struct msm_event_info info;

    if (event == NULL || msm_event_get_info(event, &info) != MSM_STATUS_OK) {
        return 0;
    }
    return info.kind == kind && strcmp(info.id, id) == 0 &&
           (name == NULL ? info.name == NULL : info.name != NULL && strcmp(info.name, name) == 0) &&
           (value == NULL ? info.value == NULL && info.value_len == 0
                          : info.value != NULL && info.value_len == len &&
                                memcmp(info.value, value, len) == 0);
}

/* Broadcast events: what one host publishes (one event per call) the other hears once, in
 * order, with names and values, the id without its route; the publisher hears nothing of its
 * own. Arguments that do not fit the kind are refused and publish nothing. A manager without
 * broadcast has nothing to poll. */
static void test_broadcast_events(const struct msm_manager *plain, const char *nodes)
{
    char *err = NULL;
    char *id = NULL;
    char routed[128];
    char *text = NULL;
    char line[256];
    struct msm_event *event = NULL;
    struct msm_event_info info;
    struct msm_manager *publisher = broadcast_manager(nodes);
    struct msm_manager *listener = broadcast_manager(nodes);
    const enum msm_event_kind kinds[] = {MSM_EVENT_KIND_CREATED, MSM_EVENT_KIND_ATTRIBUTE_ADDED,
                                         MSM_EVENT_KIND_ATTRIBUTE_REPLACED,
                                         MSM_EVENT_KIND_ATTRIBUTE_REMOVED,
                                         MSM_EVENT_KIND_DESTROYED};

    CHECK(msm_manager_broadcast_poll_interval_ms(plain) == 0);
    CHECK(msm_manager_broadcast_poll_interval_ms(listener) == 100);
    EXPECT(MSM_STATUS_NOT_FOUND, msm_manager_poll_event(plain, &event, &err));
    CHECK(event == NULL);
    EXPECT(MSM_STATUS_OK, msm_session_id_new(publisher, NULL, &id, &err));
    CHECK(snprintf(routed, sizeof routed, "%s.r7", id) < (int)sizeof routed);

    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(publisher, 5, id, NULL, NULL, 0, &err), "kind");
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(publisher, -1, id, NULL, NULL, 0, &err), "kind");
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(publisher, MSM_EVENT_KIND_ATTRIBUTE_ADDED, id, NULL, BLOB,
                                   sizeof BLOB, &err),
               "`name` is NULL");
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(publisher, MSM_EVENT_KIND_CREATED, id, "user", NULL, 0, &err),
               "`name` is given");
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(publisher, MSM_EVENT_KIND_DESTROYED, id, NULL, BLOB,
                                   sizeof BLOB, &err),
               "`value` is given");
    EXPECT(MSM_STATUS_INVALID_ID, msm_manager_publish(publisher, MSM_EVENT_KIND_CREATED,
                                                      "../../etc/passwd", NULL, NULL, 0, &err));

    EXPECT(MSM_STATUS_OK,
           msm_manager_publish(publisher, kinds[0], routed, NULL, NULL, 0, &err));
    EXPECT(MSM_STATUS_OK,
           msm_manager_publish(publisher, kinds[1], id, "blob", BLOB, sizeof BLOB, &err));
    EXPECT(MSM_STATUS_OK,
           msm_manager_publish(publisher, kinds[2], id, "blob", (const uint8_t *)"", 0, &err));
    EXPECT(MSM_STATUS_OK, msm_manager_publish(publisher, kinds[3], id, "blob", NULL, 0, &err));
    EXPECT(MSM_STATUS_OK, msm_manager_publish(publisher, kinds[4], id, NULL, NULL, 0, &err));

    event = next_event(listener);
    CHECK(is_event(event, kinds[0], id, NULL, NULL, 0));
    CHECK(msm_event_get_info(event, NULL) == MSM_STATUS_INVALID_ARGUMENT);
    msm_event_free(event);
    event = next_event(listener);
    CHECK(is_event(event, kinds[1], id, "blob", BLOB, sizeof BLOB));
    msm_event_free(event);
    /* An empty value sent is not NULL, unlike a value not sent. */
    event = next_event(listener);
    CHECK(is_event(event, kinds[2], id, "blob", "", 0));
    msm_event_free(event);
    event = next_event(listener);
    CHECK(is_event(event, kinds[3], id, "blob", NULL, 0));
    msm_event_free(event);
    event = next_event(listener);
    CHECK(is_event(event, kinds[4], id, NULL, NULL, 0));
    CHECK(msm_event_get_info(event, &info) == MSM_STATUS_OK && info.kind == 1);
    msm_event_free(event);

    sleep_ms(300);
    EXPECT(MSM_STATUS_NOT_FOUND, msm_manager_poll_event(listener, &event, &err));
    EXPECT(MSM_STATUS_NOT_FOUND, msm_manager_poll_event(publisher, &event, &err));
    CHECK(event == NULL);
    EXPECT(MSM_STATUS_OK, msm_stats(publisher, &text, &err));
    CHECK(find_line(text, "broadcast_events_published ", line, sizeof line) &&
          strcmp(line, "broadcast_events_published 5") == 0);
    msm_string_free(text);

    msm_string_free(id);
    msm_manager_free(publisher);
    msm_manager_free(listener);
}

/* The node list is replaced at runtime by n2 and n3 alone (n1 is dead by now): new ids never
 * name n1, and a bad list is refused with a message saying why. */
static void test_set_nodes(const struct msm_manager *m, const char *n2, const char *n3)
{
    char *err = NULL;
    char nodes[256];
    char *id = NULL;
    char *text = NULL;
    char line[256];

    EXPECT_MSG(MSM_STATUS_INVALID_CONFIG, msm_manager_set_nodes(m, "n2:a:1 n2:b:2", &err),
               "duplicate node id");
    CHECK(snprintf(nodes, sizeof nodes, "n2:%s n3:%s", n2, n3) < (int)sizeof nodes);
    EXPECT(MSM_STATUS_OK, msm_manager_set_nodes(m, nodes, &err));
    EXPECT(MSM_STATUS_OK, msm_stats(m, &text, &err));
    CHECK(!find_line(text, "node_n1 ", line, sizeof line));
    CHECK(find_line(text, "node_n3 ", line, sizeof line) && ends_with(line, " up"));
    msm_string_free(text);
    for (int i = 0; i < 4; i++) {
        EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));
        CHECK(!id_on_node(id, "n1"));
        msm_string_free(id);
    }
    CHECK(msm_manager_set_nodes(NULL, nodes, NULL) == MSM_STATUS_INVALID_ARGUMENT);
}

/* The node list is shared in the cluster: another host configured with n2 alone starts with n2
 * and n3, the list the first host published; when the first host removes n3, the other follows
 * on msm_manager_refresh_nodes. */
static void test_shared_node_list(const struct msm_manager *m, const char *n2)
{
    char *err = NULL;
    char nodes[256];
    char *text = NULL;
    char line[256];
    struct msm_config *config;
    struct msm_manager *other = NULL;

    CHECK(snprintf(nodes, sizeof nodes, "n2:%s", n2) < (int)sizeof nodes);
    config = test_config(nodes);
    EXPECT(MSM_STATUS_OK, msm_manager_new(config, &other, &err));
    EXPECT(MSM_STATUS_OK, msm_stats(other, &text, &err));
    CHECK(find_line(text, "node_n3 ", line, sizeof line) && ends_with(line, " up"));
    CHECK(find_line(text, "shared_list_version ", line, sizeof line) &&
          strcmp(line, "shared_list_version 2") == 0);
    msm_string_free(text);

    EXPECT(MSM_STATUS_OK, msm_manager_set_nodes(m, nodes, &err));
    EXPECT(MSM_STATUS_OK, msm_manager_refresh_nodes(other, &err));
    EXPECT(MSM_STATUS_OK, msm_stats(other, &text, &err));
    CHECK(!find_line(text, "node_n3 ", line, sizeof line));
    CHECK(find_line(text, "shared_list_version ", line, sizeof line) &&
          strcmp(line, "shared_list_version 3") == 0);
    msm_string_free(text);

    CHECK(msm_manager_refresh_nodes(NULL, NULL) == MSM_STATUS_INVALID_ARGUMENT);
    msm_manager_free(other);
    msm_config_free(config);
}

static void test_null_arguments(const struct msm_manager *m, struct msm_config *config)
{
    char *err = NULL;
    char *id = NULL;
    char *text = NULL;
    struct msm_session *s = msm_session_new(60);
    struct msm_session *loaded = NULL;
    struct msm_manager *other = NULL;
    struct msm_lock *lock = NULL;
    const uint8_t *value = NULL;
    size_t len = 0;
    struct msm_session_info info;
    struct msm_event *event = NULL;
    struct msm_event_info event_info;

    EXPECT(MSM_STATUS_OK, msm_session_id_new(m, NULL, &id, &err));

    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_config_set(NULL, "sticky", "true", &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_config_set(config, NULL, "true", &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_config_set(config, "sticky", NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_config_set_context(config, NULL, "/app", &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_manager_new(NULL, &other, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_manager_new(config, NULL, &err));
    CHECK(other == NULL);

    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_id_new(NULL, NULL, &text, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_id_new(m, NULL, NULL, &err));

    EXPECT(MSM_STATUS_INVALID_ARGUMENT,
           msm_session_set_attribute(NULL, "a", (const uint8_t *)"x", 1, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT,
           msm_session_set_attribute(s, NULL, (const uint8_t *)"x", 1, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_set_attribute(s, "a", NULL, 3, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_get_attribute(s, "a", NULL, &len, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_get_attribute(s, "a", &value, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_remove_attribute(s, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_attribute_name(s, 0, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_get_info(NULL, &info, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_get_info(s, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_session_access(NULL, 60, &err));
    CHECK(msm_session_attribute_count(NULL) == 0);

    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT, msm_load(m, NULL, &loaded, NULL, &err), "id");
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_load(NULL, id, &loaded, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_load(m, id, NULL, NULL, &err));
    CHECK(loaded == NULL);
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_store(m, NULL, s, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_store(m, id, NULL, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_store(NULL, id, s, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_touch(m, NULL, 60, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_delete(m, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_lock_acquire(m, NULL, &lock, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_lock_acquire(m, id, NULL, &err));
    CHECK(lock == NULL);
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_lock_release(m, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_stats(m, NULL, &err));
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_stats(NULL, &text, &err));
    CHECK(text == NULL);

    EXPECT(MSM_STATUS_INVALID_ARGUMENT,
           msm_manager_publish(NULL, MSM_EVENT_KIND_CREATED, id, NULL, NULL, 0, &err));
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(m, MSM_EVENT_KIND_CREATED, NULL, NULL, NULL, 0, &err), "id");
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT,
               msm_manager_publish(m, MSM_EVENT_KIND_ATTRIBUTE_ADDED, id, "a", NULL, 3, &err),
               "value");
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_manager_poll_event(NULL, &event, &err));
    CHECK(event == NULL);
    EXPECT(MSM_STATUS_INVALID_ARGUMENT, msm_manager_poll_event(m, NULL, &err));
    CHECK(msm_event_get_info(NULL, &event_info) == MSM_STATUS_INVALID_ARGUMENT);
    CHECK(msm_manager_broadcast_poll_interval_ms(NULL) == 0);

    /* A string that is not UTF-8 is an invalid argument, like NULL. */
    EXPECT_MSG(MSM_STATUS_INVALID_ARGUMENT, msm_load(m, "\xff\xfe", &loaded, NULL, &err),
               "UTF-8");

    /* `error` may be NULL; releasing NULL is a no-op. */
    CHECK(msm_load(m, NULL, &loaded, NULL, NULL) == MSM_STATUS_INVALID_ARGUMENT);
    msm_string_free(NULL);
    msm_session_free(NULL);
    msm_event_free(NULL);
    msm_manager_free(NULL);
    msm_config_free(NULL);

    CHECK(strcmp(msm_status_name(MSM_STATUS_LOCK_TIMEOUT), "MSM_STATUS_LOCK_TIMEOUT") == 0);
    CHECK(strcmp(msm_status_name(MSM_STATUS_OK), "MSM_STATUS_OK") == 0);

    EXPECT(MSM_STATUS_OK, msm_delete(m, id, &err));
    msm_string_free(id);
    msm_session_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* A host that hears expiry events                                                            */
/* ------------------------------------------------------------------------------------------ */

/*
 * The manager of a C host started in one of the modes below: `memcachedNodes=NODES`,
 * `sessionEvents=EVENTS`, then the `count` attributes `NAME=VALUE` at `attributes`. NULL, after
 * printing `ERROR ...`, when the configuration is refused.
 */
static struct msm_manager *host_manager(const char *nodes, const char *events, int count,
                                        char **attributes)
{
    char *err = NULL;
    struct msm_config *config = msm_config_new();
    struct msm_manager *m = NULL;
    enum msm_status got;

    if (config == NULL) {
        printf("ERROR no configuration\n");
        return NULL;
    }
    got = msm_config_set(config, "memcachedNodes", nodes, &err);
    if (got == MSM_STATUS_OK) {
        got = msm_config_set(config, "sessionEvents", events, &err);
    }
    for (int i = 0; i < count && got == MSM_STATUS_OK; i++) {
        char name[128];
        const char *equals = strchr(attributes[i], '=');
        size_t len = equals != NULL ? (size_t)(equals - attributes[i]) : 0;
        if (len == 0 || len >= sizeof name) {
            printf("ERROR not NAME=VALUE: %s\n", attributes[i]);
            msm_config_free(config);
            return NULL;
        }
        memcpy(name, attributes[i], len);
        name[len] = '\0';
        got = msm_config_set(config, name, equals + 1, &err);
    }
    if (got == MSM_STATUS_OK) {
        got = msm_manager_new(config, &m, &err);
    }
    msm_config_free(config);
    if (got != MSM_STATUS_OK) {
        printf("ERROR configuration: %s: %s\n", msm_status_name(got), err != NULL ? err : "?");
        msm_string_free(err);
        return NULL;
    }
    return m;
}

/* Prints `bytes` as lowercase hex, without a separator. */
static void print_hex(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        printf("%02x", bytes[i]);
    }
}

/* Prints an expired session: `EXPIRED <id> <attribute count>`, then one line
 * `ATTRIBUTE <id> <name> <value as hex>` per attribute (an empty value as `-`). */
static int print_expired(const char *id, const struct msm_session *session)
{
    size_t count = msm_session_attribute_count(session);

    printf("EXPIRED %s %zu\n", id, count);
    for (size_t i = 0; i < count; i++) {
        char *name = NULL;
        const uint8_t *value = NULL;
        size_t len = 0;
        char *err = NULL;
        if (msm_session_attribute_name(session, i, &name, &err) != MSM_STATUS_OK ||
            msm_session_get_attribute(session, name, &value, &len, &err) != MSM_STATUS_OK) {
            printf("ERROR attribute %zu of %s: %s\n", i, id, err != NULL ? err : "?");
            msm_string_free(err);
            msm_string_free(name);
            return 0;
        }
        printf("ATTRIBUTE %s %s ", id, name);
        if (len == 0) {
            printf("-");
        }
        print_hex(value, len);
        printf("\n");
        msm_string_free(name);
    }
    return 1;
}

/*
 * `msm_test poll-expired SECONDS NODES [NAME=VALUE ...]`: a C host configured with
 * `memcachedNodes=NODES`, `sessionEvents=expiry` and the attributes given (the same storage key
 * prefix and `eventSweepInterval` as the other hosts of the context), which calls
 * msm_manager_poll_expired until MSM_STATUS_NOT_FOUND every 100 ms for SECONDS seconds. Prints
 * `READY` once the manager is made, each expired session as print_expired does, and
 * `POLLED <sessions>` at the end; exits 0. Any other status prints `ERROR ...` and exits 1.
 */
static int poll_expired_main(int argc, char **argv)
{
    char *err = NULL;
    char *id = NULL;
    struct msm_session *session = NULL;
    struct msm_manager *m = NULL;
    long seconds = argc >= 4 ? strtol(argv[2], NULL, 10) : 0;
    long delivered = 0;
    enum msm_status got;
    double until;

    if (argc < 4 || seconds <= 0) {
        fprintf(stderr, "usage: %s poll-expired SECONDS NODES [NAME=VALUE ...]\n", argv[0]);
        return 2;
    }
    m = host_manager(argv[3], "expiry", argc - 4, argv + 4);
    if (m == NULL) {
        return 1;
    }
    printf("READY\n");
    until = now_ms() + 1000.0 * (double)seconds;
    while (now_ms() < until) {
        while ((got = msm_manager_poll_expired(m, &id, &session, &err)) == MSM_STATUS_OK) {
            int printed = id != NULL && session != NULL && print_expired(id, session);
            msm_string_free(id);
            msm_session_free(session);
            if (!printed) {
                printf("ERROR an expired session without its id or data\n");
                return 1;
            }
            delivered++;
        }
        if (got != MSM_STATUS_NOT_FOUND) {
            printf("ERROR msm_manager_poll_expired: %s: %s\n", msm_status_name(got),
                   err != NULL ? err : "?");
            msm_string_free(err);
            return 1;
        }
        sleep_ms(100);
    }
    msm_manager_free(m);
    printf("POLLED %ld\n", delivered);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Hosts that broadcast events                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Prints a broadcast event: `EVENT <kind number> <id> <name> <value>`, the name `-` when there
 * is none, the value `-` when none was sent, else `0x` and its bytes in hex (`0x` alone: an
 * empty value). */
static int print_event(const struct msm_event *event)
{
    struct msm_event_info info;

    if (msm_event_get_info(event, &info) != MSM_STATUS_OK || info.id == NULL) {
        return 0;
    }
    printf("EVENT %d %s %s ", (int)info.kind, info.id, info.name != NULL ? info.name : "-");
    if (info.value == NULL) {
        printf("-");
    } else {
        printf("0x");
        print_hex(info.value, info.value_len);
    }
    printf("\n");
    return 1;
}

/*
 * `msm_test broadcast-listen SECONDS NODES [NAME=VALUE ...]`: a C host configured with
 * `memcachedNodes=NODES`, `sessionEvents=broadcast` and the attributes given (the same storage
 * key prefix as the other hosts of the context), which calls msm_manager_poll_event until
 * MSM_STATUS_NOT_FOUND every msm_manager_broadcast_poll_interval_ms for SECONDS seconds.
 * Prints `READY <poll interval ms>` once the manager is made, each event heard as print_event
 * does, and `LISTENED <events>` at the end; exits 0. Any other status prints `ERROR ...` and
 * exits 1.
 */
static int broadcast_listen_main(int argc, char **argv)
{
    char *err = NULL;
    struct msm_event *event = NULL;
    struct msm_manager *m = NULL;
    long seconds = argc >= 4 ? strtol(argv[2], NULL, 10) : 0;
    long heard = 0;
    uint32_t interval;
    enum msm_status got;
    double until;

    if (argc < 4 || seconds <= 0) {
        fprintf(stderr, "usage: %s broadcast-listen SECONDS NODES [NAME=VALUE ...]\n", argv[0]);
        return 2;
    }
    m = host_manager(argv[3], "broadcast", argc - 4, argv + 4);
    if (m == NULL) {
        return 1;
    }
    interval = msm_manager_broadcast_poll_interval_ms(m);
    if (interval == 0) {
        printf("ERROR a manager with broadcast events has no poll interval\n");
        return 1;
    }
    printf("READY %u\n", (unsigned)interval);
    until = now_ms() + 1000.0 * (double)seconds;
    while (now_ms() < until) {
        while ((got = msm_manager_poll_event(m, &event, &err)) == MSM_STATUS_OK) {
            int printed = event != NULL && print_event(event);
            msm_event_free(event);
            if (!printed) {
                printf("ERROR an event without content\n");
                return 1;
            }
            heard++;
        }
        if (got != MSM_STATUS_NOT_FOUND || event != NULL) {
            printf("ERROR msm_manager_poll_event: %s: %s\n", msm_status_name(got),
                   err != NULL ? err : "?");
            msm_string_free(err);
            return 1;
        }
        sleep_ms((long)interval);
    }
    msm_manager_free(m);
    printf("LISTENED %ld\n", heard);
    return 0;
}

/* Parses `0x` followed by hex digits into `out` (at most `size` bytes); -1 when malformed. */
static long parse_hex(const char *text, uint8_t *out, size_t size)
{
    size_t digits;

    if (strncmp(text, "0x", 2) != 0) {
        return -1;
    }
    text += 2;
    digits = strlen(text);
    if (digits % 2 != 0 || digits / 2 > size) {
        return -1;
    }
    for (size_t i = 0; i < digits / 2; i++) {
        unsigned int byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1) {
            return -1;
        }
        out[i] = (uint8_t)byte;
    }
    return (long)(digits / 2);
}

/*
 * `msm_test broadcast-publish NODES [NAME=VALUE ...] < EVENTS`: a C host configured as
 * broadcast-listen is, which publishes with msm_manager_publish each event its standard input
 * holds, one per line: `<kind number> <id> <name> <value>`, `-` standing for NULL (id, name or
 * value), the value otherwise `0x` and its bytes in hex. Prints `READY` once the manager is made,
 * then for each line `OK`, or `ERROR <status> <message>` when the call failed, and at the end of
 * its input `PUBLISHED <broadcast_events_published>`; exits 0. A malformed line prints
 * `ERROR line ...` and exits 1.
 */
static int broadcast_publish_main(int argc, char **argv)
{
    char *err = NULL;
    char *text = NULL;
    char line[4096];
    char counter[256];
    struct msm_manager *m = NULL;
    enum msm_status got;

    if (argc < 3) {
        fprintf(stderr, "usage: %s broadcast-publish NODES [NAME=VALUE ...] < EVENTS\n", argv[0]);
        return 2;
    }
    m = host_manager(argv[2], "broadcast", argc - 3, argv + 3);
    if (m == NULL) {
        return 1;
    }
    printf("READY\n");
    while (fgets(line, sizeof line, stdin) != NULL) {
        static uint8_t value[2048];
        char *fields[4];
        char *rest = line;
        char *end = NULL;
        long kind;
        long len = 0;
        int count = 0;

        line[strcspn(line, "\n")] = '\0';
        for (char *field = strtok(rest, " "); field != NULL && count < 5;
             field = strtok(NULL, " ")) {
            if (count < 4) {
                fields[count] = field;
            }
            count++;
        }
        kind = count == 4 ? strtol(fields[0], &end, 10) : 0;
        if (count != 4 || end == fields[0] || *end != '\0' ||
            (strcmp(fields[3], "-") != 0 &&
             (len = parse_hex(fields[3], value, sizeof value)) < 0)) {
            printf("ERROR line not `<kind> <id> <name> <value>`: %s\n", line);
            return 1;
        }
        got = msm_manager_publish(m, (int32_t)kind, strcmp(fields[1], "-") == 0 ? NULL : fields[1],
                                  strcmp(fields[2], "-") == 0 ? NULL : fields[2],
                                  strcmp(fields[3], "-") == 0 ? NULL : value, (size_t)len, &err);
        if (got == MSM_STATUS_OK) {
            printf("OK\n");
        } else {
            printf("ERROR %s %s\n", msm_status_name(got), err != NULL ? err : "(no message)");
            msm_string_free(err);
            err = NULL;
        }
    }
    got = msm_stats(m, &text, &err);
    if (got != MSM_STATUS_OK || !find_line(text, "broadcast_events_published ", counter,
                                           sizeof counter)) {
        printf("ERROR msm_stats: %s: %s\n", msm_status_name(got), err != NULL ? err : "?");
        return 1;
    }
    printf("PUBLISHED %s\n", counter + strlen("broadcast_events_published "));
    msm_string_free(text);
    msm_manager_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    char *err = NULL;
    char nodes[256];
    struct msm_config *config;
    struct msm_manager *m = NULL;
    long n1_pid;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "poll-expired") == 0) {
        return poll_expired_main(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "broadcast-listen") == 0) {
        return broadcast_listen_main(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "broadcast-publish") == 0) {
        return broadcast_publish_main(argc, argv);
    }
    if (argc != 5) {
        fprintf(stderr, "usage: %s ADDR1 ADDR2 ADDR3 PID1\n", argv[0]);
        return 2;
    }
    n1_pid = strtol(argv[4], NULL, 10);
    CHECK(n1_pid > 0);
    CHECK(snprintf(nodes, sizeof nodes, "n1:%s n2:%s n3:%s", argv[1], argv[2], argv[3]) <
          (int)sizeof nodes);

    config = test_config(nodes);
    EXPECT(MSM_STATUS_OK, msm_manager_new(config, &m, &err));
    CHECK(m != NULL);

    test_ids(m);
    test_session_content();
    test_store_load(m);
    test_hostile_ids(m);
    test_lock(m);
    test_request_lifecycle(m);
    test_two_hosts(m, nodes);
    test_expiry_events(m, nodes);
    test_broadcast_events(m, nodes);
    test_null_arguments(m, config);
    test_failover(m, argv[1], (pid_t)n1_pid);
    test_stats(m);
    test_set_nodes(m, argv[2], argv[3]);
    test_shared_node_list(m, argv[2]);
    test_panic(m);

    msm_manager_free(m);
    msm_config_free(config);
    printf("%d passed, 0 failed\n", checks_passed);
    return 0;
}
