/*
 * Cooldowns shared by every instance through Redis (DESIGN §15).
 *
 * A timer on one worker's loop runs a round every interval: for each deployment whose local
 * cooldown Redis does not know yet, set slogate:cooldown:<id> <until, epoch ms> PX <left> unless
 * Redis holds one that ends later (COOL_SCRIPT); for each whose cooldown was cleared here (the
 * admin API), replace it with a clear mark "c<until>" that lives as long as the cooldown would
 * have (CLEAR_SCRIPT: only when Redis still holds the cooldown this instance knew, so a longer
 * one another instance wrote since is kept); then MGET every key: adopt a longer cooldown set by
 * another instance, drop a cooldown a clear mark covers (the operator cleared it elsewhere), and
 * publish again a cooldown Redis no longer has (restarted empty, flushed). Keys expire with the
 * cooldown, so a dead instance leaves nothing behind. Wall-clock times cross instances; each
 * instance converts them to its own monotonic clock.
 *
 * When Redis is unreachable the router goes on with local state only; sg_redis_sync_ok() says so
 * (readiness and metrics show it) and the connection is retried every round. A host name is
 * looked up on libuv's thread pool before each connect (connect_now): hiredis 0.14 would block the
 * loop in getaddrinfo().
 */
#include "router.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define KEY_PREFIX "slogate:cooldown:"

/* KEYS[1] = the cooldown's key, ARGV[1] = its end (epoch ms), ARGV[2] = ms left (its PX).
 * Written only when it ends later than the cooldown stored there (a missing or unreadable value
 * counts as none): two instances cooling one deployment at about the same time must leave the
 * longer cooldown, whichever write Redis runs second. A script runs atomically in Redis. */
static const char COOL_SCRIPT[] = "local cur = tonumber(redis.call('GET', KEYS[1]) or 0) or 0 "
                                  "if tonumber(ARGV[1]) <= cur then return 0 end "
                                  "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
                                  "return 1";

/* KEYS[1] = a cooldown's key, ARGV[1] = the latest end (epoch ms) it may hold to be cleared: the
 * end of the cooldown this instance knew there, plus clock noise; ARGV[2] = ms until then. A
 * cooldown cleared here is replaced by a clear mark only if Redis still holds that one: another
 * instance may have written one that ends later meanwhile (while this one could not reach
 * Redis, say), and that one stays. The mark, not a DEL, tells the other instances to drop their
 * copy (a missing key means Redis lost it: they publish theirs again) and expires when the
 * cleared cooldown would have ended. */
static const char CLEAR_SCRIPT[] = "local cur = tonumber(redis.call('GET', KEYS[1]) or 0) or 0 "
                                   "if cur > tonumber(ARGV[1]) then return 0 end "
                                   "redis.call('SET', KEYS[1], 'c' .. ARGV[1], 'PX', ARGV[2]) "
                                   "return 1";
/* The mark CLEAR_SCRIPT leaves: "c" and the latest end of the cooldowns it clears. COOL_SCRIPT
 * reads it as no cooldown (tonumber is nil), so a cooldown taken after the clear replaces it; an
 * older slogate reads it as no cooldown too (strtoull gives 0). */
#define CLEAR_MARK 'c'

struct sg_redis_sync {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct sg_health *h;
    uint32_t interval_ms;
    char *host, *user, *password; /* host as configured: a name or an address */
    char *unix_path;              /* unix://: the socket's path (host and port unused) */
    char where[160];              /* what messages name: "host:port" or the socket's path */
    int port, db;
    bool numeric_host;     /* an IPv4 or IPv6 address: no lookup */
    uv_getaddrinfo_t gai;  /* the host's lookup, on libuv's thread pool */
    bool resolving;        /* gai is out: at most one lookup at a time */
    bool timer_closed;     /* freed once the timer is closed and no lookup is out */
    redisAsyncContext *ac; /* NULL while disconnected */
    bool connected;
    bool setup_failed;  /* AUTH or SELECT was refused on this connection: drop it */
    bool ok;            /* the last round was answered */
    bool round_pending; /* a MGET is out: do not pile rounds up */
    bool freeing;
    uint64_t waiting_since_ms; /* a connect or a round started then and is not answered yet */
    uint64_t last_complaint_ms;
};

/* Take the URL apart (config.h); the sync keeps its parts. */
static int parse_url(struct sg_redis_sync *s, const char *url)
{
    struct sg_redis_url u;
    char why[160];
    if (sg_redis_url_parse(url, &u, why, sizeof why) != SG_OK) {
        SG_ERROR("router", "cannot use redis_url: %s; cooldowns are this instance's own", why);
        return SG_EINVAL;
    }
    s->host = u.host;
    s->unix_path = u.unix_path;
    s->user = u.user;
    s->password = u.password;
    s->port = u.port;
    s->db = u.db;
    if (s->unix_path) {
        snprintf(s->where, sizeof s->where, "%s", s->unix_path);
    } else {
        unsigned char a[16];
        s->numeric_host =
            uv_inet_pton(AF_INET, s->host, a) == 0 || uv_inet_pton(AF_INET6, s->host, a) == 0;
        snprintf(s->where, sizeof s->where, "%s:%d", s->host, s->port);
    }
    return SG_OK;
}

static void complain(struct sg_redis_sync *s, const char *what)
{
    uint64_t now = sg_now_ms();
    if (s->ok || now - s->last_complaint_ms > 60000) {
        SG_WARN("router", "redis %s: %s; cooldowns are this instance's own until it is back",
                s->where, what);
        s->last_complaint_ms = now;
    }
    s->ok = false;
    atomic_store(&s->h->redis_ok, false);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct sg_redis_sync *s = ac->data;
    if (status != REDIS_OK) {
        complain(s, ac->errstr[0] ? ac->errstr : "connect failed");
        s->ac = NULL; /* hiredis frees the context after this callback */
        s->connected = false;
        return;
    }
    s->connected = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct sg_redis_sync *s = ac->data;
    if (status != REDIS_OK && !s->freeing)
        complain(s, ac->errstr[0] ? ac->errstr : "disconnected");
    s->ac = NULL;
    s->connected = false;
    s->round_pending = false;
}

/* AUTH's or SELECT's answer: an error (a wrong password, a user the server does not know, a
 * database number past `databases`) makes the connection useless — without it every round
 * would fail with NOAUTH, or worse, share through database 0 while the operator configured
 * another — so the round's answer is not taken, and the next tick drops the connection. */
static void on_setup(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sg_redis_sync *s = ac->data;
    const char *cmd = privdata;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ERROR || s->freeing)
        return;
    char why[300];
    snprintf(why, sizeof why, "%s refused (%.160s): check %s in redis_url", cmd, reply->str,
             cmd[0] == 'A' ? "the user and password" : "the database number");
    s->setup_failed = true;
    complain(s, why);
}

/* Connect to `addr`, a numeric address (NULL: the unix socket): hiredis 0.14 resolves whatever
 * it is given with a blocking getaddrinfo() on the calling thread, which is fast only for an
 * address. */
static void connect_to(struct sg_redis_sync *s, const char *addr)
{
    redisAsyncContext *ac =
        addr ? redisAsyncConnect(addr, s->port) : redisAsyncConnectUnix(s->unix_path);
    if (!ac || ac->err) {
        complain(s, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = s;
    if (redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        complain(s, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->setup_failed = false;
    s->waiting_since_ms = sg_now_ms();
    /* Queued now, sent once connected. A user without a password is sent as one (Redis 6
     * ACLs: AUTH user pass; AUTH pass is the user "default"). */
    if (s->user && s->password)
        redisAsyncCommand(ac, on_setup, (void *)"AUTH", "AUTH %s %s", s->user, s->password);
    else if (s->password || s->user)
        redisAsyncCommand(ac, on_setup, (void *)"AUTH", "AUTH %s",
                          s->password ? s->password : s->user);
    if (s->db)
        redisAsyncCommand(ac, on_setup, (void *)"SELECT", "SELECT %d", s->db);
}

static void free_sync(struct sg_redis_sync *s)
{
    free(s->host);
    free(s->user);
    free(s->password);
    free(s->unix_path);
    free(s);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct sg_redis_sync *s = req->data;
    s->resolving = false;
    if (s->freeing) {
        uv_freeaddrinfo(res);
        if (s->timer_closed)
            free_sync(s);
        return;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = status ? NULL : res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            pick = ai; /* IPv4 first, as hiredis does */
    for (const struct addrinfo *ai = status ? NULL : res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6)
            pick = ai;
    char addr[64] = "";
    if (pick && pick->ai_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, addr, sizeof addr);
    else if (pick)
        uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, addr, sizeof addr);
    uv_freeaddrinfo(res);
    if (!addr[0]) {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve the host: %s",
                 status ? uv_strerror(status) : "no IPv4 or IPv6 address");
        complain(s, why);
        return; /* the next tick looks it up again */
    }
    connect_to(s, addr);
}

/* Connect, looking the host up first on libuv's thread pool when it is a name: a slow DNS must
 * not stall this worker's loop (and its clients' requests) at every reconnect. */
static void connect_now(struct sg_redis_sync *s)
{
    if (s->resolving)
        return;
    if (s->unix_path || s->numeric_host) {
        connect_to(s, s->unix_path ? NULL : s->host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    s->gai.data = s;
    int rc = uv_getaddrinfo(s->loop, &s->gai, on_resolved, s->host, NULL, &hints);
    if (rc) {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve the host: %s", uv_strerror(rc));
        complain(s, why);
        return;
    }
    s->resolving = true;
}

struct round {
    struct sg_redis_sync *s;
    struct sg_dep_health **e; /* held until the round's answer (a reload cannot retire them) */
    size_t n;
};

static void round_free(struct round *rd)
{
    for (size_t i = 0; i < rd->n; i++)
        sg_health_put(rd->s->h, rd->e[i]);
    free(rd->e);
    free(rd);
}

/* What Redis holds for one deployment (`v`, an MGET element), applied to its entry. */
static void take_value(struct sg_dep_health *e, const redisReply *v, uint64_t now, uint64_t wall)
{
    bool mark = v->type == REDIS_REPLY_STRING && v->str[0] == CLEAR_MARK;
    uint64_t until_wall =
        v->type == REDIS_REPLY_STRING ? strtoull(v->str + (mark ? 1 : 0), NULL, 10) : 0;
    /* In this instance's monotonic clock; 0 when it is over already. */
    uint64_t until = until_wall > wall ? now + (until_wall - wall) : 0;
    pthread_mutex_lock(&e->lock);
    if (mark) {
        /* Cleared on another instance: a cooldown of ours that ends no later than the cleared
         * one (+ clock noise) is that one, adopted or taken here at the same time: drop it.
         * One that ends later is newer than the clear: publish it again over the mark. */
        if (e->cooldown_until > now && e->cooldown_until <= until + 100) {
            e->cooldown_until = 0;
            e->cooldown_reason = NULL;
            e->probing = false;
            e->fail_head = e->fail_count = 0;
            e->shared_until = 0;
        } else if (e->cooldown_until > now) {
            e->shared_until = 0;
        }
    } else if (v->type != REDIS_REPLY_STRING) {
        /* Nothing there while this instance believes Redis holds a cooldown that has not ended
         * (it expires with the cooldown): Redis lost it — restarted empty, flushed, failed over
         * to a replica that had not got it. Publish it again on the next round, so instances
         * that start or reconnect meanwhile still skip the deployment. */
        if (e->cooldown_until > now + 100 && e->shared_until > now + 100)
            e->shared_until = 0;
    } else if (until > e->cooldown_until + 100) {
        /* Adopt a cooldown that is longer than ours by more than clock noise. */
        e->cooldown_until = until;
        e->cooldown_reason = "cooling down on another instance (shared through Redis)";
        e->probing = false;
        e->shared_until = until;
    }
    pthread_mutex_unlock(&e->lock);
}

static void on_mget(redisAsyncContext *ac, void *r, void *privdata)
{
    SG_UNUSED(ac);
    struct round *rd = privdata;
    struct sg_redis_sync *s = rd->s;
    redisReply *reply = r;
    s->round_pending = false;
    if (s->setup_failed) /* answered, but by the wrong user or database: said in on_setup */
        goto out;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != rd->n) {
        if (!s->freeing)
            complain(s, reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no answer");
        goto out;
    }
    if (!s->ok)
        SG_INFO("router", "redis %s answers: cooldowns are shared again", s->where);
    s->ok = true;
    atomic_store(&s->h->redis_ok, true);
    uint64_t now = sg_now_ms(), wall = sg_wall_ms();
    for (size_t i = 0; i < rd->n; i++)
        take_value(rd->e[i], reply->element[i], now, wall);
out:
    round_free(rd);
}

static void run_round(struct sg_redis_sync *s)
{
    struct round *rd = sg_xcalloc(1, sizeof *rd);
    rd->s = s;
    rd->n = sg_health_hold_all(s->h, &rd->e);
    if (rd->n == 0) {
        round_free(rd);
        return;
    }
    uint64_t now = sg_now_ms(), wall = sg_wall_ms();
    const char **argv = sg_xcalloc(rd->n + 1, sizeof *argv);
    char **keys = sg_xcalloc(rd->n, sizeof *keys);
    argv[0] = "MGET";
    for (size_t i = 0; i < rd->n; i++) {
        struct sg_dep_health *e = rd->e[i];
        keys[i] = sg_xasprintf(KEY_PREFIX "%s", e->id);
        argv[i + 1] = keys[i];
        pthread_mutex_lock(&e->lock);
        uint64_t until = e->cooldown_until, shared = e->shared_until;
        if (until > now && until > shared + 100)
            e->shared_until = until;
        else if (until <= now && shared > now)
            e->shared_until = 0;
        pthread_mutex_unlock(&e->lock);
        if (until > now && until > shared + 100) {
            char val[32];
            snprintf(val, sizeof val, "%llu", (unsigned long long)(wall + (until - now)));
            redisAsyncCommand(s->ac, NULL, NULL, "EVAL %s 1 %s %s %llu", COOL_SCRIPT, keys[i], val,
                              (unsigned long long)(until - now));
        } else if (until <= now && shared > now) { /* cleared here */
            redisAsyncCommand(s->ac, NULL, NULL, "EVAL %s 1 %s %llu %llu", CLEAR_SCRIPT, keys[i],
                              (unsigned long long)(wall + (shared - now) + 100),
                              (unsigned long long)(shared - now + 100));
        }
    }
    s->round_pending = true;
    s->waiting_since_ms = now;
    redisAsyncCommandArgv(s->ac, on_mget, rd, (int)rd->n + 1, argv, NULL);
    for (size_t i = 0; i < rd->n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
}

/* How long a connect or a round may go unanswered before Redis counts as unreachable. A Redis
 * that accepts connections and answers nothing (stopped, swapping, a black hole) would otherwise
 * leave a round pending forever, readiness saying "ok" while nothing is shared. */
static uint64_t stall_ms(const struct sg_redis_sync *s)
{
    return SG_MAX((uint64_t)1000, 4 * (uint64_t)s->interval_ms);
}

/* The error pending on the connection's socket (an errno), 0 when none. hiredis 0.14's libuv
 * adapter returns from its poll callback on an error status without telling hiredis, and libuv
 * has stopped that poll: a connect refused, or a connection reset, under it went unnoticed
 * until the stall timeout. The socket keeps the error, so each tick that waits reads it. */
static int socket_error(const redisAsyncContext *ac)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (ac->c.fd < 0 || getsockopt(ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return 0;
    return err;
}

/* Drop the connection (pending callbacks run now with no reply); the next tick connects afresh. */
static void drop_connection(struct sg_redis_sync *s)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    s->connected = false;
    s->round_pending = false;
    redisAsyncFree(ac);
}

static void on_tick(uv_timer_t *t)
{
    struct sg_redis_sync *s = t->data;
    if (!s->ac) {
        connect_now(s);
        return;
    }
    if (s->setup_failed) { /* AUTH or SELECT refused: said; try again with a new connection */
        drop_connection(s);
        return;
    }
    int err = s->round_pending || !s->connected ? socket_error(s->ac) : 0;
    if (err ||
        ((s->round_pending || !s->connected) && sg_now_ms() - s->waiting_since_ms > stall_ms(s))) {
        char why[80];
        if (err)
            snprintf(why, sizeof why, "%s", uv_strerror(-err)); /* UV_E* are -errno here */
        else
            snprintf(why, sizeof why, "no answer within %llu ms", (unsigned long long)stall_ms(s));
        complain(s, why);
        drop_connection(s);
        return;
    }
    if (s->connected && !s->round_pending)
        run_round(s);
}

struct sg_redis_sync *sg_redis_sync_new(uv_loop_t *loop, const char *redis_url, struct sg_health *h,
                                        uint32_t interval_ms)
{
    struct sg_redis_sync *s = sg_xcalloc(1, sizeof *s);
    s->loop = loop;
    s->h = h;
    s->interval_ms = interval_ms ? interval_ms : 250;
    if (parse_url(s, redis_url) != SG_OK) {
        free_sync(s);
        return NULL;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    connect_now(s);
    uv_timer_start(&s->timer, on_tick, s->interval_ms, s->interval_ms);
    return s;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct sg_redis_sync *s = h->data;
    s->timer_closed = true;
    if (!s->resolving)
        free_sync(s); /* else on_resolved frees it */
}

void sg_redis_sync_free(struct sg_redis_sync *s)
{
    if (!s)
        return;
    s->freeing = true;
    if (s->ac)
        redisAsyncFree(s->ac); /* pending callbacks run now with a NULL reply */
    s->ac = NULL;
    if (s->resolving)
        uv_cancel((uv_req_t *)&s->gai); /* fails once a thread runs it: then it ends on its own */
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
