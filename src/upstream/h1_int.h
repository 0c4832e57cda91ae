/*
 * upstream — private to the own HTTP/1.1 client: what h1.c (calls and their connections: connect,
 * write, read, parse, deadlines, DNS) and h1_pool.c (hosts and their idle connections: the
 * keep-alive pool) share. The call struct stays inside h1.c.
 */
#ifndef SG_UPSTREAM_H1_INT_H
#define SG_UPSTREAM_H1_INT_H

#include "upstream_int.h"

#include <llhttp.h>
#include <sys/socket.h>

#define H1_MAX_ADDRS 4
#define H1_READ_BUF (64 * 1024)

struct h1_call;
struct h1_host;

/* One TCP connection. Freed in its close callback only. */
struct h1_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    llhttp_t parser;
    struct sg_h1 *h;
    struct h1_host *host;
    struct h1_call *call;        /* the call it carries, NULL when idle or closing */
    struct h1_conn *prev, *next; /* the host's idle list, most recently used first */
    struct sg_buf held;          /* bytes read but not parsed while the call is paused */
    uint64_t idle_since_ms;      /* loop time it went idle */
    uint32_t served;             /* responses completed on it */
    bool connected;
    bool reading;
    bool writing; /* a uv_write is in flight */
    bool broken;  /* must not be pooled (a write failed after the response began) */
    bool stalled; /* the parser stopped inside a callback the owner paused in: it must run again
                     (on `held`, even when that is empty) before reading resumes */
    bool idle;    /* on the host's idle list */
    bool closing;
};

/* One host:port: the pool key, its addresses and its idle connections. Lives until the client
 * is freed (one per distinct authority ever called; URLs come from the configuration). */
struct h1_host {
    struct h1_host *next;
    struct sg_h1 *h;
    char *authority; /* "host:port" as written in the URL: the key and the Host header */
    size_t auth_len;
    char *name; /* host without brackets or port, NUL-terminated */
    int port;
    struct sockaddr_storage addrs[H1_MAX_ADDRS];
    int n_addrs;
    uint64_t addrs_expire_ms; /* loop time; UINT64_MAX for numeric addresses */
    bool resolving;
    uv_getaddrinfo_t gai;
    struct h1_call *waiters; /* calls waiting for the name (by wnext) */
    struct h1_conn *idle, *idle_tail;
    uint32_t n_idle;
};

/* The client: one per sg_upstream, so one per loop. */
struct sg_h1 {
    uv_loop_t *loop;
    struct sg_h1_limits lim;
    struct h1_host *hosts;
    struct h1_call *free_calls;
    struct h1_call *active_calls;
    size_t active;
    size_t n_idle;
    uint64_t opened;
    uint64_t retries; /* calls re-sent after a pooled connection turned out dead */
    uv_timer_t sweep; /* closes connections idle too long; runs while any are idle */
    bool sweeping;
    int handles; /* handles and requests whose callbacks are still to come */
    bool freeing;
    llhttp_settings_t settings;
    char rbuf[H1_READ_BUF]; /* libuv calls alloc and read back to back: one buffer serves all */
};

/* ---- h1_pool.c ---- */

/* The host entry for an authority ("host[:port]" or "[v6][:port]"), made on first use; NULL
 * when the authority is not one. A numeric address is parsed here once and never resolved. */
struct h1_host *h1_host_get(struct sg_h1 *h, struct sg_slice auth);
/* Free every host entry; only once the client's handles are all closed. */
void h1_hosts_free(struct sg_h1 *h);
/* The most recently used idle connection of the host that is still young enough (closing the
 * ones too old on the way), referenced again; NULL when there is none. */
struct h1_conn *h1_pool_take(struct h1_host *host);
/* Park a connection whose response ended cleanly and allows keep-alive, or close it when the
 * client is going or the host has enough idle ones. */
void h1_pool_put(struct h1_conn *k);
/* Take an idle connection off its host's list (it is being closed). */
void h1_pool_unlink(struct h1_conn *k);

/* ---- h1.c ---- */

/* Close a connection that no call owns any more (idle ones leave the pool first). */
void h1_conn_close(struct h1_conn *k);
void h1_conn_start_reading(struct h1_conn *k);

#endif
