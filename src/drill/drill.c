/*
 * The failover drill's phases (DESIGN §13, the seed's SOP):
 *
 *   connect    the gateway answers, the primary is healthy, no fault or bypass is already on
 *   pre-check  the bypass path answers (bypass on, 3 requests, bypass off)
 *   baseline   steady load for --warmup seconds: p95, success rate, cost before anything breaks
 *   fault      the fault goes on the primary while the load keeps running, for --duration
 *   rollback   the fault off, cooldowns cleared, wait for health green and for the primary to
 *              serve the load again
 *   verify     10 requests through the bypass path and 10 through the router, compared
 *   close out  evaluate, store, write the reports, print the three-line summary
 *
 * Whatever happens after the fault went on — a failed step, Ctrl-C, SIGTERM — the run goes
 * through the rollback before it returns: R->fault_on and R->bypass_on say what is left to undo.
 */
#include "drill_int.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#define ADMIN_TIMEOUT_MS 10000
#define PRECHECK_REQUESTS 3
#define VERIFY_REQUESTS 10

/* ---- setup from the config ---- */

static int setup(const struct sg_drill_options *o, struct sg_drill_result *r, char *err, size_t n)
{
    const struct sg_config *cfg = o->cfg;
    if (!cfg->n_groups) {
        snprintf(err, n, "the config has no model_list entry to drill");
        return SG_EINVAL;
    }
    const struct sg_group *g =
        o->alias ? sg_config_group(cfg, o->alias, strlen(o->alias)) : &cfg->groups[0];
    if (!g) {
        snprintf(err, n, "no model_name '%s' in %s; the first is '%s'", o->alias, cfg->path,
                 cfg->groups[0].alias);
        return SG_EINVAL;
    }
    if (g->n < 2) {
        snprintf(err, n,
                 "'%s' has a single deployment: there is nothing to fail over to; add a "
                 "second provider to it first",
                 g->alias);
        return SG_EINVAL;
    }
    /* The primary: the first deployment of the lowest order, as the router would pick it
     * when nothing is pinned and weights tie. */
    const struct sg_deployment *p = g->deployments[0];
    for (size_t i = 1; i < g->n; i++)
        if (g->deployments[i]->order < p->order)
            p = g->deployments[i];
    snprintf(r->alias, sizeof r->alias, "%s", g->alias);
    snprintf(r->primary, sizeof r->primary, "%s", p->id);
    size_t len = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->deployments[i] == p || len + 1 >= sizeof r->secondaries)
            continue;
        int w = snprintf(r->secondaries + len, sizeof r->secondaries - len, "%s%s", len ? ", " : "",
                         g->deployments[i]->id);
        if (w > 0)
            len = SG_MIN(len + (size_t)w, sizeof r->secondaries - 1);
    }
    r->target_failover_s = cfg->drill.failover_target_s;
    r->target_min_sr_pct = cfg->drill.min_success_during_failover;
    return SG_OK;
}

void sg_drill_result_meta(struct sg_drill_result *r, const struct sg_drill_options *o)
{
    r->started_wall_ms = sg_wall_ms();
    sg_format_utc(r->started_wall_ms, r->started_at, sizeof r->started_at);
    snprintf(r->date, sizeof r->date, "%.10s", r->started_at);
    const struct sg_service_settings *svc = o->cfg ? &o->cfg->service : NULL;
    if (svc)
        snprintf(r->service, sizeof r->service, "%s", svc->name);
    /* The process's TZ is the service's zone (sg_drill_from_config). */
    r->started_local[0] = '\0';
    time_t t = (time_t)(r->started_wall_ms / 1000);
    struct tm tm;
    char local[40];
    if (svc && strcmp(svc->timezone, "UTC") != 0 && localtime_r(&t, &tm) &&
        strftime(local, sizeof local, "%Y-%m-%d %H:%M %Z", &tm))
        snprintf(r->started_local, sizeof r->started_local, "%s (%s)", local, svc->timezone);
    snprintf(r->gateway, sizeof r->gateway, "%s", o->gateway_url);
    r->rps = o->rps;
    r->demo = o->demo;
}

/* ---- the load's callback: keep the sample, note the firsts in the timeline ---- */

static void on_load_sample(void *ud, const struct sg_drill_sample *s)
{
    struct sg_drill_run *R = ud;
    struct sg_drill_result *r = R->res;
    sg_drill_run_keep(R, s);
    double end = s->t_send_ms + s->total_ms;
    if (r->t_inject_ms >= 0 && R->fault_on && !R->seen_failure && !s->ok) {
        R->seen_failure = true;
        sg_drill_run_event(R, "first failed request since the injection: %s", s->error);
    }
    if (r->t_inject_ms >= 0 && !R->seen_failover && s->ok && end >= r->t_inject_ms &&
        s->deployment[0] && strcmp(s->deployment, r->primary) != 0) {
        R->seen_failover = true;
        sg_drill_run_event(R,
                           "first answer served by %s, %.3fs after the injection (attempts %d, "
                           "hops %d)",
                           s->deployment, (end - r->t_inject_ms) / 1000, s->attempts, s->hops);
    }
    if (s->phase == SG_DRILL_PH_RECOVERY && s->ok && r->t_rollback_ms >= 0 &&
        s->t_send_ms >= r->t_rollback_ms && strcmp(s->deployment, r->primary) == 0 &&
        !R->primary_back) {
        R->primary_back = true;
        r->t_primary_back_ms = end;
    }
}

/* ---- steps ---- */

static void abort_run(struct sg_drill_run *R, const char *why)
{
    R->res->aborted = true;
    sg_drill_copy(R->res->abort_reason, sizeof R->res->abort_reason, why);
    sg_drill_run_event(R, "stopping: %s", why);
}

/* 0 to go on, SG_DRILL_EXIT_USAGE when the gateway refused the key or does not know the
 * primary (the config or the key is wrong), SG_DRILL_EXIT_FAILED when it cannot be drilled now. */
static int connect_check(struct sg_drill_run *R)
{
    struct sg_drill_result *r = R->res;
    struct sg_drill_gw_state st;
    sg_drill_run_state(R, &st);
    char why[640];
    if (st.status == 401 || st.status == 403) {
        fprintf(stderr,
                "slogate drill: the gateway at %s refused the master key (HTTP %d); "
                "set general_settings.master_key or SLOGATE_MASTER_KEY to its key\n",
                r->gateway, st.status);
        return SG_DRILL_EXIT_USAGE;
    }
    if (st.status != 200) {
        snprintf(why, sizeof why, "the gateway at %s did not answer GET /admin/deployments: %s",
                 r->gateway, st.error);
        abort_run(R, why);
        return SG_DRILL_EXIT_FAILED;
    }
    const char *ps = sg_drill_gw_dep_state(&st, r->primary);
    if (!ps) {
        fprintf(stderr,
                "slogate drill: the gateway at %s has no deployment '%s': run the drill "
                "with the config the gateway serves\n",
                r->gateway, r->primary);
        return SG_DRILL_EXIT_USAGE;
    }
    if (st.bypass) {
        abort_run(R, "the router bypass is already on: someone is using the one-switch path; "
                     "turn it off (POST /admin/bypass {\"enabled\": false}) before drilling");
        return SG_DRILL_EXIT_FAILED;
    }
    if (st.faults[0]) {
        snprintf(why, sizeof why,
                 "drill faults are already on (%s): undo them with DELETE "
                 "/admin/faults first",
                 st.faults);
        abort_run(R, why);
        return SG_DRILL_EXIT_FAILED;
    }
    char states[400];
    size_t len = 0;
    states[0] = '\0';
    for (size_t i = 0; i < st.n; i++) {
        if (strcmp(st.d[i].alias, r->alias) != 0)
            continue;
        int w = snprintf(states + len, sizeof states - len, "%s%s %s%s", len ? ", " : "",
                         st.d[i].id, st.d[i].state, st.d[i].pinned ? " (pinned)" : "");
        if (w > 0)
            len = SG_MIN(len + (size_t)w, sizeof states - 1);
        if (st.d[i].pinned)
            sg_drill_followup(r,
                              "%s was pinned during the drill: a pin changes which deployment "
                              "serves; drill without pins to test the router's own choice.",
                              st.d[i].id);
    }
    sg_drill_run_event(R, "gateway %s answers; %s: %s", r->gateway, r->alias, states);
    for (size_t i = 0; i < st.n; i++)
        if (strcmp(st.d[i].alias, r->alias) == 0 && strcmp(st.d[i].id, r->primary) != 0 &&
            strcmp(st.d[i].state, "healthy") != 0)
            sg_drill_run_event(R, "warning: %s is %s before the drill: failover to it may fail",
                               st.d[i].id, st.d[i].state);
    if (strcmp(ps, "healthy") != 0) {
        snprintf(why, sizeof why,
                 "the primary %s is %s before the drill: wait until it is "
                 "healthy (GET /admin/deployments)",
                 r->primary, ps);
        abort_run(R, why);
        return SG_DRILL_EXIT_FAILED;
    }
    return 0;
}

static void precheck(struct sg_drill_run *R)
{
    struct sg_drill_result *r = R->res;
    sg_drill_run_phase(R, "pre-check: the bypass path answers", 0);
    if (!sg_drill_run_bypass(R, true)) {
        snprintf(r->precheck_note, sizeof r->precheck_note, "%s",
                 R->bypass_on ? "POST /admin/bypass got no answer: the bypass may have gone on "
                                "(the rollback turns it off)"
                              : "the gateway refused POST /admin/bypass");
        return;
    }
    sg_drill_run_event(R, "router bypass on");
    int ok = 0;
    char first_bad[200] = "";
    for (int i = 0; i < PRECHECK_REQUESTS && !R->stop; i++) {
        struct sg_drill_sample s;
        bool good = sg_drill_run_one(R, SG_DRILL_PH_PRECHECK, &s) && s.bypass &&
                    strcmp(s.deployment, r->primary) == 0;
        ok += good;
        if (!good && !first_bad[0])
            sg_drill_copy(first_bad, sizeof first_bad,
                          !s.ok       ? s.error
                          : !s.bypass ? "the answer did not come through the bypass"
                                      : "the bypass answer did not come from the primary");
    }
    bool off = sg_drill_run_bypass(R, false);
    if (off)
        sg_drill_run_event(R, "router bypass off");
    r->precheck_ok = ok == PRECHECK_REQUESTS && off;
    snprintf(r->precheck_note, sizeof r->precheck_note,
             "%d/%d requests through the bypass answered by %s%s%.150s%s", ok, PRECHECK_REQUESTS,
             r->primary, first_bad[0] ? "; " : "", first_bad,
             off ? "" : "; the bypass could not be turned off");
    sg_drill_run_event(R, "bypass pre-check: %s", r->precheck_note);
}

static void fault_body(const struct sg_drill_result *r, const struct sg_drill_options *o, bool on,
                       struct sg_buf *b)
{
    sg_buf_appends(b, "{\"deployment\":\"");
    sg_buf_append_json_str(b, r->primary, strlen(r->primary));
    sg_buf_appends(b, "\"");
    if (!on)
        sg_buf_appends(b, ",\"revoke_key\":false,\"block_egress\":false,\"ttft_ms\":0");
    else if (o->mode == SG_DRILL_REVOKE_KEY)
        sg_buf_appends(b, ",\"revoke_key\":true");
    else if (o->mode == SG_DRILL_BLOCK_EGRESS)
        sg_buf_appends(b, ",\"block_egress\":true");
    else
        sg_buf_appendf(b, ",\"ttft_ms\":%u", o->ttft_cap_ms);
    sg_buf_appends(b, "}");
}

/* Put the fault on or take it off. Putting it on may take effect without an answer saying so:
 * then R->fault_on stays set (the rollback takes it off) and the timeline says so; a refusal
 * (4xx) clears R->fault_on, since nothing went on. */
static bool set_fault(struct sg_drill_run *R, bool on, char *err, size_t n)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    fault_body(R->res, R->o, on, &b);
    bool ok = false;
    /* Undoing is worth a few tries: a fault left on is the one outcome a drill must avoid. */
    for (int attempt = 0; attempt < (on ? 1 : 3) && !ok; attempt++) {
        struct sg_drill_reply rep;
        int rc = sg_drill_admin(&R->c, "POST", "/admin/faults", b.data, ADMIN_TIMEOUT_MS, &rep);
        ok = rc == SG_OK && rep.status == 200;
        if (!ok)
            snprintf(err, n, "POST /admin/faults: %s",
                     rc != SG_OK     ? rep.error
                     : rep.body.data ? rep.body.data
                                     : "no body");
        if (!ok && on) {
            R->fault_on = sg_drill_reply_maybe_applied(rc, &rep);
            if (R->fault_on)
                sg_drill_run_unsure(R, "putting the fault on", rc, &rep);
        }
        sg_drill_reply_dispose(&rep);
        if (!ok && !on)
            sg_drill_run_wait(R, 500, false);
    }
    sg_buf_dispose(&b);
    return ok;
}

/* ---- /metrics ---- */

struct metrics {
    bool have;
    double ok_by_dep[SG_DRILL_MAX_DEPS], all;
};

static void metrics_snapshot(struct sg_drill_run *R, const char *const *deps, size_t n_deps,
                             struct metrics *m, char *note, size_t note_n)
{
    memset(m, 0, sizeof *m);
    struct sg_drill_reply rep;
    int rc = sg_drill_admin(&R->c, "GET", "/metrics", NULL, ADMIN_TIMEOUT_MS, &rep);
    if (rc != SG_OK || rep.status != 200 || !rep.body.data) {
        snprintf(note, note_n,
                 "unavailable: GET /metrics %s%d; the gateway does not export "
                 "Prometheus metrics yet, so only the drill's own numbers count",
                 rc != SG_OK ? "failed, " : "answered HTTP ", rc != SG_OK ? rc : rep.status);
        sg_drill_reply_dispose(&rep);
        return;
    }
    m->have = true;
    const char *all[] = {NULL};
    sg_drill_prom_sum(rep.body.data, rep.body.len, "slogate_requests_total", all, &m->all);
    for (size_t i = 0; i < n_deps && i < SG_DRILL_MAX_DEPS; i++) {
        const char *match[] = {"deployment", deps[i], "status_class", "2xx", NULL};
        sg_drill_prom_sum(rep.body.data, rep.body.len, "slogate_requests_total", match,
                          &m->ok_by_dep[i]);
    }
    sg_drill_reply_dispose(&rep);
}

/* The gateway counts every request, the drill only its own: the gateway's increase must be at
 * least the drill's, and equal on a gateway nobody else uses. */
static void metrics_compare(struct sg_drill_run *R, const char *const *deps, size_t n_deps,
                            const struct metrics *a, const struct metrics *b)
{
    struct sg_drill_result *r = R->res;
    size_t client_all = 0;
    for (size_t i = 0; i < r->n_samples; i++) {
        uint8_t ph = r->samples[i].phase;
        client_all +=
            ph == SG_DRILL_PH_BASELINE || ph == SG_DRILL_PH_FAULT || ph == SG_DRILL_PH_RECOVERY;
    }
    size_t len = 0;
    char *note = r->metrics_note;
    size_t nn = sizeof r->metrics_note;
    bool agree = b->all - a->all >= (double)client_all - 0.5;
    int w = snprintf(note, nn, "slogate_requests_total rose by %.0f, the drill sent %zu",
                     b->all - a->all, client_all);
    len = w > 0 ? SG_MIN((size_t)w, nn - 1) : 0;
    for (size_t i = 0; i < n_deps && i < SG_DRILL_MAX_DEPS; i++) {
        size_t client = 0;
        for (size_t j = 0; j < r->n_samples; j++) {
            const struct sg_drill_sample *s = &r->samples[j];
            client += s->ok && strcmp(s->deployment, deps[i]) == 0 &&
                      (s->phase == SG_DRILL_PH_BASELINE || s->phase == SG_DRILL_PH_FAULT ||
                       s->phase == SG_DRILL_PH_RECOVERY);
        }
        double d = b->ok_by_dep[i] - a->ok_by_dep[i];
        agree = agree && d >= (double)client - 0.5;
        w = snprintf(note + len, nn - len, "; 2xx from %s: gateway %.0f, drill %zu", deps[i], d,
                     client);
        if (w > 0)
            len = SG_MIN(len + (size_t)w, nn - 1);
    }
    r->metrics_state = agree ? 1 : 2;
    if (!agree && len + 1 < nn)
        snprintf(note + len, nn - len, " (the gateway counted fewer than the drill saw)");
    sg_drill_run_event(R, "metrics cross-check: %s", note);
}

/* ---- rollback ---- */

static bool alias_green(const struct sg_drill_gw_state *st, const char *alias)
{
    if (st->status != 200 || st->faults[0] || st->bypass)
        return false;
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->d[i].alias, alias) == 0 && strcmp(st->d[i].state, "healthy") != 0)
            return false;
    return true;
}

/* Undo everything. `full`: the run was not interrupted, so also wait for health green and for
 * the primary to serve the (still running) load again. */
static void rollback(struct sg_drill_run *R, bool full)
{
    struct sg_drill_result *r = R->res;
    const struct sg_drill_options *o = R->o;
    char err[300] = "";
    bool was_on = R->fault_on;
    sg_drill_run_phase(R, "rollback", 0);
    if (!full)
        sg_drill_load_stop(&R->load);
    if (was_on) {
        r->t_fault_end_ms = sg_drill_run_now(R);
        R->load.phase = SG_DRILL_PH_RECOVERY;
        if (set_fault(R, false, err, sizeof err)) {
            R->fault_on = false;
            r->t_rollback_ms = sg_drill_run_now(R);
            sg_drill_run_event(R, "fault removed from %s", r->primary);
        } else {
            sg_drill_run_event(R,
                               "COULD NOT REMOVE THE FAULT: %s; run DELETE /admin/faults "
                               "on the gateway now",
                               err);
            snprintf(r->rollback_note, sizeof r->rollback_note,
                     "the fault could not be removed: %.200s", err);
        }
    }
    if (R->bypass_on && sg_drill_run_bypass(R, false))
        sg_drill_run_event(R, "router bypass off");
    if (!was_on) {
        sg_drill_load_stop(&R->load);
        sg_drill_run_drain(R, full ? (double)R->c.timeout_ms : 2000.0);
        return;
    }
    struct sg_drill_reply rep;
    if (sg_drill_admin(&R->c, "POST", "/admin/deployments/clear-cooldowns", "{}", ADMIN_TIMEOUT_MS,
                       &rep) == SG_OK &&
        rep.status == 200)
        sg_drill_run_event(R, "cooldowns cleared");
    sg_drill_reply_dispose(&rep);
    if (full && !R->fault_on) {
        sg_drill_run_phase(R, "rollback: waiting for health green", o->recovery_wait_s * 1000.0);
        double until = sg_drill_run_now(R) + o->recovery_wait_s * 1000.0;
        struct sg_drill_gw_state st;
        bool green = false;
        while (!green && !R->stop && sg_drill_run_now(R) < until) {
            sg_drill_run_state(R, &st);
            green = alias_green(&st, r->alias);
            if (!green)
                sg_drill_run_wait(R, 250, true);
        }
        if (green) {
            r->t_green_ms = sg_drill_run_now(R);
            sg_drill_run_event(R,
                               "health green: every deployment of %s healthy, no fault, "
                               "bypass off",
                               r->alias);
            sg_drill_run_phase(R, "rollback: waiting for the primary to serve", 0);
            double left = until - sg_drill_run_now(R);
            if (sg_drill_run_wait_flag(R, &R->primary_back, SG_MAX(left, 2000.0), true)) {
                sg_drill_run_event(R, "%s serves the load again", r->primary);
                /* A little more load, so the recovery phase has numbers of its own. */
                double settle = SG_MIN(5000.0, o->warmup_s * 1000.0);
                sg_drill_run_phase(R, "recovery: load on the mended primary", settle);
                sg_drill_run_wait(R, settle, true);
            }
        }
        r->rollback_ok = green && R->primary_back;
        if (!r->rollback_ok && !r->rollback_note[0])
            snprintf(r->rollback_note, sizeof r->rollback_note,
                     !green ? "health was not green within %us after the rollback"
                            : "the primary did not serve again within %us",
                     o->recovery_wait_s);
        else if (r->rollback_ok)
            snprintf(r->rollback_note, sizeof r->rollback_note,
                     "fault removed, cooldowns cleared, health green %.2fs and the primary "
                     "serving %.2fs after the rollback",
                     (r->t_green_ms - r->t_rollback_ms) / 1000,
                     (r->t_primary_back_ms - r->t_rollback_ms) / 1000);
    }
    sg_drill_load_stop(&R->load);
    /* Interrupted: answers still out are not waited for long (they are cancelled). */
    sg_drill_run_drain(R, full ? (double)R->c.timeout_ms : 2000.0);
}

/* ---- verify ---- */

static void verify(struct sg_drill_run *R)
{
    struct sg_drill_result *r = R->res;
    sg_drill_run_phase(R, "verify: bypass path vs router path", 0);
    r->verify_ran = true;
    struct sg_drill_sample s[2][VERIFY_REQUESTS];
    int ok[2] = {0, 0};
    memset(s, 0, sizeof s);
    if (!sg_drill_run_bypass(R, true)) {
        snprintf(r->verify_note, sizeof r->verify_note, "%s",
                 R->bypass_on ? "the bypass may have gone on but did not answer (turned off "
                                "again)"
                              : "the bypass could not be turned on");
        return;
    }
    R->load.phase = SG_DRILL_PH_VERIFY_BYPASS; /* the load is stopped: this is for the display */
    for (int i = 0; i < VERIFY_REQUESTS && !R->stop; i++)
        ok[0] += sg_drill_run_one(R, SG_DRILL_PH_VERIFY_BYPASS, &s[0][i]) && s[0][i].bypass;
    sg_drill_run_bypass(R, false);
    R->load.phase = SG_DRILL_PH_VERIFY_ROUTER;
    for (int i = 0; i < VERIFY_REQUESTS && !R->stop; i++)
        ok[1] += sg_drill_run_one(R, SG_DRILL_PH_VERIFY_ROUTER, &s[1][i]) && !s[1][i].bypass;
    /* Parity: every answer succeeded, all have one shape, and both paths name one family. */
    const char *shape = NULL, *why = NULL;
    char fam[2][64] = {"", ""}, f[64], shape_why[220];
    for (int p = 0; p < 2; p++) {
        for (int i = 0; i < VERIFY_REQUESTS; i++) {
            if (!s[p][i].ok)
                continue;
            if (!shape)
                shape = s[p][i].shape;
            else if (strcmp(shape, s[p][i].shape) != 0 && !why) {
                snprintf(shape_why, sizeof shape_why, "the answers differ in shape: %.90s vs %.90s",
                         shape, s[p][i].shape);
                why = shape_why;
            }
            sg_drill_model_family(s[p][i].model, f, sizeof f);
            if (!fam[p][0])
                snprintf(fam[p], sizeof fam[p], "%s", f);
            else if (strcmp(fam[p], f) != 0 && !why)
                why = "one path answered with two model families";
        }
    }
    if (!why && strcmp(fam[0], fam[1]) != 0)
        why = "the two paths answered with different model families";
    if (!why && (ok[0] != VERIFY_REQUESTS || ok[1] != VERIFY_REQUESTS))
        why = "not every request succeeded";
    r->verify_ok = !why && !R->stop;
    char fams[200];
    if (strcmp(fam[0], fam[1]) == 0)
        snprintf(fams, sizeof fams, "model family %s on both paths", fam[0][0] ? fam[0] : "-");
    else
        snprintf(fams, sizeof fams, "model family %s (bypass) vs %s (router)",
                 fam[0][0] ? fam[0] : "-", fam[1][0] ? fam[1] : "-");
    snprintf(r->verify_note, sizeof r->verify_note,
             "%d/%d through the bypass, %d/%d through the router succeeded; %s; %s", ok[0],
             VERIFY_REQUESTS, ok[1], VERIFY_REQUESTS, fams,
             why ? why : "every answer has the same shape");
    sg_drill_run_event(R, "verify: %s", r->verify_note);
}

/* ---- the run ---- */

static int phases(struct sg_drill_run *R)
{
    struct sg_drill_result *r = R->res;
    const struct sg_drill_options *o = R->o;
    const char *deps[SG_DRILL_MAX_DEPS];
    size_t n_deps = 0;
    struct metrics m0 = {0}, m1 = {0};
    const struct sg_group *g = sg_config_group(o->cfg, r->alias, strlen(r->alias));
    for (size_t i = 0; g && i < g->n && n_deps < SG_DRILL_MAX_DEPS; i++)
        deps[n_deps++] = g->deployments[i]->id;

    sg_drill_run_phase(R, "connecting", 0);
    int code = connect_check(R);
    if (code)
        return code;
    if (R->stop || r->aborted)
        goto out;
    precheck(R);
    if (R->stop)
        goto out;
    if (!r->precheck_ok) {
        abort_run(R, "the bypass pre-check failed, so the one-switch rollback path is not "
                     "proven; nothing was broken");
        goto out;
    }
    metrics_snapshot(R, deps, n_deps, &m0, r->metrics_note, sizeof r->metrics_note);

    char title[96];
    snprintf(title, sizeof title, "baseline: warm-up at %g requests/s", o->rps);
    sg_drill_run_phase(R, title, o->warmup_s * 1000.0);
    sg_drill_run_event(R, "baseline load started: %g requests/s%s for %us", o->rps,
                       r->stream ? " (streaming)" : "", o->warmup_s);
    sg_drill_load_start(&R->load, SG_DRILL_PH_BASELINE);
    sg_drill_run_wait(R, o->warmup_s * 1000.0, true);
    if (R->stop)
        goto out;
    sg_drill_stats_compute(r->samples, r->n_samples, SG_DRILL_PH_BASELINE, &r->baseline);
    sg_drill_run_event(R, "baseline: %zu requests, SR %.1f%%, p95 %.3fs", r->baseline.n,
                       r->baseline.sr_pct, r->baseline.p95_ms / 1000);

    snprintf(title, sizeof title, "fault: %s on %s", r->mode, r->primary);
    sg_drill_run_phase(R, title, o->duration_s * 1000.0);
    R->load.phase = SG_DRILL_PH_FAULT;
    r->t_inject_ms = sg_drill_run_now(R);
    R->fault_on = true; /* from here on, the rollback must undo it, whatever the answer */
    char err[300];
    if (!set_fault(R, true, err, sizeof err)) {
        abort_run(R, err);
        goto out;
    }
    if (o->mode == SG_DRILL_TTFT)
        sg_drill_run_event(R, "fault on: %s's time to first token capped at %u ms", r->primary,
                           o->ttft_cap_ms);
    else
        sg_drill_run_event(R, "fault on: %s on %s", r->mode, r->primary);
    sg_drill_run_wait(R, o->duration_s * 1000.0, true);
out:
    rollback(R, !R->stop && !r->aborted);
    if (R->stop) {
        r->interrupted = true;
        return 0;
    }
    if (r->aborted)
        return 0;
    if (R->fault_on) {
        /* The gateway did not take the fault off (down, or refusing): its numbers and a
         * verification through it would only add minutes of timeouts. */
        snprintf(r->verify_note, sizeof r->verify_note, "not run: the fault could not be removed");
        return 0;
    }
    if (m0.have) {
        sg_drill_run_wait(R, 200, false); /* the gateway records a request after answering it */
        metrics_snapshot(R, deps, n_deps, &m1, r->metrics_note, sizeof r->metrics_note);
        if (m1.have)
            metrics_compare(R, deps, n_deps, &m0, &m1);
    } else {
        sg_drill_run_event(R, "metrics cross-check %s", r->metrics_note);
    }
    verify(R);
    if (R->bypass_on)
        sg_drill_run_bypass(R, false);
    if (R->stop)
        r->interrupted = true;
    return 0;
}

static void print_summary(FILE *out, const struct sg_drill_result *r, const char *md)
{
    fprintf(out, "\n%s\n%s\n%s\n", r->summary[0], r->summary[1], r->summary[2]);
    if (md && md[0])
        fprintf(out, "report: %s\n", md);
    fflush(out);
}

int sg_drill_finish(struct sg_drill_run *R, const struct sg_drill_options *o,
                    struct sg_drill_result *r, bool trial)
{
    r->elapsed_ms = sg_drill_run_now(R);
    sg_drill_run_left_on(R);
    /* Reserved by sg_drill_run_init, before anything was changed. */
    const char *dir = R->out_dir;
    char base[160], md[1400] = "", err[400];
    snprintf(base, sizeof base, "%s", R->report_base);
    snprintf(md, sizeof md, "%s/%s.md", dir, base);
    sg_drill_run_dispose(R);
    if (trial)
        sg_trial_evaluate(r);
    else
        sg_drill_evaluate(r);
    for (size_t i = 0; i < r->n_left_on; i++)
        fprintf(stderr, "slogate %s: STILL ON at the gateway: %s\n", r->kind, r->left_on[i]);
    /* Stored before the files are written, so the files can say where it went. */
    if (o->demo)
        snprintf(r->store_note, sizeof r->store_note, "not stored: a --demo run");
    else
        sg_drill_store(o->cfg, r, md);
    if (sg_drill_write_reports(r, dir, base, err, sizeof err) != SG_OK) {
        fprintf(stderr, "slogate %s: %s\n", r->kind, err);
        md[0] = '\0';
    }
    FILE *out = o->out ? o->out : stdout;
    print_summary(out, r, md);
    return r->passed ? SG_DRILL_EXIT_OK : SG_DRILL_EXIT_FAILED;
}

int sg_drill_run(const struct sg_drill_options *o, struct sg_drill_result *res)
{
    struct sg_drill_result local, *r = res ? res : &local;
    sg_drill_result_init(r, "drill");
    sg_drill_result_meta(r, o);
    snprintf(r->mode, sizeof r->mode, "%s", sg_drill_mode_name(o->mode));
    r->ttft_cap_ms = o->mode == SG_DRILL_TTFT ? o->ttft_cap_ms : 0;
    r->warmup_s = o->warmup_s;
    r->duration_s = o->duration_s;
    /* A TTFT cap bites on the first token: measure streams, as the clients it protects use. */
    r->stream = o->stream || o->mode == SG_DRILL_TTFT;
    struct sg_drill_run R;
    if (sg_drill_run_init(&R, o, r, setup, "drill") != SG_OK) {
        if (!res)
            sg_drill_result_dispose(r);
        return SG_DRILL_EXIT_USAGE;
    }
    R.load.cb = on_load_sample;
    fprintf(R.out, "slogate drill: %s on %s (%s) via %s; Ctrl-C rolls back and stops\n", r->mode,
            r->primary, r->alias, r->gateway);
    int code = phases(&R);
    if (code == SG_DRILL_EXIT_USAGE) {
        sg_drill_run_unreserve(&R);
        sg_drill_run_dispose(&R);
        if (!res)
            sg_drill_result_dispose(r);
        return code;
    }
    code = sg_drill_finish(&R, o, r, false);
    if (!res)
        sg_drill_result_dispose(r);
    return code;
}
