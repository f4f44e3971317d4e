/*
 * A small HTTP server that keeps a counter in each session through msm's C face: the same
 * request lifecycle Tomcat runs on (non-sticky, every request under the session lock), with
 * plain sockets and a thread per connection.
 *
 *   counter PORT MEMCACHED_NODES
 *
 * GET / increments the session's counter, any other path only reads it; both answer
 * "session=<id> counter=<n>" and send the JSESSIONID cookie when the session is new or moved.
 * Prints "READY <port>" once it listens on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msm.h"

#define COOKIE "JSESSIONID="

static struct msm_manager *manager;

static void reply(int fd, int status, const char *cookie, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "%s%s%sConnection: close\r\n\r\n",
                     status, status == 200 ? "OK" : "Service Unavailable", strlen(body),
                     cookie ? "Set-Cookie: " COOKIE : "", cookie ? cookie : "",
                     cookie ? "; Path=/; HttpOnly\r\n" : "");
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0) {
        perror("write");
    }
}

/* The session id of the request's Cookie header, copied into `out`; NULL when none. */
static const char *cookie_of(char *request, char *out, size_t size)
{
    for (char *line = strstr(request, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Cookie:", 7) != 0) {
            continue;
        }
        char *at = strstr(line + 2, COOKIE);
        char *end = strstr(line + 2, "\r\n");
        if (!at || (end && at > end)) {
            return NULL;
        }
        at += strlen(COOKIE);
        size_t len = strcspn(at, ";\r\n");
        if (len >= size) {
            len = size - 1;
        }
        memcpy(out, at, len);
        out[len] = '\0';
        return out;
    }
    return NULL;
}

static long counter_of(const struct msm_session *session)
{
    const uint8_t *value;
    size_t len;
    char text[32] = "0";
    if (msm_session_get_attribute(session, "counter", &value, &len, NULL) == MSM_STATUS_OK &&
        len < sizeof text) {
        memcpy(text, value, len);
        text[len] = '\0';
    }
    return strtol(text, NULL, 10);
}

static void serve(int fd)
{
    char request[8192], cookie_buf[256], body[256];
    size_t have = 0;
    /* The whole head, which may come in several segments. */
    do {
        ssize_t got = recv(fd, request + have, sizeof request - 1 - have, 0);
        if (got <= 0) {
            return;
        }
        have += (size_t)got;
        request[have] = '\0';
    } while (!strstr(request, "\r\n\r\n") && have < sizeof request - 1);
    char path[256] = "/";
    sscanf(request, "GET %255s", path);
    const char *cookie = cookie_of(request, cookie_buf, sizeof cookie_buf);

    char *err = NULL, *id = NULL, *moved = NULL;
    struct msm_request *r = NULL;
    struct msm_session *session = NULL;
    bool new_cookie = false;
    enum msm_status status = msm_request_begin(manager, cookie, path, NULL, &r, &err);
    if (status != MSM_STATUS_OK) {
        fprintf(stderr, "begin: %s: %s\n", msm_status_name(status), err);
        msm_string_free(err);
        reply(fd, 503, NULL, "the session is busy; try again\n");
        return;
    }
    if (msm_request_session_id(r, &id) == MSM_STATUS_OK) {
        enum msm_lookup found;
        status = msm_request_lookup(manager, r, id, MSM_HOST_COPY_NONE, &found, &session, &moved,
                                    &err);
        if (status != MSM_STATUS_OK || found == MSM_LOOKUP_UNAVAILABLE) {
            msm_request_end(manager, r, MSM_OUTCOME_NOT_STORED, NULL, NULL, NULL, NULL, NULL,
                            NULL);
            msm_request_free(r);
            msm_string_free(id);
            msm_string_free(err);
            reply(fd, 503, NULL, "the session store is not available; try again\n");
            return;
        }
        if (moved) {
            msm_string_free(id);
            id = moved;
            moved = NULL;
            new_cookie = true;
        }
    }
    if (!session) {
        /* No session (none asked for, unknown, or a forged id): a new one. */
        msm_string_free(id);
        id = NULL;
        if (msm_session_id_new(manager, NULL, &id, &err) != MSM_STATUS_OK) {
            fprintf(stderr, "new id: %s\n", err);
            msm_string_free(err);
            msm_request_end(manager, r, MSM_OUTCOME_NOT_STORED, NULL, NULL, NULL, NULL, NULL,
                            NULL);
            msm_request_free(r);
            reply(fd, 503, NULL, "no session id; try again\n");
            return;
        }
        session = msm_session_new(1800);
        new_cookie = true;
    }
    long counter = counter_of(session);
    if (strcmp(path, "/") == 0) {
        char text[32];
        int len = snprintf(text, sizeof text, "%ld", ++counter);
        msm_session_set_attribute(session, "counter", (const uint8_t *)text, (size_t)len, NULL);
    }
    status = msm_request_end(manager, r, MSM_OUTCOME_USED, id, session, NULL, &moved, NULL, &err);
    if (status != MSM_STATUS_OK) {
        fprintf(stderr, "end: %s: %s\n", msm_status_name(status), err);
        msm_string_free(err);
    }
    if (moved) {
        msm_string_free(id);
        id = moved;
        new_cookie = true;
    }
    msm_request_free(r);
    msm_session_free(session);
    snprintf(body, sizeof body, "session=%s counter=%ld\n", id, counter);
    reply(fd, 200, new_cookie ? id : NULL, body);
    msm_string_free(id);
}

static void *connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    serve(fd);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT MEMCACHED_NODES [ATTRIBUTE=VALUE ...]\n", argv[0]);
        return 2;
    }
    char *err = NULL;
    struct msm_config *config = msm_config_new();
    if (msm_config_set(config, "memcachedNodes", argv[2], &err) != MSM_STATUS_OK ||
        msm_config_set(config, "sticky", "false", &err) != MSM_STATUS_OK ||
        msm_config_set(config, "lockingMode", "all", &err) != MSM_STATUS_OK ||
        msm_config_set(config, "lockMaxWait", "20000", &err) != MSM_STATUS_OK ||
        msm_config_set(config, "operationTimeout", "300", &err) != MSM_STATUS_OK ||
        msm_config_set(config, "nodeProbeInterval", "100", &err) != MSM_STATUS_OK) {
        fprintf(stderr, "configuration: %s\n", err);
        return 1;
    }
    /* More attributes, e.g. tls=true tlsCaFile=/etc/msm/ca.pem memcachedCredentials=env:MC_AUTH */
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (eq == NULL) {
            fprintf(stderr, "expected ATTRIBUTE=VALUE: %s\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        if (msm_config_set(config, argv[i], eq + 1, &err) != MSM_STATUS_OK) {
            fprintf(stderr, "configuration: %s\n", err);
            return 1;
        }
    }
    if (msm_manager_new(config, &manager, &err) != MSM_STATUS_OK) {
        fprintf(stderr, "manager: %s\n", err);
        return 1;
    }
    msm_config_free(config);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listener, 128) != 0) {
        perror("listen");
        return 1;
    }
    printf("READY %s\n", argv[1]);
    fflush(stdout);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        pthread_t thread;
        if (pthread_create(&thread, NULL, connection, (void *)(intptr_t)fd) == 0) {
            pthread_detach(thread);
        } else {
            close(fd);
        }
    }
}
