/* base: buffers and their caps, the hash map, JSON escaping, parsing helpers, constant-time
 * compare, random. */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

static void test_buf_append_and_cap(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 10);
    assert_int_equal(sg_buf_appends(&b, "hello"), SG_OK);
    assert_int_equal(sg_buf_appends(&b, "world"), SG_OK);
    assert_string_equal(b.data, "helloworld");
    /* One byte over the cap fails and leaves the buffer as it was. */
    assert_int_equal(sg_buf_appends(&b, "!"), SG_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    sg_buf_consume(&b, 5);
    assert_string_equal(b.data, "world");
    assert_int_equal(sg_buf_appendf(&b, "%d", 12345), SG_OK);
    assert_string_equal(b.data, "world12345");
    assert_int_equal(sg_buf_appendf(&b, "%d", 1), SG_ETOOBIG);
    size_t n;
    char *s = sg_buf_steal(&b, &n);
    assert_int_equal(n, 10);
    assert_null(b.data);
    free(s);
    sg_buf_dispose(&b);
}

static void test_buf_appendf_long(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sg_buf_appendf(&b, "[%s]", big), SG_OK);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[0], '[');
    assert_int_equal(b.data[1000], ']');
    sg_buf_dispose(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    const char in[] = "a\"b\\c\nd\x01\te";
    sg_buf_append_json_str(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\u0001\\te");
    sg_buf_dispose(&b);
    /* UTF-8 passes as it is; a byte that starts no sequence (Latin-1, overlong, a cut tail)
     * is written as U+FFFD. */
    sg_buf_init(&b, 0);
    const char mixed[] = "caf\xc3\xa9 caf\xe9 \xc0\xaf \xe2\x82";
    sg_buf_append_json_str(&b, mixed, sizeof mixed - 1);
    assert_string_equal(b.data, "caf\xc3\xa9 caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                                "\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(sg_utf8_check(b.data, b.len), b.len);
    sg_buf_dispose(&b);
    /* Escaping that would pass the cap fails whole. */
    sg_buf_init(&b, 4);
    assert_int_equal(sg_buf_append_json_str(&b, "\"\"\"", 3), SG_ETOOBIG);
    assert_int_equal(b.len, 0);
    sg_buf_dispose(&b);
}

static void test_fmt_u64(void **state)
{
    (void)state;
    static const uint64_t v[] = {
        0, 1, 9, 10, 99, 100, 12345, UINT32_MAX, 1000000000000000000u, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char ours[21], want[32];
        int n = snprintf(want, sizeof want, "%" PRIu64, v[i]);
        assert_int_equal(sg_fmt_u64(ours, v[i]), (size_t)n);
        assert_string_equal(ours, want);
    }
}

/* Retry-After: delta-seconds or an HTTP-date, up to a day away. */
static void test_retry_after_ms(void **state)
{
    (void)state;
    uint64_t ms = 7;
    assert_true(sg_retry_after_ms(SG_SLICE_LIT("3"), &ms));
    assert_int_equal(ms, 3000);
    assert_true(sg_retry_after_ms(SG_SLICE_LIT("  0 "), &ms));
    assert_int_equal(ms, 0);
    assert_true(sg_retry_after_ms(SG_SLICE_LIT("86400"), &ms));
    assert_int_equal(ms, 86400000);
    static const char *const bad[] = {
        "", "-1", "86401", "1.5", "soon", "3s", "Wed, 21 Oct 2015 07:28:00 GMT" /* past */};
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++)
        assert_false(sg_retry_after_ms(sg_slice_of(bad[i]), &ms));
    char date[64];
    struct tm tm;
    for (int ahead = 10; ahead <= 2 * 86400; ahead += 2 * 86400 - 10) {
        time_t t = time(NULL) + ahead;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        bool ok = sg_retry_after_ms(sg_slice_of(date), &ms);
        if (ahead == 10) { /* within a second of the clock */
            assert_true(ok);
            assert_in_range(ms, 8000, 10000);
        } else {
            assert_false(ok); /* two days away: not believed */
        }
    }
}

static void test_parse_i64(void **state)
{
    (void)state;
    int64_t v;
    assert_true(sg_parse_i64("42", 0, 100, &v));
    assert_int_equal(v, 42);
    assert_false(sg_parse_i64("101", 0, 100, &v));
    assert_false(sg_parse_i64("-1", 0, 100, &v));
    assert_false(sg_parse_i64("4x", 0, 100, &v));
    assert_false(sg_parse_i64("", 0, 100, &v));
    assert_false(sg_parse_i64("99999999999999999999", 0, INT64_MAX, &v));
}

static void test_ct_equal_and_ieq(void **state)
{
    (void)state;
    assert_true(sg_ct_equal("sk-abc", 6, "sk-abc", 6));
    assert_false(sg_ct_equal("sk-abc", 6, "sk-abd", 6));
    assert_false(sg_ct_equal("sk-ab", 5, "sk-abc", 6));
    assert_false(sg_ct_equal("", 0, "x", 1));
    assert_true(sg_slice_ieq(SG_SLICE_LIT("Content-Length"), "content-length"));
    assert_false(sg_slice_ieq(SG_SLICE_LIT("Content-Lengt"), "content-length"));
}

static void test_rand_seeded_is_deterministic(void **state)
{
    (void)state;
    sg_rand_seed(7);
    uint64_t a = sg_rand_u64(), b = sg_rand_u64();
    sg_rand_seed(7);
    assert_int_equal(sg_rand_u64(), a);
    assert_int_equal(sg_rand_u64(), b);
    char hex[33];
    sg_rand_hex(hex, 16);
    assert_int_equal(strlen(hex), 32);
    for (int i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", hex[i]));
}

static void test_format_utc(void **state)
{
    (void)state;
    char out[32];
    sg_format_utc(1795000000123ull, out, sizeof out);
    assert_string_equal(out, "2026-11-18T11:06:40.123Z");
    sg_format_utc_us(1795000000123456ull, out, sizeof out);
    assert_string_equal(out, "2026-11-18T11:06:40.123456Z");
    sg_format_utc_us(951782400000000ull, out, sizeof out); /* a leap day of a century year */
    assert_string_equal(out, "2000-02-29T00:00:00.000000Z");
    sg_format_utc_us(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
    char small[11];
    sg_format_utc_us(0, small, sizeof small); /* cut to fit, still terminated */
    assert_string_equal(small, "1970-01-01");
}

/* The hand-written calendar arithmetic against gmtime_r, a day at a time over 1970..2400 and at
 * random instants. */
static void test_format_utc_matches_gmtime(void **state)
{
    (void)state;
    sg_rand_seed(7);
    for (uint64_t i = 0; i < 157000 + 20000; i++) {
        uint64_t us = i < 157000 ? i * 86400ull * 1000000u + 86399999999ull
                                 : sg_rand_u64() % (13569465600ull * 1000000u);
        time_t secs = (time_t)(us / 1000000u);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want[80], got[40];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned)(us % 1000000u));
        sg_format_utc_us(us, got, sizeof got);
        assert_string_equal(got, want);
    }
}

/* Two producers and two consumers through a small ring: every item comes out exactly once. */
#define MPMC_ITEMS 20000 /* per producer */

struct mpmc_run {
    struct sg_mpmc q;
    _Atomic int taken;
    _Atomic unsigned char seen[2 * MPMC_ITEMS];
};

struct mpmc_producer_arg {
    struct mpmc_run *r;
    intptr_t first; /* items first .. first + MPMC_ITEMS - 1 (never 0: NULL means empty) */
};

static void *mpmc_producer(void *arg)
{
    struct mpmc_producer_arg *a = arg;
    for (intptr_t i = 0; i < MPMC_ITEMS; i++)
        while (!sg_mpmc_push(&a->r->q, (void *)(a->first + i)))
            ; /* full: the consumers drain */
    return NULL;
}

static void *mpmc_consumer(void *arg)
{
    struct mpmc_run *r = arg;
    while (atomic_load(&r->taken) < 2 * MPMC_ITEMS) {
        void *p = sg_mpmc_pop(&r->q);
        if (!p)
            continue;
        atomic_fetch_add(&r->seen[(intptr_t)p - 1], 1);
        atomic_fetch_add(&r->taken, 1);
    }
    return NULL;
}

static void test_mpmc_many_producers_and_consumers(void **state)
{
    (void)state;
    static struct mpmc_run r;
    sg_mpmc_init(&r.q, 64);
    struct mpmc_producer_arg a[2] = {{&r, 1}, {&r, 1 + MPMC_ITEMS}};
    pthread_t t[4];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mpmc_producer, &a[i]), 0);
    for (int i = 2; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mpmc_consumer, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2 * MPMC_ITEMS; i++)
        assert_int_equal(atomic_load(&r.seen[i]), 1);
    assert_null(sg_mpmc_pop(&r.q));
    assert_int_equal(sg_mpmc_size(&r.q), 0);
    sg_mpmc_dispose(&r.q);
}

static void test_id_copy_keeps_long_ids_distinct(void **state)
{
    SG_UNUSED(state);
    char a[32], b[25], c[25];
    sg_id_copy(a, sizeof a, "short", 5);
    assert_string_equal(a, "short");
    /* 31 bytes fit a 32-byte field as they are. */
    const char *fits = "0123456789012345678901234567890";
    sg_id_copy(a, sizeof a, fits, strlen(fits));
    assert_string_equal(a, fits);
    /* Longer: the start, '~' and 16 hex digits, whole sequences only; different tails differ.
     * 25 bytes leave 7 for the start: 3 whole two-byte characters. */
    const char *x = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                    "\xa9\xc3\xa9\xc3\xa9-tail-x";
    const char *y = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                    "\xa9\xc3\xa9\xc3\xa9-tail-y";
    sg_id_copy(b, sizeof b, x, strlen(x));
    sg_id_copy(c, sizeof c, y, strlen(y));
    assert_int_equal(strlen(b), 6 + 17);
    assert_memory_equal(b, x, 6);
    assert_int_equal(b[6], '~');
    assert_int_equal(sg_utf8_check(b, strlen(b)), strlen(b));
    assert_string_not_equal(b, c);
    assert_memory_equal(b, c, 7); /* only the hash differs */
    /* The same id gives the same result. */
    sg_id_copy(c, sizeof c, x, strlen(x));
    assert_string_equal(b, c);
}

static void test_utf8_check(void **state)
{
    SG_UNUSED(state);
    static const struct {
        const char *s;
        size_t bad; /* SIZE_MAX: all of it is UTF-8 */
    } cases[] = {
        {"", SIZE_MAX},
        {"plain ascii", SIZE_MAX},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", SIZE_MAX}, /* 2, 3 and 4 bytes */
        {"\xf4\x8f\xbf\xbf", SIZE_MAX},                          /* U+10FFFF */
        {"ab\xc0\xaf", 2},                                       /* overlong '/' */
        {"a\xe0\x80\xaf", 1},                                    /* overlong, 3 bytes */
        {"\xed\xa0\x80", 0},                                     /* a surrogate */
        {"x\xf4\x90\x80\x80", 1},                                /* past U+10FFFF */
        {"ok\x80", 2},                                           /* a lone continuation */
        {"\xc3", 0},                                             /* cut short */
        {"\xc3\xa9\xff", 2},
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        size_t n = strlen(cases[i].s);
        size_t want = cases[i].bad == SIZE_MAX ? n : cases[i].bad;
        if (sg_utf8_check(cases[i].s, n) != want)
            fail_msg("case %zu: %zu, want %zu", i, sg_utf8_check(cases[i].s, n), want);
    }
    char *d = sg_utf8_dup("a\xc0\xaf"
                          "b\xc3\xa9\xff",
                          7);
    assert_string_equal(d, "a\xef\xbf\xbd\xef\xbf\xbd"
                           "b\xc3\xa9\xef\xbf\xbd");
    free(d);
    d = sg_utf8_dup("", 0);
    assert_string_equal(d, "");
    free(d);
}

/* The soft open-files limit goes up to the hard one, and a second call changes nothing. */
static void test_nofile_raise(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max <= 64)
        skip(); /* nothing to raise to, or no room to lower it first */
    struct rlimit low = {.rlim_cur = 64, .rlim_max = rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(sg_nofile_raise(0, NULL), (uint64_t)rl.rlim_max);
    struct rlimit now;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_int_equal(now.rlim_cur, rl.rlim_max);
    assert_int_equal(now.rlim_max, rl.rlim_max);
    /* Asking for more than the hard limit warns and still reports what is in force. */
    assert_int_equal(sg_nofile_raise((uint64_t)rl.rlim_max + 1, "the test"), (uint64_t)rl.rlim_max);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_int_equal(now.rlim_cur, rl.rlim_max);
}

static void test_map_put_get_del(void **state)
{
    (void)state;
    struct sg_map m = {0};
    int a = 1, b = 2, c = 3;
    assert_null(sg_map_get(&m, "x", 1)); /* empty: no table yet */
    assert_null(sg_map_del(&m, "x", 1));
    sg_map_put(&m, "alias\0d1", 8, &a); /* keys are bytes: a NUL inside is part of the key */
    sg_map_put(&m, "alias", 5, &b);
    sg_map_put(&m, "", 0, &c);
    assert_int_equal(m.n, 3);
    assert_ptr_equal(sg_map_get(&m, "alias\0d1", 8), &a);
    assert_ptr_equal(sg_map_get(&m, "alias", 5), &b);
    assert_ptr_equal(sg_map_get(&m, "", 0), &c);
    assert_null(sg_map_get(&m, "alias\0d2", 8));
    sg_map_put(&m, "alias", 5, &c); /* replaced, not added */
    assert_int_equal(m.n, 3);
    assert_ptr_equal(sg_map_get(&m, "alias", 5), &c);
    assert_ptr_equal(sg_map_del(&m, "alias", 5), &c);
    assert_null(sg_map_get(&m, "alias", 5));
    assert_null(sg_map_del(&m, "alias", 5));
    assert_ptr_equal(sg_map_get(&m, "alias\0d1", 8), &a);
    assert_int_equal(m.n, 2);
    sg_map_dispose(&m);
    assert_int_equal(m.n, 0);
    assert_null(sg_map_get(&m, "", 0));
}

/* Random puts and deletes over a small key space, checked against a plain array after every
 * step: every key present is found (the backward shift after a delete keeps each reachable from
 * its home slot, across the wrap at the table's end), every key absent is not. */
static void test_map_matches_a_model_under_churn(void **state)
{
    (void)state;
    enum { KEYS = 300, STEPS = 20000 };
    static char keys[KEYS][16];
    static int vals[KEYS];
    bool in[KEYS] = {false};
    struct sg_map m = {0};
    for (int i = 0; i < KEYS; i++)
        snprintf(keys[i], sizeof keys[i], "g%d#%x", i % 7, i);
    sg_rand_seed(42);
    for (int step = 0; step < STEPS; step++) {
        int k = (int)(sg_rand_u64() % KEYS);
        if (sg_rand_u64() % 3) {
            sg_map_put(&m, keys[k], strlen(keys[k]), &vals[k]);
            in[k] = true;
        } else {
            assert_ptr_equal(sg_map_del(&m, keys[k], strlen(keys[k])), in[k] ? &vals[k] : NULL);
            in[k] = false;
        }
        size_t n = 0;
        for (int j = 0; j < KEYS; j++) {
            assert_ptr_equal(sg_map_get(&m, keys[j], strlen(keys[j])), in[j] ? &vals[j] : NULL);
            n += in[j];
        }
        assert_int_equal(m.n, n);
    }
    sg_map_dispose(&m);
}

/* The work of a lookup does not grow with the table: numbered keys with a long common prefix
 * (how large configs name deployments) cost one or two slots each, found or not. Counted, not
 * timed. */
static void test_map_lookups_stay_constant_as_the_table_grows(void **state)
{
    (void)state;
    enum { N = 100000 };
    char(*keys)[48] = calloc(N, sizeof *keys);
    struct sg_map m = {0};
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "deployment-eu-west-1-gpt-4o-mini-%d", i);
        sg_map_put(&m, keys[i], strlen(keys[i]), keys[i]);
    }
    m.probes = 0;
    for (int i = 0; i < N; i++)
        assert_ptr_equal(sg_map_get(&m, keys[i], strlen(keys[i])), keys[i]);
    assert_true(m.probes < 2 * (size_t)N); /* about 1.5 per lookup at half full */
    const struct sg_map *frozen = &m; /* the read-only lookup finds the same, and writes nothing */
    size_t counted = m.probes;
    for (int i = 0; i < N; i += 7)
        assert_ptr_equal(sg_map_find(frozen, keys[i], strlen(keys[i])), keys[i]);
    assert_int_equal(m.probes, counted);
    m.probes = 0;
    char miss[48];
    for (int i = 0; i < N; i++) {
        int len = snprintf(miss, sizeof miss, "deployment-eu-west-1-gpt-4o-mini-%d", N + i);
        assert_null(sg_map_get(&m, miss, (size_t)len));
    }
    assert_true(m.probes < 4 * (size_t)N); /* about 2.5 per miss */
    assert_null(sg_map_find(frozen, miss, strlen(miss)));
    for (int i = 0; i < N; i += 2)
        assert_non_null(sg_map_del(&m, keys[i], strlen(keys[i])));
    m.probes = 0;
    for (int i = 1; i < N; i += 2)
        assert_ptr_equal(sg_map_get(&m, keys[i], strlen(keys[i])), keys[i]);
    assert_true(m.probes < (size_t)N); /* N/2 lookups, still about 1.5 each */
    sg_map_dispose(&m);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_and_cap),
        cmocka_unit_test(test_buf_appendf_long),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_fmt_u64),
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_retry_after_ms),
        cmocka_unit_test(test_ct_equal_and_ieq),
        cmocka_unit_test(test_rand_seeded_is_deterministic),
        cmocka_unit_test(test_format_utc),
        cmocka_unit_test(test_format_utc_matches_gmtime),
        cmocka_unit_test(test_mpmc_many_producers_and_consumers),
        cmocka_unit_test(test_utf8_check),
        cmocka_unit_test(test_id_copy_keeps_long_ids_distinct),
        cmocka_unit_test(test_nofile_raise),
        cmocka_unit_test(test_map_put_get_del),
        cmocka_unit_test(test_map_matches_a_model_under_churn),
        cmocka_unit_test(test_map_lookups_stay_constant_as_the_table_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
