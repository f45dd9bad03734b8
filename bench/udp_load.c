/* UDP load generator for the benchmark.
 *
 *   udp_load rate HOST PORT SOCKETS SECONDS SIZE
 *       SOCKETS connected sockets (one proxy session each), each keeping one
 *       request outstanding for SECONDS; a request unanswered for 200 ms is
 *       counted lost and sent again. Prints one JSON line, with the round
 *       trip's p50/p99/p99.9 (microseconds, from the send to the epoll
 *       wakeup that saw the reply; 1 us buckets up to 200 ms).
 *   udp_load sessions HOST PORT N HOLD_SECONDS
 *       opens N sockets, sends one datagram on each (in batches, resending
 *       once), prints "ready replied=R" and holds the sockets until stdin
 *       closes or HOLD_SECONDS pass, so the proxy keeps N idle sessions.
 *
 * Every loop is bounded by a deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int open_connected(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) { close(fd); return -1; }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
    return fd;
}

static void raise_nofile(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

#define LAT_BUCKETS 200000 /* 1 us each: 0 .. 200 ms (the resend limit) */

static double lat_pct(const long *h, long total, double pct) {
    if (total <= 0) return -1.0;
    long want = (long)((double)total * pct / 100.0 + 0.999999);
    if (want < 1) want = 1;
    long seen = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        seen += h[i];
        if (seen >= want) return (double)i + 1.0;
    }
    return (double)LAT_BUCKETS;
}

static int run_rate(const char *host, int port, int nsock, double secs, int size) {
    int ep = epoll_create1(0);
    int *fds = calloc((size_t)nsock, sizeof(int));
    double *sent_at = calloc((size_t)nsock, sizeof(double));
    char *buf = calloc(1, 65536);
    long *lat = calloc(LAT_BUCKETS, sizeof(long));
    long timed = 0;
    if (!fds || !sent_at || !buf || !lat || ep < 0) return 2;
    memset(buf, 'u', (size_t)size);
    long replies = 0, lost = 0, errors = 0;
    double t0 = now_s(), end = t0 + secs;
    for (int i = 0; i < nsock; i++) {
        fds[i] = open_connected(host, port);
        if (fds[i] < 0) { perror("socket"); return 2; }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        if (send(fds[i], buf, (size_t)size, 0) < 0) errors++;
        sent_at[i] = t0;
    }
    struct epoll_event evs[256];
    double last_sweep = t0;
    for (;;) {
        double t = now_s();
        if (t >= end) break;
        int n = epoll_wait(ep, evs, 256, 50);
        t = now_s();
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            for (;;) {
                ssize_t r = recv(fds[i], buf, 65536, 0);
                if (r < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK) errors++;
                    break;
                }
                replies++;
                double us = (t - sent_at[i]) * 1e6;
                if (us >= 0) {
                    long b = (long)us;
                    lat[b < LAT_BUCKETS ? b : LAT_BUCKETS - 1]++;
                    timed++;
                }
                if (send(fds[i], buf, (size_t)size, 0) < 0) errors++;
                sent_at[i] = t;
            }
        }
        if (t - last_sweep > 0.1) {
            last_sweep = t;
            for (int i = 0; i < nsock; i++) {
                if (t - sent_at[i] > 0.2) {
                    lost++;
                    if (send(fds[i], buf, (size_t)size, 0) < 0) errors++;
                    sent_at[i] = t;
                }
            }
        }
    }
    double el = now_s() - t0;
    printf("{\"replies\": %ld, \"seconds\": %.3f, \"rate\": %.1f, \"lost\": %ld, \"errors\": %ld, "
           "\"p50_us\": %.0f, \"p99_us\": %.0f, \"p999_us\": %.0f}\n",
           replies, el, (double)replies / el, lost, errors, lat_pct(lat, timed, 50.0),
           lat_pct(lat, timed, 99.0), lat_pct(lat, timed, 99.9));
    return 0;
}

static int run_sessions(const char *host, int port, int n, double hold) {
    raise_nofile();
    int *fds = calloc((size_t)n, sizeof(int));
    char *got = calloc((size_t)n, 1);
    if (!fds || !got) return 2;
    char buf[64];
    memset(buf, 's', sizeof buf);
    long replied = 0;
    const int batch = 200;
    for (int b = 0; b < n; b += batch) {
        int e = b + batch < n ? b + batch : n;
        for (int i = b; i < e; i++) {
            fds[i] = open_connected(host, port);
            if (fds[i] < 0) { perror("socket"); return 2; }
            send(fds[i], buf, 16, 0);
        }
        for (int attempt = 0; attempt < 2; attempt++) {
            double until = now_s() + 1.0;
            int missing = 0;
            for (int i = b; i < e; i++) {
                while (!got[i]) {
                    ssize_t r = recv(fds[i], buf, sizeof buf, 0);
                    if (r >= 0) { got[i] = 1; replied++; break; }
                    if (now_s() > until) break;
                    struct pollfd p = {.fd = fds[i], .events = POLLIN};
                    poll(&p, 1, 5);
                }
                if (!got[i]) missing++;
            }
            if (!missing) break;
            for (int i = b; i < e; i++)
                if (!got[i]) send(fds[i], buf, 16, 0);
        }
    }
    printf("ready replied=%ld\n", replied);
    fflush(stdout);
    struct pollfd p = {.fd = 0, .events = POLLIN};
    poll(&p, 1, (int)(hold * 1000));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "rate") == 0)
        return run_rate(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atoi(argv[6]));
    if (argc == 6 && strcmp(argv[1], "sessions") == 0)
        return run_sessions(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: udp_load rate HOST PORT SOCKETS SECONDS SIZE\n"
                    "       udp_load sessions HOST PORT N HOLD_SECONDS\n");
    return 2;
}
