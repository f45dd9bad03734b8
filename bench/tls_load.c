/* TLS load for the benchmark (issue 14), OpenSSL client, one thread.
 *
 *   tls_load handshakes HOST PORT CONNS SECS
 *       CONNS connections at a time, each a new TCP connection and a full TLS
 *       handshake (a fresh SSL object, no session offered: never resumed),
 *       one "GET / HTTP/1.1" with "Connection: close", read to the end;
 *       then the next. Prints one JSON line: requests, errors, resumed,
 *       rate, p50_us, p99_us (connect start to the end of the response),
 *       and the protocol version and cipher of the first connection.
 *   tls_load idle HOST PORT N HOLD_SECONDS [plain]
 *       opens N connections one after another (TLS unless "plain"), sends
 *       one keep-alive request on each and reads its response, prints
 *       "ready N", then holds them idle until stdin closes or HOLD_SECONDS
 *       pass.
 *
 * Server certificates are not verified (the benchmark's are self-signed):
 * the signature is still checked by the handshake. Every loop is bounded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REQ_CLOSE[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
static const char REQ_KA[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void raise_nofile(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static SSL_CTX *client_ctx(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* never resume: no client session cache, no TLS 1.2 tickets */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}

static int tcp_socket(struct sockaddr_in *sa, int nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------- handshakes */

enum { CONNECTING, HANDSHAKE, WRITING, READING };

struct conn {
    int fd;
    SSL *ssl;
    int state;
    size_t sent;
    size_t got;
    char head[16];
    double t0;
};

static SSL_CTX *g_ctx;
static struct sockaddr_in g_sa;
static int g_ep;
static long g_requests, g_errors, g_resumed;
static double *g_lat;
static long g_lat_n, g_lat_cap;
static char g_proto[64];

static void conn_start(struct conn *c) {
    c->t0 = now();
    c->sent = c->got = 0;
    c->head[0] = 0;
    c->ssl = NULL;
    c->state = CONNECTING;
    c->fd = tcp_socket(&g_sa, 1);
    if (c->fd < 0) {
        g_errors++;
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_end(struct conn *c, int ok) {
    if (ok) {
        g_requests++;
        if (g_lat_n < g_lat_cap)
            g_lat[g_lat_n++] = (now() - c->t0) * 1e6;
        if (SSL_session_reused(c->ssl))
            g_resumed++;
        if (!g_proto[0])
            snprintf(g_proto, sizeof g_proto, "%s %s", SSL_get_version(c->ssl),
                     SSL_get_cipher_name(c->ssl));
    } else {
        g_errors++;
    }
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
}

/* One step of a connection; returns 0 while it goes on, 1 done, -1 failed. */
static int conn_step(struct conn *c) {
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            return -1;
        c->ssl = SSL_new(g_ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "bench.test");
        c->state = HANDSHAKE;
    }
    for (;;) {
        int r = 0, e;
        switch (c->state) {
        case HANDSHAKE:
            r = SSL_connect(c->ssl);
            if (r == 1) {
                c->state = WRITING;
                continue;
            }
            break;
        case WRITING:
            r = SSL_write(c->ssl, REQ_CLOSE + c->sent, sizeof REQ_CLOSE - 1 - c->sent);
            if (r > 0) {
                c->sent += r;
                if (c->sent == sizeof REQ_CLOSE - 1)
                    c->state = READING;
                continue;
            }
            break;
        case READING: {
            char buf[4096];
            r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0) {
                if (c->got < sizeof c->head - 1) {
                    size_t k = sizeof c->head - 1 - c->got;
                    if ((size_t)r < k)
                        k = r;
                    memcpy(c->head + c->got, buf, k);
                    c->head[c->got + k] = 0;
                }
                c->got += r;
                continue;
            }
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL) {
                /* the server closed: with or without close_notify, a whole
                 * "Connection: close" response ends here */
                ERR_clear_error();
                return strncmp(c->head, "HTTP/1.1 200", 12) == 0 ? 1 : -1;
            }
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return -1;
        }
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        ERR_clear_error();
        return -1;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int handshakes(int conns, double secs) {
    g_ctx = client_ctx();
    g_ep = epoll_create1(0);
    g_lat_cap = 4000000;
    g_lat = malloc(sizeof(double) * g_lat_cap);
    struct conn *cs = calloc(conns, sizeof *cs);
    if (!g_lat || !cs)
        return 1;
    double t_start = now(), t_end = t_start + secs;
    for (int i = 0; i < conns; i++)
        conn_start(&cs[i]);
    struct epoll_event evs[256];
    while (now() < t_end) {
        int n = epoll_wait(g_ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            int r = conn_step(c);
            if (r != 0) {
                conn_end(c, r > 0);
                if (now() < t_end)
                    conn_start(c);
            }
        }
        /* connections whose socket could not be made: retry them */
        for (int i = 0; i < conns; i++)
            if (cs[i].fd < 0 && now() < t_end)
                conn_start(&cs[i]);
    }
    double took = now() - t_start;
    qsort(g_lat, g_lat_n, sizeof(double), cmp_double);
    double p50 = g_lat_n ? g_lat[g_lat_n / 2] : 0;
    double p99 = g_lat_n ? g_lat[(long)(g_lat_n * 0.99)] : 0;
    printf("{\"requests\": %ld, \"errors\": %ld, \"resumed\": %ld, \"rate\": %.1f, "
           "\"p50_us\": %.0f, \"p99_us\": %.0f, \"tls\": \"%s\"}\n",
           g_requests, g_errors, g_resumed, g_requests / took, p50, p99, g_proto);
    return 0;
}

/* ---------------------------------------------------------------- idle */

/* Blocking I/O through TLS or not. */
static int io_write(int fd, SSL *ssl, const char *p, size_t n) {
    while (n) {
        int r = ssl ? SSL_write(ssl, p, n) : (int)write(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= r;
    }
    return 0;
}

static int io_read(int fd, SSL *ssl, char *p, size_t n) {
    return ssl ? SSL_read(ssl, p, n) : (int)read(fd, p, n);
}

/* Reads one response with a Content-Length body. */
static int read_response(int fd, SSL *ssl) {
    char buf[8192];
    size_t got = 0;
    for (int reads = 0; reads < 64; reads++) {
        int r = io_read(fd, ssl, buf + got, sizeof buf - 1 - got);
        if (r <= 0)
            return -1;
        got += r;
        buf[got] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
            return -1;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (!cl || cl > end)
            return -1;
        size_t want = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
        if (got >= want)
            return 0;
    }
    return -1;
}

static int idle(int n, double hold, int plain) {
    raise_nofile();
    SSL_CTX *ctx = plain ? NULL : client_ctx();
    int *fds = calloc(n, sizeof *fds);
    SSL **ssls = calloc(n, sizeof *ssls);
    if (!fds || !ssls)
        return 1;
    double deadline = now() + 240;
    for (int i = 0; i < n; i++) {
        if (now() > deadline) {
            printf("timeout after %d connections\n", i);
            return 1;
        }
        int fd = tcp_socket(&g_sa, 0);
        if (fd < 0) {
            printf("connection %d: connect failed: %s\n", i, strerror(errno));
            return 1;
        }
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        SSL *ssl = NULL;
        if (ctx) {
            ssl = SSL_new(ctx);
            SSL_set_fd(ssl, fd);
            SSL_set_tlsext_host_name(ssl, "bench.test");
            if (SSL_connect(ssl) != 1) {
                printf("connection %d: handshake failed\n", i);
                return 1;
            }
        }
        if (io_write(fd, ssl, REQ_KA, sizeof REQ_KA - 1) < 0 || read_response(fd, ssl) < 0) {
            printf("connection %d: no response\n", i);
            return 1;
        }
        fds[i] = fd;
        ssls[i] = ssl;
    }
    printf("ready %d\n", n);
    fflush(stdout);
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    poll(&pfd, 1, (int)(hold * 1000));
    for (int i = 0; i < n; i++) {
        if (ssls[i])
            SSL_free(ssls[i]);
        close(fds[i]);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: tls_load handshakes HOST PORT CONNS SECS\n"
                        "       tls_load idle HOST PORT N HOLD_SECONDS [plain]\n");
        return 2;
    }
    g_sa.sin_family = AF_INET;
    g_sa.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &g_sa.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[2]);
        return 2;
    }
    if (strcmp(argv[1], "handshakes") == 0)
        return handshakes(atoi(argv[4]), atof(argv[5]));
    if (strcmp(argv[1], "idle") == 0)
        return idle(atoi(argv[4]), atof(argv[5]), argc > 6 && strcmp(argv[6], "plain") == 0);
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
