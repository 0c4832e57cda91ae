/*
 * Drill and trial results into the store (src/store: the slogate_drills table, schema
 * migration 2), so `slogate report` and the dashboard can list past drills. The database is
 * the config's general_settings.database_url, as the gateway's; the JSON report is stored whole
 * beside the summary columns.
 */
#include "store/store.h"
#include "drill_int.h"

#include <stdio.h>

void sg_drill_store(const struct sg_config *cfg, struct sg_drill_result *r, const char *report_path)
{
    const char *url = cfg ? cfg->general.database_url : NULL;
    if (!url || !*url) {
        snprintf(r->store_note, sizeof r->store_note, "not stored: no database_url");
        return;
    }
    bool trial = strcmp(r->kind, "trial") == 0;
    const struct sg_drill_stats *st = trial ? &r->trial : &r->fault;
    char id[64], scheme[16];
    snprintf(id, sizeof id, "%s-%s", r->kind, r->started_at);
    /* The URL may carry a password: name the scheme only. */
    snprintf(scheme, sizeof scheme, "%.*s", (int)SG_MIN(strcspn(url, ":"), sizeof scheme - 1), url);
    /* The stored JSON says where it is stored; corrected below if the insert fails. */
    snprintf(r->store_note, sizeof r->store_note, "slogate_drills row %s (%s database)", id,
             scheme);
    struct sg_buf json;
    sg_buf_init(&json, 0);
    sg_drill_render_json(r, &json);
    char summary[1000];
    snprintf(summary, sizeof summary, "%s\n%s\n%s", r->summary[0], r->summary[1], r->summary[2]);
    struct sg_store_drill d = {
        .id = id,
        .kind = r->kind,
        .started_at = r->started_at,
        .elapsed_s = r->elapsed_ms / 1000,
        .gateway = r->gateway,
        .alias = r->alias,
        .deployment = r->primary,
        .mode = trial ? NULL : r->mode,
        .feature = r->feature[0] ? r->feature : NULL,
        .passed = r->passed,
        .interrupted = r->interrupted,
        .aborted = r->aborted,
        .ttr_s = !trial && r->ttr_found ? r->ttr_ms / 1000 : -1,
        .p95_s = st->n ? st->p95_ms / 1000 : -1,
        .success_rate = st->n ? st->sr_pct : -1,
        .cost_avg_usd = st->cost_n ? st->cost_avg_usd : -1,
        .summary = summary,
        .report_path = report_path,
        .result_json = json.data ? json.data : "{}",
    };
    char err[300];
    if (sg_store_record_drill(url, &d, err, sizeof err) != SG_OK)
        snprintf(r->store_note, sizeof r->store_note, "not stored (%s database): %.150s", scheme,
                 err);
    sg_buf_dispose(&json);
}
