/*
 * The keep-alive pool of the own HTTP/1.1 client: one entry per host:port ever called (its
 * authority, its addresses, its idle connections), and the idle lists themselves, most recently
 * used first, with the sweep that closes connections idle too long. h1.c opens connections,
 * carries calls on them and hands back the ones that may be reused; docs/internals/upstream.md
 * ("the pool's invariants") says when.
 */
#include "h1_int.h"

#include <stdlib.h>

/* ---- hosts ---- */

/* Split an authority into host name and port; false when it is not "host[:port]" or
 * "[v6][:port]". */
static bool split_authority(struct sg_slice a, struct sg_slice *name, int *port)
{
    const char *end = a.p + a.n;
    const char *colon = NULL;
    if (a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.n);
        if (!rb || rb == a.p + 1)
            return false;
        *name = (struct sg_slice){a.p + 1, (size_t)(rb - a.p - 1)};
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return false;
            colon = rb + 1;
        }
    } else {
        colon = memchr(a.p, ':', a.n);
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
            return false;
        *name = (struct sg_slice){a.p, colon ? (size_t)(colon - a.p) : a.n};
        if (name->n == 0)
            return false;
    }
    *port = 80;
    if (colon && colon + 1 < end) {
        int v = 0;
        for (const char *q = colon + 1; q < end; q++) {
            if (*q < '0' || *q > '9' || v > 65535)
                return false;
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            return false;
        *port = v;
    }
    return true;
}

struct h1_host *h1_host_get(struct sg_h1 *h, struct sg_slice auth)
{
    struct h1_host **pp = &h->hosts;
    for (struct h1_host *host = h->hosts; host; pp = &host->next, host = host->next) {
        if (host->auth_len == auth.n && memcmp(host->authority, auth.p, auth.n) == 0) {
            if (pp != &h->hosts) { /* move to front: a worker talks to few hosts, often */
                *pp = host->next;
                host->next = h->hosts;
                h->hosts = host;
            }
            return host;
        }
    }
    struct sg_slice name;
    int port;
    if (!split_authority(auth, &name, &port))
        return NULL;
    struct h1_host *host = sg_xcalloc(1, sizeof *host);
    host->h = h;
    host->authority = sg_xstrndup(auth.p, auth.n);
    host->auth_len = auth.n;
    host->name = sg_xstrndup(name.p, name.n);
    host->port = port;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&host->addrs[0];
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&host->addrs[0];
    if (uv_ip4_addr(host->name, port, v4) == 0 || uv_ip6_addr(host->name, port, v6) == 0) {
        host->n_addrs = 1;
        host->addrs_expire_ms = UINT64_MAX; /* numeric: never resolved */
    }
    host->next = h->hosts;
    h->hosts = host;
    return host;
}

void h1_hosts_free(struct sg_h1 *h)
{
    while (h->hosts) {
        struct h1_host *host = h->hosts;
        h->hosts = host->next;
        free(host->authority);
        free(host->name);
        free(host);
    }
}

/* ---- the idle pool ---- */

void h1_pool_unlink(struct h1_conn *k)
{
    struct h1_host *host = k->host;
    if (k->prev)
        k->prev->next = k->next;
    else
        host->idle = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        host->idle_tail = k->prev;
    k->prev = k->next = NULL;
    k->idle = false;
    host->n_idle--;
    k->h->n_idle--;
}

static void on_sweep(uv_timer_t *t)
{
    struct sg_h1 *h = t->data;
    uint64_t now = uv_now(h->loop);
    for (struct h1_host *host = h->hosts; host; host = host->next) {
        /* The tail is the connection idle longest. */
        while (host->idle_tail && now - host->idle_tail->idle_since_ms >= h->lim.idle_timeout_ms)
            h1_conn_close(host->idle_tail);
    }
    if (h->n_idle == 0) {
        uv_timer_stop(&h->sweep);
        h->sweeping = false;
    }
}

/* Take the most recently used idle connection that is still young enough. */
struct h1_conn *h1_pool_take(struct h1_host *host)
{
    struct sg_h1 *h = host->h;
    uint64_t now = uv_now(h->loop);
    while (host->idle) {
        struct h1_conn *k = host->idle;
        if (now - k->idle_since_ms >= h->lim.idle_timeout_ms) {
            h1_conn_close(k);
            continue;
        }
        h1_pool_unlink(k);
        uv_ref((uv_handle_t *)&k->tcp);
        return k;
    }
    return NULL;
}

/* A connection whose last response ended cleanly and allows keep-alive: park it. It keeps
 * reading so a close by the peer is noticed, and it does not keep the loop alive. */
void h1_pool_put(struct h1_conn *k)
{
    struct sg_h1 *h = k->h;
    struct h1_host *host = k->host;
    if (h->freeing || host->n_idle >= h->lim.max_idle_per_host) {
        h1_conn_close(k);
        return;
    }
    llhttp_reset(&k->parser);
    sg_buf_reset(&k->held);
    h1_conn_start_reading(k);
    k->served++;
    k->idle = true;
    k->idle_since_ms = uv_now(h->loop);
    k->prev = NULL;
    k->next = host->idle;
    if (host->idle)
        host->idle->prev = k;
    else
        host->idle_tail = k;
    host->idle = k;
    host->n_idle++;
    h->n_idle++;
    uv_unref((uv_handle_t *)&k->tcp);
    if (!h->sweeping) {
        uint64_t every = SG_MAX(h->lim.idle_timeout_ms / 4, 10u);
        uv_timer_start(&h->sweep, on_sweep, every, every);
        h->sweeping = true;
    }
}
