/* SSE framing: events split anywhere, every line-end style, comments, limits. */
#include "http/http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

struct seen {
    int n;
    char raw[8][128];
    char event[8][32];
    char data[8][128];
};

static void on_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice data)
{
    struct seen *s = ud;
    if (s->n >= 8)
        return;
    snprintf(s->raw[s->n], sizeof s->raw[0], "%.*s", (int)raw.n, raw.p);
    snprintf(s->event[s->n], sizeof s->event[0], "%.*s", (int)event.n, event.p);
    snprintf(s->data[s->n], sizeof s->data[0], "%.*s", (int)data.n, data.p);
    s->n++;
}

static void feed_in_pieces(const char *text, size_t piece, struct seen *s, size_t *pending)
{
    struct sg_sse_parser p;
    sg_sse_parser_init(&p, 1024, on_event, s);
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += piece)
        assert_int_equal(sg_sse_parser_feed(&p, text + i, SG_MIN(piece, n - i)), SG_OK);
    *pending = sg_sse_parser_pending(&p);
    sg_sse_parser_dispose(&p);
}

static void test_openai_stream_any_split(void **state)
{
    (void)state;
    const char text[] = "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
    for (size_t piece = 1; piece <= sizeof text; piece++) {
        struct seen s = {0};
        size_t pending;
        feed_in_pieces(text, piece, &s, &pending);
        assert_int_equal(s.n, 3);
        assert_string_equal(s.data[0], "{\"a\":1}");
        assert_string_equal(s.raw[1], "data: {\"b\":2}\n\n");
        assert_string_equal(s.data[2], "[DONE]");
        assert_int_equal(pending, 0);
    }
}

static void test_anthropic_events_crlf_and_cr(void **state)
{
    (void)state;
    const char *texts[] = {
        "event: message_start\r\ndata: {\"x\":1}\r\n\r\nevent: ping\r\ndata: {}\r\n\r\n",
        "event: message_start\rdata: {\"x\":1}\r\revent: ping\rdata: {}\r\r",
    };
    for (size_t t = 0; t < 2; t++) {
        for (size_t piece = 1; piece < 8; piece++) {
            struct seen s = {0};
            size_t pending;
            feed_in_pieces(texts[t], piece, &s, &pending);
            /* A lone trailing '\r' may still be the first half of "\r\n": the CR-only text keeps
             * its last event pending until more bytes (or the end) arrive. */
            assert_true(s.n >= 1);
            assert_string_equal(s.event[0], "message_start");
            assert_string_equal(s.data[0], "{\"x\":1}");
            if (t == 0) {
                assert_int_equal(s.n, 2);
                assert_string_equal(s.event[1], "ping");
                assert_int_equal(pending, 0);
            }
        }
    }
}

static void test_multiline_data_and_comments(void **state)
{
    (void)state;
    struct seen s = {0};
    size_t pending;
    feed_in_pieces(": keep-alive\n\ndata: line1\ndata:line2\nid: 7\n\n\n\n", 3, &s, &pending);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.raw[0], ": keep-alive\n\n");
    assert_string_equal(s.data[0], "");
    assert_string_equal(s.data[1], "line1\nline2");
    assert_int_equal(pending, 0);
}

static void test_truncated_event_stays_pending(void **state)
{
    (void)state;
    struct seen s = {0};
    size_t pending;
    feed_in_pieces("data: {\"a\":1}\n\ndata: {\"b\":", 5, &s, &pending);
    assert_int_equal(s.n, 1);
    assert_int_equal(pending, strlen("data: {\"b\":"));
}

static void test_event_too_big(void **state)
{
    (void)state;
    struct seen s = {0};
    struct sg_sse_parser p;
    sg_sse_parser_init(&p, 16, on_event, &s);
    assert_int_equal(sg_sse_parser_feed(&p, "data: 0123456789012345", 22), SG_ETOOBIG);
    sg_sse_parser_dispose(&p);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_sse_format_data(&out, "{}", 2);
    assert_string_equal(out.data, "data: {}\n\n");
    sg_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream_any_split),
        cmocka_unit_test(test_anthropic_events_crlf_and_cr),
        cmocka_unit_test(test_multiline_data_and_comments),
        cmocka_unit_test(test_truncated_event_stays_pending),
        cmocka_unit_test(test_event_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
