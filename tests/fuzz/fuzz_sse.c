/* Fuzz the SSE splitter: any bytes, fed in two pieces at a split point taken from the input. */
#include "http/http.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice data)
{
    size_t *total = ud;
    *total += raw.n + event.n + data.n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = data[0] % (size + 1);
    size_t total = 0;
    struct sg_sse_parser p;
    sg_sse_parser_init(&p, 4096, on_event, &total);
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    split = SG_MIN(split, n);
    if (sg_sse_parser_feed(&p, s, split) == SG_OK)
        sg_sse_parser_feed(&p, s + split, n - split);
    sg_sse_parser_dispose(&p);
    return 0;
}
