/*
 * Fuzz the telemetry readers of outside bytes: the W3C traceparent header a client sends, and the
 * spool's event lines read back from disk (a torn or damaged file must not crash the writer).
 * Properties, not just "no crash": a traceparent that parses formats back into one that parses to
 * the same ids and the flags version 00 knows (the others are sent as zero); an event line that
 * parses, written and read again, writes the same line (its prompt and attempts included: the
 * request path spools them so, and the replay logs them).
 */
#include "telemetry/telemetry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void traceparent(const char *s, size_t n)
{
    char trace[33], span[17], trace2[33], span2[17];
    uint8_t flags, flags2;
    if (!sg_traceparent_parse((struct sg_slice){s, n}, trace, span, &flags))
        return;
    if (strlen(trace) != 32 || strlen(span) != 16)
        abort();
    char again[64];
    sg_traceparent_format(trace, span, flags, again, sizeof again);
    if (!sg_traceparent_parse((struct sg_slice){again, strlen(again)}, trace2, span2, &flags2) ||
        strcmp(trace, trace2) || strcmp(span, span2) || flags2 != (flags & SG_TRACE_FLAGS_KNOWN))
        abort();
}

static void event_line(const char *s, size_t n)
{
    const unsigned flags = SG_EVENT_JSON_PROMPT | SG_EVENT_JSON_ATTEMPTS;
    struct sg_event *ev = sg_event_new(), *back = sg_event_new();
    if (sg_event_from_json(s, n, ev) == SG_OK) {
        struct sg_buf a, b;
        sg_buf_init(&a, 0);
        sg_buf_init(&b, 0);
        if (sg_event_to_json(ev, flags, &a) != SG_OK ||
            sg_event_from_json(a.data, a.len, back) != SG_OK ||
            sg_event_to_json(back, flags, &b) != SG_OK || a.len != b.len ||
            memcmp(a.data, b.data, a.len) != 0)
            abort();
        sg_buf_dispose(&a);
        sg_buf_dispose(&b);
    }
    sg_event_free(ev);
    sg_event_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    traceparent((const char *)data, size);
    event_line((const char *)data, size);
    return 0;
}
