/*
 * The change trial: before a deployment becomes a primary (a new provider, a new model, a new
 * region), send it sample traffic and check its p95 and cost per request against the SLO.
 *
 * How traffic reaches only the candidate: the candidate is pinned for its alias
 * (POST /admin/deployments/<id>/pin) for the length of the trial, and unpinned after — or the
 * pin that was there before is put back. A pin only prefers a deployment: when the candidate
 * fails, the router still fails over, so answers from anyone else count as the candidate's
 * failures (trial_evaluate). The pin applies to every client of that alias on that gateway:
 * run trials on a staging gateway, or on an alias no client uses yet (docs/drill.md).
 */
#include "drill_int.h"

#include <stdio.h>
#include <stdlib.h>

#define ADMIN_TIMEOUT_MS 10000

/* Ids travel in the admin URL path: only characters that need no escaping there. */
static bool path_safe(const char *id)
{
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("-._~:@", *p)))
            return false;
    return *id != '\0';
}

static int setup(const struct sg_drill_options *o, struct sg_drill_result *r, char *err, size_t n)
{
    const struct sg_config *cfg = o->cfg;
    const struct sg_deployment *d = NULL;
    for (size_t i = 0; i < cfg->n_deployments && !d; i++)
        if (strcmp(cfg->deployments[i].id, o->candidate) == 0)
            d = &cfg->deployments[i];
    if (!d) {
        snprintf(err, n, "no deployment with id '%s' in %s (model_info.id)", o->candidate,
                 cfg->path);
        return SG_EINVAL;
    }
    if (!path_safe(d->id)) {
        snprintf(err, n,
                 "deployment id '%s' cannot be pinned through the admin URL; give it a "
                 "model_info.id of letters, digits, '-', '_' or '.'",
                 d->id);
        return SG_EINVAL;
    }
    snprintf(r->primary, sizeof r->primary, "%s", d->id);
    snprintf(r->alias, sizeof r->alias, "%s", d->alias);
    return SG_OK;
}

/* POST /admin/deployments/<id>/<action> (pin or unpin), up to three tries: each is idempotent,
 * so a try whose answer was lost is simply made again. The status of the last answer (0: none);
 * *unsure is set when a try may have taken effect without an answer saying so. A 409 (an unpin
 * of a deployment that is not the pinned one) is final. */
static int pin(struct sg_drill_run *R, const char *id, const char *action, bool *unsure)
{
    char path[200];
    snprintf(path, sizeof path, "/admin/deployments/%s/%s", id, action);
    int status = 0;
    for (int attempt = 0; attempt < 3 && status != 200 && status != 409; attempt++) {
        struct sg_drill_reply rep;
        int rc = sg_drill_admin(&R->c, "POST", path, "{}", ADMIN_TIMEOUT_MS, &rep);
        status = rc == SG_OK ? rep.status : 0;
        if (status != 200 && sg_drill_reply_maybe_applied(rc, &rep)) {
            char what[260];
            snprintf(what, sizeof what, "POST %s (try %d of 3)", path, attempt + 1);
            *unsure = true;
            sg_drill_run_unsure(R, what, rc, &rep);
        } else if (status != 200) {
            sg_drill_run_event(R, "POST %s failed: %s", path,
                               rc != SG_OK     ? rep.error
                               : rep.body.data ? rep.body.data
                                               : "");
        }
        sg_drill_reply_dispose(&rep);
    }
    return status;
}

/* Put the alias's pin back the way it was. The trial unpins only the candidate, the deployment
 * it pinned: the gateway refuses (409) to unpin it when another deployment holds the pin now —
 * someone pinned it meanwhile — and that pin is left alone. */
static void unpin(struct sg_drill_run *R)
{
    if (!R->pinned)
        return;
    bool unsure = false;
    int status = R->prev_pin[0] ? pin(R, R->prev_pin, "pin", &unsure)
                                : pin(R, R->res->primary, "unpin", &unsure);
    if (status == 200 || status == 409) {
        R->pinned = false;
        if (R->prev_pin[0])
            sg_drill_run_event(R, "pin restored to %s", R->prev_pin);
        else if (status == 200)
            sg_drill_run_event(R, "%s unpinned", R->res->primary);
        else
            sg_drill_run_event(R,
                               "%s is not pinned any more: another deployment of %s was "
                               "pinned meanwhile, and keeps its pin",
                               R->res->primary, R->res->alias);
    } else {
        sg_drill_run_event(R,
                           "COULD NOT UNDO THE PIN: run POST /admin/deployments/%s/unpin on "
                           "the gateway now",
                           R->res->primary);
    }
}

static int phases(struct sg_drill_run *R)
{
    struct sg_drill_result *r = R->res;
    const struct sg_drill_options *o = R->o;
    sg_drill_run_phase(R, "connecting", 0);
    struct sg_drill_gw_state st;
    sg_drill_run_state(R, &st);
    if (st.status == 401 || st.status == 403) {
        fprintf(stderr, "slogate trial: the gateway at %s refused the master key (HTTP %d)\n",
                r->gateway, st.status);
        return SG_DRILL_EXIT_USAGE;
    }
    if (st.status != 200) {
        r->aborted = true;
        snprintf(r->abort_reason, sizeof r->abort_reason, "the gateway did not answer: %s",
                 st.error);
        sg_drill_run_event(R, "stopping: %s", r->abort_reason);
        return 0;
    }
    const char *cs = sg_drill_gw_dep_state(&st, r->primary);
    if (!cs) {
        fprintf(stderr,
                "slogate trial: the gateway at %s has no deployment '%s': run the trial "
                "with the config the gateway serves\n",
                r->gateway, r->primary);
        return SG_DRILL_EXIT_USAGE;
    }
    if (strcmp(cs, "disabled") == 0 || st.bypass) {
        r->aborted = true;
        snprintf(r->abort_reason, sizeof r->abort_reason, "%s",
                 st.bypass ? "the router bypass is on: pins are ignored while it is"
                           : "the candidate is disabled: enable it first");
        sg_drill_run_event(R, "stopping: %s", r->abort_reason);
        return 0;
    }
    /* The samples go to the alias of the local config, the pin to the gateway's: they must be
     * one, or every sample would miss the candidate. */
    for (size_t i = 0; i < st.n; i++) {
        if (strcmp(st.d[i].id, r->primary) != 0 || strcmp(st.d[i].alias, r->alias) == 0)
            continue;
        fprintf(stderr,
                "slogate trial: the gateway at %s serves '%s' under '%s', %s under '%s': run "
                "the trial with the config the gateway serves\n",
                r->gateway, r->primary, st.d[i].alias, o->cfg->path, r->alias);
        return SG_DRILL_EXIT_USAGE;
    }
    /* The pin to put back afterwards: the candidate's own included (restored, not dropped). */
    for (size_t i = 0; i < st.n; i++)
        if (st.d[i].pinned && strcmp(st.d[i].alias, r->alias) == 0)
            snprintf(R->prev_pin, sizeof R->prev_pin, "%s", st.d[i].id);
    sg_drill_run_event(R, "gateway %s answers; candidate %s (%s) is %s%s%s", r->gateway, r->primary,
                       r->alias, cs, R->prev_pin[0] ? "; pinned now: " : "", R->prev_pin);
    bool unsure = false;
    if (pin(R, r->primary, "pin", &unsure) != 200) {
        /* A pin whose answer was lost may be in place all the same: undo it. */
        R->pinned = unsure;
        r->aborted = true;
        snprintf(r->abort_reason, sizeof r->abort_reason, "%s",
                 unsure ? "the candidate's pin got no answer: it may have taken effect, so "
                          "the trial undoes it"
                        : "the candidate could not be pinned");
        unpin(R);
        return 0;
    }
    R->pinned = true;
    sg_drill_run_event(R, "%s pinned for %s: every request of the alias goes to it first",
                       r->primary, r->alias);
    char title[96];
    snprintf(title, sizeof title, "trial: %u samples at %g requests/s", o->samples, o->rps);
    double budget = o->samples / o->rps * 1000.0;
    sg_drill_run_phase(R, title, budget);
    R->load.limit = o->samples;
    sg_drill_load_start(&R->load, SG_DRILL_PH_TRIAL);
    sg_drill_run_wait_flag(R, NULL, budget, true);
    while (!R->stop && R->load.running)
        sg_drill_run_wait(R, 50, true);
    sg_drill_load_stop(&R->load);
    sg_drill_run_drain(R, R->stop ? 2000.0 : (double)R->c.timeout_ms);
    sg_drill_run_event(R, "%zu samples answered", r->n_samples);
    unpin(R);
    if (R->stop)
        r->interrupted = true;
    return 0;
}

int sg_trial_run(const struct sg_drill_options *o, struct sg_drill_result *res)
{
    struct sg_drill_result local, *r = res ? res : &local;
    sg_drill_result_init(r, "trial");
    sg_drill_result_meta(r, o);
    r->samples_wanted = o->samples;
    r->stream = o->stream;
    struct sg_drill_run R;
    if (sg_drill_run_init(&R, o, r, setup, "trial") != SG_OK) {
        if (!res)
            sg_drill_result_dispose(r);
        return SG_DRILL_EXIT_USAGE;
    }
    fprintf(R.out, "slogate trial: %u samples through %s (%s) via %s; Ctrl-C unpins and stops\n",
            o->samples, r->primary, r->alias, r->gateway);
    int code = phases(&R);
    if (code == SG_DRILL_EXIT_USAGE) {
        unpin(&R);
        sg_drill_run_unreserve(&R);
        sg_drill_run_dispose(&R);
        if (!res)
            sg_drill_result_dispose(r);
        return code;
    }
    code = sg_drill_finish(&R, o, r, true);
    if (!res)
        sg_drill_result_dispose(r);
    return code;
}
