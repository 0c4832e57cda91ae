/*
 * general_settings.redis_url taken apart (config.h). The config loader calls it so that `check`
 * names a bad port or database, and the router's Redis sync connects with what it returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/* A user or password, %XX escapes decoded; NULL when empty. False when an escape is broken. */
static bool decode(const char *p, size_t n, char **out)
{
    *out = NULL;
    if (!n)
        return true;
    char *d = sg_xmalloc(n + 1), *o = d;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] != '%') {
            *o++ = p[i];
        } else if (i + 2 < n && (hi = sg_hex_digit(p[i + 1])) >= 0 &&
                   (lo = sg_hex_digit(p[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            free(d);
            return false;
        }
    }
    *o = '\0';
    *out = d;
    return true;
}

/* A number of at most `max`, digits only, the whole of [p, p + n). */
static bool number(const char *p, size_t n, long max, int *out)
{
    if (n == 0 || n > 9 || strspn(p, "0123456789") < n)
        return false;
    long v = strtol(p, NULL, 10);
    if (v > max)
        return false;
    *out = (int)v;
    return true;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, err_len, __VA_ARGS__);                                                       \
        goto fail;                                                                                 \
    } while (0)

int sg_redis_url_parse(const char *url, struct sg_redis_url *u, char *err, size_t err_len)
{
    *u = (struct sg_redis_url){.port = 6379};
    const char *p = url;
    bool is_unix = strncmp(p, "unix://", 7) == 0;
    if (!is_unix && strncmp(p, "redis://", 8) != 0)
        FAIL("it must start with redis:// or unix://");
    p += is_unix ? 7 : 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        if (!decode(p, (size_t)(user_end - p), colon ? &u->user : &u->password) ||
            (colon && !decode(colon + 1, (size_t)(at - colon - 1), &u->password)))
            FAIL("a %% in the user or password must start an escape such as %%40 ('@'), %%3A "
                 "(':') or %%2F ('/')");
        p = at + 1; /* redis://secret@host: a lone part is the password, as redis-py reads it */
    }
    if (is_unix) {
        size_t pl = strcspn(p, "?");
        if (pl == 0 || p[0] != '/')
            FAIL("a unix:// URL names the socket's absolute path: unix:///run/redis.sock");
        u->unix_path = sg_xstrndup(p, pl);
        p += pl;
        if (*p && (strncmp(p, "?db=", 4) != 0 || !number(p + 4, strlen(p + 4), 1 << 20, &u->db)))
            FAIL("after the socket's path only ?db=N (a database number) may follow, got '%.40s'",
                 p);
        return SG_OK;
    }
    size_t hl;
    if (*p == '[') { /* [IPv6] */
        const char *close = strchr(p, ']');
        if (!close)
            FAIL("an IPv6 host is written in brackets: redis://[::1]:6379");
        u->host = sg_xstrndup(p + 1, (size_t)(close - p - 1));
        p = close + 1;
        if (*p && *p != ':' && *p != '/')
            FAIL("after ']' comes :PORT or /DB, got '%.40s'", p);
    } else {
        hl = strcspn(p, ":/?");
        u->host = hl ? sg_xstrndup(p, hl) : sg_xstrdup("127.0.0.1");
        p += hl;
    }
    if (!*u->host)
        FAIL("the host is empty");
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/?");
        if (!number(p + 1, n, 65535, &u->port) || u->port == 0)
            FAIL("the port must be a number from 1 to 65535, got '%.*s'", (int)SG_MIN(n, 40),
                 p + 1);
        p += 1 + n;
    }
    if (*p == '/') {
        size_t n = strlen(p + 1);
        if (n && !number(p + 1, n, 1 << 20, &u->db))
            FAIL("the path is the database number (redis://host:6379/0), got '/%.40s'", p + 1);
        p += 1 + n;
    }
    if (*p)
        FAIL("unexpected '%.40s' after the host and port; write redis://host:port/db", p);
    return SG_OK;
fail:
    sg_redis_url_dispose(u);
    return SG_EINVAL;
}

void sg_redis_url_dispose(struct sg_redis_url *u)
{
    free(u->host);
    free(u->unix_path);
    free(u->user);
    free(u->password);
    *u = (struct sg_redis_url){0};
}
