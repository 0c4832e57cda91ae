/*
 * Drill and trial results into the store, so `slogate report` and the dashboard can list past
 * drills. The store (src/store, issue 5) has not landed yet: until it does, the JSON report in
 * --out is the record, and the note in the report says so.
 */
#include "drill_int.h"

#include <stdio.h>

void sg_drill_store(const struct sg_config *cfg, struct sg_drill_result *r)
{
    SG_UNUSED(cfg);
    snprintf(r->store_note, sizeof r->store_note,
             "not stored in the database (the store is not part of this build); the JSON "
             "report is the record");
}
