/*
 * Fuzz the crash journal's reader (src/store/journal.c): the file a killed slogate left in
 * /dev/shm, read at the next start. Odd first byte: the rest is the whole file, header
 * included (a damaged or foreign header must be refused, never read). Even: a header of this
 * build's layout is put in front and the rest is the cells, so their states, claim numbers and
 * event bytes get explored. Property, not just "no crash": every event read back becomes a spool
 * line (the request log's or the database's only, as its cell says) that the spool's reader
 * parses (a recovered event the replay cannot read would be lost).
 */
#include "store/store.h"
#include "store/store_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    size_t len = size - 1;
    unsigned char *file;
    if (data[0] & 1) {
        file = malloc(len ? len : 1);
        memcpy(file, data + 1, len);
    } else {
        size_t cells = (len + 1023) / 1024;
        file = calloc(1 + cells, 1024);
        memcpy(file, "SGJRNL1", 8);
        uint32_t h[4] = {1024, (uint32_t)cells, (uint32_t)offsetof(struct sg_event, cache_state),
                         SG_STORE_SCHEMA_VERSION};
        memcpy(file + 8, h, sizeof h);
        memcpy(file + 1024, data + 1, len);
        len = (1 + cells) * 1024;
    }
    struct sg_event **ev = NULL;
    bool *tapped = NULL;
    char why[256];
    size_t n = sg_journal_parse(file, len, NULL, &ev, &tapped, why, sizeof why);
    for (size_t i = 0; i < n; i++) {
        struct sg_buf b;
        sg_buf_init(&b, 0);
        int rc = tapped[i] ? sg_spool_line(ev[i], &b) : sg_spool_tap_line(ev[i], &b);
        if (rc != SG_OK || !b.len || b.data[b.len - 1] != '\n')
            abort();
        struct sg_event *back = sg_event_new();
        if (sg_event_from_json(b.data, b.len - 1, back) != SG_OK ||
            strcmp(back->request_id, ev[i]->request_id) != 0)
            abort();
        sg_event_free(back);
        sg_buf_dispose(&b);
        sg_event_free(ev[i]);
    }
    free(ev);
    free(tapped);
    free(file);
    return 0;
}
