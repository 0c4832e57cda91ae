/*
 * What a drill and a trial share: their own uv loop on the calling thread, SIGINT/SIGTERM
 * turned into a flag the phases check (so every exit goes through the rollback), waits that
 * keep the loop running, the live display, and the timeline.
 *
 * The phases are straight-line code that runs the loop between steps (sg_drill_run_wait,
 * sg_drill_admin); nothing here calls uv_run from inside a loop callback.
 *
 * Display: on a terminal a block of three lines (phase and clock, load numbers, who served) is
 * redrawn four times a second with ANSI cursor movement; timeline lines are printed above it as
 * they happen. Otherwise a plain log: timeline lines, and a progress line every 5 s.
 */
#include "drill_int.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define UI_EVERY_MS 250
#define PROGRESS_EVERY_MS 5000.0

double sg_drill_run_now(const struct sg_drill_run *R)
{
    return (double)(sg_now_us() - R->t0_us) / 1000.0;
}

/* Live numbers over the samples of the current load phase. */
struct live {
    size_t n, ok;
    double p95_ms;
    struct sg_drill_stats st;
};

static void live_numbers(struct sg_drill_run *R, struct live *lv)
{
    memset(lv, 0, sizeof *lv);
    const struct sg_drill_result *r = R->res;
    sg_drill_stats_compute(r->samples, r->n_samples, (int)R->load.phase, &lv->st);
    lv->n = lv->st.n;
    lv->ok = lv->st.ok;
    lv->p95_ms = lv->st.p95_ms;
}

static void served_text(const struct sg_drill_stats *st, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < st->n_served && len + 1 < n; i++) {
        int w = snprintf(out + len, n - len, "%s%s %zu", i ? ", " : "", st->served[i].id,
                         st->served[i].n);
        if (w < 0)
            break;
        len = SG_MIN(len + (size_t)w, n - 1);
    }
    if (!len)
        snprintf(out, n, "-");
}

void sg_drill_run_clear_ui(struct sg_drill_run *R)
{
    if (!R->tty || !R->ui_lines)
        return;
    /* Up to the block's first line, then clear to the end of the screen. */
    fprintf(R->out, "\r\x1b[%dA\x1b[J", R->ui_lines);
    R->ui_lines = 0;
    fflush(R->out);
}

/* Terminal width: a block line that wrapped would take two rows and break the redraw. */
static size_t term_cols(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void draw_ui(struct sg_drill_run *R)
{
    struct live lv;
    live_numbers(R, &lv);
    double now = sg_drill_run_now(R), in_phase = now - R->phase_start_ms;
    char served[160], clock[64], line[3][512];
    served_text(&lv.st, served, sizeof served);
    if (R->phase_len_ms > 0)
        snprintf(clock, sizeof clock, "%5.1fs / %.0fs", in_phase / 1000, R->phase_len_ms / 1000);
    else
        snprintf(clock, sizeof clock, "%5.1fs", in_phase / 1000);
    snprintf(line[0], sizeof line[0], "%-44s %s   elapsed %.1fs", R->phase, clock, now / 1000);
    snprintf(line[1], sizeof line[1],
             "  %s: %zu answered, %zu ok, %zu failed (SR %.1f%%), p95 %.3fs, in flight %zu",
             sg_drill_phase_name(R->load.phase), lv.n, lv.ok, lv.n - lv.ok,
             lv.n ? 100.0 * (double)lv.ok / (double)lv.n : 0.0, lv.p95_ms / 1000, R->c.in_flight);
    snprintf(line[2], sizeof line[2], "  served by: %s%s%s", served,
             R->last_line[0] ? "   last: " : "", R->last_line);
    size_t cols = term_cols(R->out) - 1;
    for (int i = 0; i < 3; i++)
        if (strlen(line[i]) > cols)
            line[i][cols] = '\0';
    sg_drill_run_clear_ui(R);
    fprintf(R->out, "\x1b[1m%s\x1b[0m\n%s\n%s\n", line[0], line[1], line[2]);
    R->ui_lines = 3;
    fflush(R->out);
}

static void on_ui(uv_timer_t *t)
{
    struct sg_drill_run *R = t->data;
    if (R->tty) {
        draw_ui(R);
        return;
    }
    double now = sg_drill_run_now(R);
    if (!R->load.running || now - R->last_progress_ms < PROGRESS_EVERY_MS)
        return;
    R->last_progress_ms = now;
    struct live lv;
    live_numbers(R, &lv);
    char served[160];
    served_text(&lv.st, served, sizeof served);
    fprintf(R->out, "[%7.2fs] %s: %zu answered, SR %.1f%%, p95 %.3fs; served by %s\n", now / 1000,
            sg_drill_phase_name(R->load.phase), lv.n,
            lv.n ? 100.0 * (double)lv.ok / (double)lv.n : 0.0, lv.p95_ms / 1000, served);
    fflush(R->out);
}

void sg_drill_run_event(struct sg_drill_run *R, const char *fmt, ...)
{
    char text[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    double now = sg_drill_run_now(R);
    sg_drill_event_add(R->res, now, "%s", text);
    sg_drill_run_clear_ui(R);
    fprintf(R->out, "[%7.2fs] %s\n", now / 1000, text);
    fflush(R->out);
    if (R->tty && R->ui_lines == 0 && uv_is_active((uv_handle_t *)&R->ui))
        draw_ui(R);
}

void sg_drill_run_phase(struct sg_drill_run *R, const char *name, double len_ms)
{
    snprintf(R->phase, sizeof R->phase, "%s", name);
    R->phase_start_ms = sg_drill_run_now(R);
    R->phase_len_ms = len_ms;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct sg_drill_run *R = s->data;
    R->signals++;
    R->stop = true;
    sg_drill_run_clear_ui(R);
    if (R->signals == 1) {
        fprintf(R->out,
                "\n%s: rolling back (faults off, bypass off) before exiting; "
                "Ctrl-C twice more abandons the rollback\n",
                signum == SIGINT ? "interrupted" : "terminated");
    } else if (R->signals >= 3) {
        /* The operator insists: leave now, and say what may be left behind. */
        fprintf(stderr, "slogate: rollback abandoned; check GET /admin/faults and "
                        "/admin/bypass on the gateway\n");
        _exit(1);
    }
    fflush(R->out);
}

static void on_keep(void *ud, const struct sg_drill_sample *s)
{
    sg_drill_run_keep(ud, s);
}

static void on_wake(uv_timer_t *t)
{
    SG_UNUSED(t); /* only ends a uv_run(UV_RUN_ONCE) */
}

static int run_open(struct sg_drill_run *R, const struct sg_drill_options *o,
                    struct sg_drill_result *res, char *err, size_t err_len)
{
    memset(R, 0, sizeof *R);
    R->o = o;
    R->res = res;
    R->out = o->out ? o->out : stdout;
    R->tty = o->tty;
    R->t0_us = sg_now_us();
    int n = sg_drill_prompts_load(o->prompts_file, &R->prompts, err, err_len);
    if (n < 0)
        return n;
    R->n_prompts = (size_t)n;
    uv_loop_init(&R->loop);
    int rc = sg_drill_client_init(&R->c, &R->loop, o->gateway_url, o->master_key, o->feature,
                                  o->cfg, R->t0_us, err, err_len);
    if (rc != SG_OK) {
        uv_loop_close(&R->loop);
        sg_drill_prompts_free(R->prompts, R->n_prompts);
        return rc;
    }
    sg_drill_load_init(&R->load, &R->c, res->alias, R->prompts, R->n_prompts, res->stream, o->rps,
                       on_keep, R);
    uv_signal_init(&R->loop, &R->sigint);
    uv_signal_init(&R->loop, &R->sigterm);
    R->sigint.data = R->sigterm.data = R;
    uv_signal_start(&R->sigint, on_signal, SIGINT);
    uv_signal_start(&R->sigterm, on_signal, SIGTERM);
    uv_timer_init(&R->loop, &R->wake);
    uv_timer_init(&R->loop, &R->ui);
    R->ui.data = R;
    uv_timer_start(&R->ui, on_ui, UI_EVERY_MS, UI_EVERY_MS);
    return SG_OK;
}

/* What both commands measure against: the SLO's targets, and the feature's cost cap when the
 * load runs as a feature (--feature). */
static int slo_targets(const struct sg_drill_options *o, struct sg_drill_result *r, char *err,
                       size_t n)
{
    const struct sg_config *cfg = o->cfg;
    if (o->feature) {
        const struct sg_feature *f = sg_config_feature(cfg, o->feature, strlen(o->feature));
        if (!f) {
            snprintf(err, n, "no feature '%s' under features: in %s", o->feature, cfg->path);
            return SG_EINVAL;
        }
        snprintf(r->feature, sizeof r->feature, "%s", f->name);
        r->target_cost_cap_usd = f->max_cost_per_request_usd;
    }
    r->target_p95_s = cfg->slo.p95_latency_s;
    r->target_sr_pct = cfg->slo.success_rate;
    r->target_cost_avg_usd = cfg->slo.cost_avg_usd;
    return SG_OK;
}

int sg_drill_run_init(struct sg_drill_run *R, const struct sg_drill_options *o,
                      struct sg_drill_result *res, sg_drill_setup_fn setup, const char *cmd)
{
    char err[400], base[160] = "";
    const char *dir = o->out_dir ? o->out_dir : ".";
    int rc = setup(o, res, err, sizeof err);
    rc = rc ? rc : slo_targets(o, res, err, sizeof err);
    /* Before anything is changed: a report that cannot be written is found out now, not after
     * the primary was broken for --duration. */
    rc = rc ? rc : sg_drill_report_base(res, dir, base, sizeof base, err, sizeof err);
    if (!rc) {
        rc = run_open(R, o, res, err, sizeof err);
        if (rc) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s.md", dir, base);
            unlink(path);
        } else {
            R->out_dir = dir;
            snprintf(R->report_base, sizeof R->report_base, "%s", base);
        }
    }
    if (rc)
        fprintf(stderr, "slogate %s: %s\n", cmd, err);
    return rc;
}

void sg_drill_run_unreserve(struct sg_drill_run *R)
{
    if (!R->report_base[0])
        return;
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.md", R->out_dir, R->report_base);
    unlink(path);
    R->report_base[0] = '\0';
}

void sg_drill_run_left_on(struct sg_drill_run *R)
{
    struct sg_drill_result *r = R->res;
    r->n_left_on = 0;
    if (R->fault_on)
        snprintf(r->left_on[r->n_left_on++], sizeof r->left_on[0],
                 "the %s fault on %s: the gateway did not confirm its removal; check GET "
                 "/admin/faults and run DELETE /admin/faults",
                 r->mode, r->primary);
    if (R->bypass_on)
        snprintf(r->left_on[r->n_left_on++], sizeof r->left_on[0],
                 "the router bypass: the gateway did not confirm it off; run POST /admin/bypass "
                 "{\"enabled\": false}");
    if (R->pinned)
        snprintf(r->left_on[r->n_left_on++], sizeof r->left_on[0],
                 "the pin on %s: the gateway did not confirm it undone; run POST "
                 "/admin/deployments/%s/%s",
                 r->primary, R->prev_pin[0] ? R->prev_pin : r->primary,
                 R->prev_pin[0] ? "pin" : "unpin");
}

static void on_closed(uv_handle_t *h)
{
    SG_UNUSED(h);
}

void sg_drill_run_dispose(struct sg_drill_run *R)
{
    sg_drill_run_clear_ui(R);
    R->res->load_skipped += R->load.skipped;
    sg_drill_load_dispose(&R->load);
    sg_drill_client_dispose(&R->c);
    uv_close((uv_handle_t *)&R->sigint, on_closed);
    uv_close((uv_handle_t *)&R->sigterm, on_closed);
    uv_close((uv_handle_t *)&R->wake, on_closed);
    uv_close((uv_handle_t *)&R->ui, on_closed);
    uv_run(&R->loop, UV_RUN_DEFAULT); /* every close callback, the upstream's included */
    uv_loop_close(&R->loop);
    sg_drill_prompts_free(R->prompts, R->n_prompts);
    R->prompts = NULL;
}

bool sg_drill_run_wait_flag(struct sg_drill_run *R, const bool *flag, double ms, bool stoppable)
{
    double end = sg_drill_run_now(R) + ms;
    while (!(flag && *flag) && !(stoppable && R->stop)) {
        double left = end - sg_drill_run_now(R);
        if (left <= 0)
            break;
        uv_timer_start(&R->wake, on_wake, (uint64_t)left + 1, 0);
        uv_run(&R->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&R->wake);
    return flag && *flag;
}

void sg_drill_run_wait(struct sg_drill_run *R, double ms, bool stoppable)
{
    sg_drill_run_wait_flag(R, NULL, ms, stoppable);
}

void sg_drill_run_drain(struct sg_drill_run *R, double ms)
{
    double end = sg_drill_run_now(R) + ms;
    while (R->c.in_flight && sg_drill_run_now(R) < end)
        sg_drill_run_wait(R, SG_MIN(50.0, end - sg_drill_run_now(R)), false);
}

void sg_drill_run_keep(struct sg_drill_run *R, const struct sg_drill_sample *s)
{
    *sg_drill_sample_add(R->res) = *s;
    snprintf(R->last_line, sizeof R->last_line, "%s %d %.3fs",
             s->deployment[0] ? s->deployment : "-", s->status, s->total_ms / 1000);
}

struct one {
    struct sg_drill_run *R;
    struct sg_drill_sample *out;
    bool done;
};

static void on_one(void *ud, const struct sg_drill_sample *s)
{
    struct one *w = ud;
    sg_drill_run_keep(w->R, s);
    *w->out = *s;
    w->done = true;
}

bool sg_drill_run_one(struct sg_drill_run *R, enum sg_drill_phase phase,
                      struct sg_drill_sample *out)
{
    struct one w = {R, out, false};
    sg_drill_chat(&R->c, R->res->alias, sg_drill_load_prompt(&R->load), false, phase, on_one, &w);
    /* Not stoppable: the answer is on its way and its struct lives on this stack. */
    sg_drill_run_wait_flag(R, &w.done, (double)R->c.timeout_ms + 1000, false);
    return w.done && out->ok;
}

void sg_drill_run_unsure(struct sg_drill_run *R, const char *what, int rc,
                         const struct sg_drill_reply *rep)
{
    char why[300];
    if (rc == SG_OK)
        snprintf(why, sizeof why, "was answered HTTP %d", rep->status);
    else
        snprintf(why, sizeof why, "got no answer (%s)", rep->error);
    sg_drill_run_event(R, "%s %s: the gateway may have applied it, so the rollback undoes it", what,
                       why);
}

bool sg_drill_run_bypass(struct sg_drill_run *R, bool on)
{
    struct sg_drill_reply rep;
    int rc = sg_drill_admin(&R->c, "POST", "/admin/bypass",
                            on ? "{\"enabled\":true}" : "{\"enabled\":false}", 10000, &rep);
    bool ok = rc == SG_OK && rep.status == 200;
    if (ok) {
        R->bypass_on = on;
    } else if (on && sg_drill_reply_maybe_applied(rc, &rep)) {
        R->bypass_on = true; /* it may be on: turned off with everything else */
        sg_drill_run_unsure(R, "turning the router bypass on", rc, &rep);
    } else {
        sg_drill_run_event(R, "could not turn the router bypass %s: %s", on ? "on" : "off",
                           rc == SG_OK ? (rep.body.data ? rep.body.data : "no body") : rep.error);
    }
    sg_drill_reply_dispose(&rep);
    return ok;
}

/* ---- the gateway's view ---- */

static const char *jget_str(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

static bool jget_true(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

void sg_drill_run_state(struct sg_drill_run *R, struct sg_drill_gw_state *st)
{
    struct sg_drill_reply rep;
    int rc = sg_drill_admin(&R->c, "GET", "/admin/deployments", NULL, 10000, &rep);
    sg_drill_gw_state_read(st, rc == SG_OK ? rep.status : 0, rep.body.data, rep.body.len,
                           rc == SG_OK ? NULL : rep.error);
    sg_drill_reply_dispose(&rep);
}

void sg_drill_gw_state_read(struct sg_drill_gw_state *st, int status, const char *body,
                            size_t body_len, const char *error)
{
    memset(st, 0, sizeof *st);
    st->status = status;
    struct json_object *o = NULL;
    if (status == 200 && body) {
        struct json_tokener *tok = json_tokener_new_ex(64);
        o = json_tokener_parse_ex(tok, body, (int)SG_MIN(body_len, (size_t)INT32_MAX));
        json_tokener_free(tok);
    }
    /* Only a list is read: json-c asserts on array calls made on anything else. */
    struct json_object *deps = NULL;
    if (!json_object_object_get_ex(o, "deployments", &deps) ||
        !json_object_is_type(deps, json_type_array))
        deps = NULL;
    if (st->status == 200 && !deps) {
        st->status = 0;
        snprintf(st->error, sizeof st->error,
                 "GET /admin/deployments did not answer with a "
                 "deployments list: is this a slogate gateway?");
    } else if (st->status != 200) {
        snprintf(st->error, sizeof st->error, "%s", error ? error : body ? body : "no body");
    }
    if (deps) {
        st->bypass = jget_true(o, "bypass");
        size_t len = 0;
        for (size_t i = 0; i < json_object_array_length(deps) && st->n < SG_DRILL_MAX_GW_DEPS;
             i++) {
            struct json_object *d = json_object_array_get_idx(deps, i), *f = NULL;
            if (!json_object_is_type(d, json_type_object))
                continue;
            snprintf(st->d[st->n].id, sizeof st->d[0].id, "%s", jget_str(d, "id"));
            snprintf(st->d[st->n].alias, sizeof st->d[0].alias, "%s", jget_str(d, "alias"));
            snprintf(st->d[st->n].state, sizeof st->d[0].state, "%s", jget_str(d, "state"));
            snprintf(st->d[st->n].reason, sizeof st->d[0].reason, "%s",
                     jget_str(d, "cooldown_reason"));
            st->d[st->n].pinned = jget_true(d, "pinned");
            if (json_object_object_get_ex(d, "faults", &f)) {
                struct json_object *t = NULL;
                st->d[st->n].fault =
                    jget_true(f, "revoke_key") || jget_true(f, "block_egress") ||
                    (json_object_object_get_ex(f, "ttft_ms", &t) && json_object_get_int(t) != 0);
            }
            if (st->d[st->n].fault && len + 1 < sizeof st->faults) {
                int w = snprintf(st->faults + len, sizeof st->faults - len, "%s%s", len ? ", " : "",
                                 st->d[st->n].id);
                if (w > 0)
                    len = SG_MIN(len + (size_t)w, sizeof st->faults - 1);
            }
            st->n++;
        }
    }
    json_object_put(o);
}

const char *sg_drill_gw_dep_state(const struct sg_drill_gw_state *st, const char *id)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->d[i].id, id) == 0)
            return st->d[i].state;
    return NULL;
}
