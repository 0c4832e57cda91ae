/*
 * base — the small primitives every module stands on: aborting allocation, length-capped
 * buffers, slices, error codes, logging, clocks and a per-thread random generator.
 *
 * Nothing here allocates behind the caller's back or keeps global mutable state except the
 * log level (set once at start) and the per-thread random state.
 */
#ifndef SG_BASE_H
#define SG_BASE_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SG_UNUSED(x) ((void)(x))
#define SG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SG_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define SG_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- errors: 0 is success, failures are negative SG_E* codes ---- */
enum {
    SG_OK = 0,
    SG_ENOMEM = -1,    /* allocation failed (only from non-aborting paths) */
    SG_EINVAL = -2,    /* invalid argument or input */
    SG_ETOOBIG = -3,   /* a length cap was reached */
    SG_EIO = -4,       /* system or socket error */
    SG_ECONFIG = -5,   /* configuration is invalid */
    SG_ETIMEOUT = -6,  /* a deadline passed */
    SG_ECANCELED = -7, /* the operation was cancelled by its owner */
    SG_ECONNECT = -8,  /* could not connect */
    SG_EPROTO = -9,    /* the peer broke the protocol */
    SG_ENOTFOUND = -10,
    SG_ECLOSED = -11, /* the peer closed the connection */
    SG_ETLS = -12,
};
/* A static, human-readable description of an SG_E* code. */
const char *sg_strerror(int err);

/* ---- allocation: these never return NULL; they abort with a message instead ---- */
void *sg_xmalloc(size_t n);
void *sg_xcalloc(size_t count, size_t n);
void *sg_xrealloc(void *p, size_t n);
char *sg_xstrdup(const char *s);
char *sg_xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; the caller frees it. */
char *sg_xasprintf(const char *fmt, ...) SG_PRINTF(1, 2);

/* ---- slices: a view of bytes owned by someone else ---- */
struct sg_slice {
    const char *p;
    size_t n;
};
#define SG_SLICE_LIT(s) ((struct sg_slice){(s), sizeof(s) - 1})
static inline struct sg_slice sg_slice_of(const char *s)
{
    return (struct sg_slice){s, s ? strlen(s) : 0};
}
static inline bool sg_slice_eq(struct sg_slice a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && memcmp(a.p, lit, n) == 0;
}
/* ASCII case-insensitive comparison, for header names. */
bool sg_slice_ieq(struct sg_slice a, const char *lit);
/* The value of a hex digit (0-9, a-f, A-F), or -1. */
static inline int sg_hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* ---- buffers: growable, with a hard maximum; a failed append leaves the buffer intact ---- */
struct sg_buf {
    char *data; /* NUL-terminated whenever data != NULL */
    size_t len;
    size_t cap;
    size_t max; /* appends that would exceed this fail with SG_ETOOBIG; 0 = SIZE_MAX */
};
void sg_buf_init(struct sg_buf *b, size_t max);
void sg_buf_dispose(struct sg_buf *b);
/* Make room for `extra` more bytes; SG_ETOOBIG past the maximum. */
int sg_buf_reserve(struct sg_buf *b, size_t extra);
int sg_buf_append(struct sg_buf *b, const void *p, size_t n);
int sg_buf_appends(struct sg_buf *b, const char *s);
/* v in decimal (sg_fmt_u64), without printf's cost on the request path. */
int sg_buf_append_u64(struct sg_buf *b, uint64_t v);
int sg_buf_appendf(struct sg_buf *b, const char *fmt, ...) SG_PRINTF(2, 3);
int sg_buf_vappendf(struct sg_buf *b, const char *fmt, va_list ap) SG_PRINTF(2, 0);
/* Append `s` as the inside of a JSON string literal (quotes not included). A byte that starts no
 * well-formed UTF-8 sequence is written as U+FFFD, so what is written is always UTF-8 JSON, even
 * when `s` quotes a client's header bytes or was cut mid-character. */
int sg_buf_append_json_str(struct sg_buf *b, const char *s, size_t n);
/* Drop the first n bytes. */
void sg_buf_consume(struct sg_buf *b, size_t n);
static inline void sg_buf_reset(struct sg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}
/* Hand the bytes to the caller (who frees them) and leave the buffer empty. */
char *sg_buf_steal(struct sg_buf *b, size_t *len);

/* ---- clocks ---- */
uint64_t sg_now_us(void);  /* monotonic microseconds */
uint64_t sg_now_ms(void);  /* monotonic milliseconds */
uint64_t sg_wall_ms(void); /* milliseconds since the Unix epoch */
/* Format `ms` since the epoch as RFC 3339 UTC ("2026-11-22T10:00:00.123Z"); out >= 32 bytes. */
void sg_format_utc(uint64_t ms, char *out, size_t n);
/* The same with microseconds ("2026-11-22T10:00:00.123456Z"). */
void sg_format_utc_us(uint64_t us, char *out, size_t n);

/* The length (2..4) of the well-formed UTF-8 sequence at `p` (its first byte >= 0x80; `left`
 * bytes readable), or 0 when it is not one: overlong forms, surrogates and code points past
 * U+10FFFF are not. */
size_t sg_utf8_seq_len(const char *p, size_t left);
/* The offset of the first byte of `p[0..n)` that starts no well-formed UTF-8 sequence (as above),
 * or `n` when all of it is UTF-8. */
size_t sg_utf8_check(const char *p, size_t n);
/* An identifier (a user, a feature) that did not fit a `cap`-byte field stays distinct: `out`
 * holds its first `len` bytes (whole UTF-8 sequences); they are cut back to leave room for '~' and
 * 16 hex digits of a 64-bit hash (FNV-1a) of all `n` bytes of the original `s`. cap >= 24. */
void sg_id_shorten(char *out, size_t cap, size_t len, const char *s, size_t n);
/* `s` (n bytes) into `out` as is when it fits, else shortened as above (cut between bytes, so
 * for text already known to be UTF-8). */
void sg_id_copy(char *out, size_t cap, const char *s, size_t n);
/* A NUL-terminated copy of `p[0..n)` in which each byte that starts no well-formed sequence is
 * U+FFFD. Never fails (aborts when out of memory, as sg_xmalloc). */
char *sg_utf8_dup(const char *p, size_t n);

/* ---- mpmc.c: a bounded lock-free ring of pointers, any number of producers and consumers ---- */
struct sg_mpmc_cell {
    _Atomic size_t seq;
    void *p;
};

struct sg_mpmc {
    struct sg_mpmc_cell *cells;
    size_t mask;
    _Alignas(64) _Atomic size_t enq;
    _Alignas(64) _Atomic size_t deq;
};

void sg_mpmc_init(struct sg_mpmc *q, size_t capacity); /* rounded up to a power of two */
void sg_mpmc_dispose(struct sg_mpmc *q);               /* the ring only, not what it points to */
bool sg_mpmc_push(struct sg_mpmc *q, void *p);         /* false when full */
void *sg_mpmc_pop(struct sg_mpmc *q);                  /* NULL when empty */
size_t sg_mpmc_size(struct sg_mpmc *q);                /* approximate while others push/pop */

/* ---- map.c: a hash table from byte-string keys to pointers ---- */
/* The map borrows its keys: a key must stay alive and unchanged while it is in the map (it
 * usually lives in the value). Not thread-safe: its owner locks. Zero-initialized is empty. */
struct sg_map_slot {
    const char *key; /* NULL: an empty slot */
    size_t len;
    uint64_t hash;
    void *val;
};

struct sg_map {
    struct sg_map_slot *v;
    size_t cap, n; /* cap: 0 or a power of two, at least twice n */
    size_t probes; /* slots examined so far: a test can check that lookups stay O(1) */
};

void sg_map_dispose(struct sg_map *m); /* the table only; keys and values are the caller's */
/* The value stored under the key's `len` bytes, or NULL. */
void *sg_map_get(struct sg_map *m, const char *key, size_t len);
/* The same lookup on a map nobody changes any more: it writes nothing (not even `probes`), so
 * threads may share the map without a lock. */
void *sg_map_find(const struct sg_map *m, const char *key, size_t len);
/* Store `val` under the key, replacing what was there. */
void sg_map_put(struct sg_map *m, const char *key, size_t len, void *val);
/* Remove the key; returns what was stored under it, or NULL. */
void *sg_map_del(struct sg_map *m, const char *key, size_t len);
/* 64-bit FNV-1a of n bytes. */
uint64_t sg_hash(const void *p, size_t n);

/* ---- random: per-thread xoshiro256**, seeded from the OS unless seeded explicitly ---- */
uint64_t sg_rand_u64(void);
void sg_rand_seed(uint64_t seed);
/* Fill `out` with 2*nbytes lowercase hex characters and a NUL. */
void sg_rand_hex(char *out, size_t nbytes);

/* ---- logging: one line per call to stderr, written atomically ---- */
enum sg_log_level { SG_LOG_DEBUG, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR, SG_LOG_OFF };
void sg_log_set_level(enum sg_log_level lvl);
enum sg_log_level sg_log_get_level(void);
/* Parse "debug|info|warn|error|off"; -1 when unknown. */
int sg_log_level_parse(const char *s);
void sg_log(enum sg_log_level lvl, const char *module, const char *fmt, ...) SG_PRINTF(3, 4);
#define SG_DEBUG(mod, ...)                                                                         \
    do {                                                                                           \
        if (sg_log_get_level() <= SG_LOG_DEBUG)                                                    \
            sg_log(SG_LOG_DEBUG, mod, __VA_ARGS__);                                                \
    } while (0)
#define SG_INFO(mod, ...) sg_log(SG_LOG_INFO, mod, __VA_ARGS__)
#define SG_WARN(mod, ...) sg_log(SG_LOG_WARN, mod, __VA_ARGS__)
#define SG_ERROR(mod, ...) sg_log(SG_LOG_ERROR, mod, __VA_ARGS__)

/* ---- nofile.c: the open-files limit ---- */
/* Raise this process's soft RLIMIT_NOFILE to its hard limit, as nginx's worker_rlimit_nofile does
 * (the usual soft limit, 1024, holds a few hundred proxied connections). Never lowers it. Returns
 * the soft limit in force afterwards, 0 when it cannot be read. When `need` (the descriptors the
 * caller can use at its configured maximum; 0 = unknown) is above it, logs a warning naming
 * `why` (what needs them; may be NULL). Call it once at start, before other threads run. */
uint64_t sg_nofile_raise(uint64_t need, const char *why);

/* ---- small string helpers ---- */
/* Parse a decimal integer in [min, max]; false on junk, overflow or range. */
bool sg_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* An HTTP Retry-After value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, as milliseconds
 * from now. False when it is neither, a date already past, or further than a day away (a wait
 * that long is not believed). Spaces around the value are allowed. */
bool sg_retry_after_ms(struct sg_slice v, uint64_t *out);
/* v in decimal into out (at least 21 bytes), NUL-terminated; returns the length. The request
 * path's headers use it instead of snprintf. */
size_t sg_fmt_u64(char *out, uint64_t v);
/* Constant-time comparison of two byte strings (for keys). */
bool sg_ct_equal(const char *a, size_t an, const char *b, size_t bn);

#endif
