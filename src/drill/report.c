/*
 * Reports: a run's result as JSON (for machines, the store and the dashboard), markdown (for
 * the client and the on-call channel) and an SVG latency chart (linked from the markdown, since
 * markdown viewers strip inline SVG). Rendering is pure; only sg_drill_write_reports touches
 * the file system.
 */
#include "drill_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- JSON ---- */

static void jstr(struct sg_buf *b, const char *s)
{
    if (!s) {
        sg_buf_appends(b, "null");
        return;
    }
    sg_buf_append(b, "\"", 1);
    sg_buf_append_json_str(b, s, strlen(s));
    sg_buf_append(b, "\"", 1);
}

static void jnum(struct sg_buf *b, double x)
{
    if (!isfinite(x))
        sg_buf_appends(b, "null");
    else
        sg_buf_appendf(b, "%.6g", x);
}

static void jkey(struct sg_buf *b, const char *k, bool first)
{
    if (!first)
        sg_buf_append(b, ",", 1);
    jstr(b, k);
    sg_buf_append(b, ":", 1);
}

static void jbool(struct sg_buf *b, bool v)
{
    sg_buf_appends(b, v ? "true" : "false");
}

static void json_stats(struct sg_buf *b, const struct sg_drill_stats *st)
{
    sg_buf_appendf(b, "{\"requests\":%zu,\"ok\":%zu,\"failed\":%zu,\"success_rate\":", st->n,
                   st->ok, st->failed);
    jnum(b, st->sr_pct);
    jkey(b, "p50_s", false);
    jnum(b, st->p50_ms / 1000);
    jkey(b, "p95_s", false);
    jnum(b, st->p95_ms / 1000);
    jkey(b, "p99_s", false);
    jnum(b, st->p99_ms / 1000);
    jkey(b, "max_s", false);
    jnum(b, st->max_ms / 1000);
    jkey(b, "ttfb_p95_s", false);
    jnum(b, st->ttfb_p95_ms / 1000);
    jkey(b, "priced", false);
    sg_buf_appendf(b, "%zu", st->cost_n);
    jkey(b, "cost_avg_usd", false);
    if (st->cost_n)
        jnum(b, st->cost_avg_usd);
    else
        sg_buf_appends(b, "null");
    jkey(b, "cost_max_usd", false);
    if (st->cost_n)
        jnum(b, st->cost_max_usd);
    else
        sg_buf_appends(b, "null");
    jkey(b, "hops_avg", false);
    jnum(b, st->hops_avg);
    sg_buf_appendf(b, ",\"hops_max\":%d,\"attempts\":%zu,\"served_by\":{", st->hops_max,
                   st->attempts);
    for (size_t i = 0; i < st->n_served; i++) {
        jkey(b, st->served[i].id, i == 0);
        sg_buf_appendf(b, "%zu", st->served[i].n);
    }
    sg_buf_appends(b, "}}");
}

/* A time on the run's clock in seconds, or null when it never happened. */
static void jtime(struct sg_buf *b, double ms)
{
    if (ms < 0)
        sg_buf_appends(b, "null");
    else
        jnum(b, ms / 1000);
}

void sg_drill_render_json(const struct sg_drill_result *r, struct sg_buf *b)
{
    bool trial = strcmp(r->kind, "trial") == 0;
    sg_buf_appends(b, "{\"kind\":");
    jstr(b, r->kind);
    sg_buf_appends(b, ",\"format\":1,\"date\":");
    jstr(b, r->date);
    jkey(b, "started_at", false);
    jstr(b, r->started_at);
    jkey(b, "started_local", false);
    if (r->started_local[0])
        jstr(b, r->started_local);
    else
        sg_buf_appends(b, "null");
    jkey(b, "service", false);
    jstr(b, r->service);
    jkey(b, "elapsed_s", false);
    jnum(b, r->elapsed_ms / 1000);
    jkey(b, "gateway", false);
    jstr(b, r->gateway);
    jkey(b, "alias", false);
    jstr(b, r->alias);
    jkey(b, trial ? "candidate" : "primary", false);
    jstr(b, r->primary);
    if (!trial) {
        jkey(b, "secondaries", false);
        jstr(b, r->secondaries);
        jkey(b, "mode", false);
        jstr(b, r->mode);
        sg_buf_appendf(b, ",\"ttft_cap_ms\":%u,\"warmup_s\":%u,\"duration_s\":%u", r->ttft_cap_ms,
                       r->warmup_s, r->duration_s);
    } else {
        sg_buf_appendf(b, ",\"samples_wanted\":%u", r->samples_wanted);
    }
    jkey(b, "feature", false);
    jstr(b, r->feature[0] ? r->feature : NULL);
    jkey(b, "rps", false);
    jnum(b, r->rps);
    jkey(b, "stream", false);
    jbool(b, r->stream);
    jkey(b, "demo", false);
    jbool(b, r->demo);
    jkey(b, "passed", false);
    jbool(b, r->passed);
    jkey(b, "interrupted", false);
    jbool(b, r->interrupted);
    jkey(b, "aborted", false);
    jbool(b, r->aborted);
    jkey(b, "abort_reason", false);
    jstr(b, r->abort_reason[0] ? r->abort_reason : NULL);
    sg_buf_appends(b, ",\"summary\":[");
    for (int i = 0; i < 3; i++) {
        if (i)
            sg_buf_append(b, ",", 1);
        jstr(b, r->summary[i]);
    }
    sg_buf_appends(b, "],\"targets\":{\"p95_latency_s\":");
    jnum(b, r->target_p95_s);
    jkey(b, "success_rate", false);
    jnum(b, r->target_sr_pct);
    jkey(b, "cost_avg_usd", false);
    jnum(b, r->target_cost_avg_usd);
    if (!trial) {
        jkey(b, "failover_target_s", false);
        jnum(b, r->target_failover_s);
        jkey(b, "min_success_during_failover", false);
        jnum(b, r->target_min_sr_pct);
    }
    jkey(b, "max_cost_per_request_usd", false);
    if (r->target_cost_cap_usd > 0)
        jnum(b, r->target_cost_cap_usd);
    else
        sg_buf_appends(b, "null");
    sg_buf_appends(b, "}");
    if (!trial) {
        sg_buf_appends(b, ",\"measured\":{\"ttr_s\":");
        jtime(b, r->ttr_found ? r->ttr_ms : -1);
        jkey(b, "recovery_s", false);
        jtime(b, r->recovery_found ? r->recovery_ms : -1);
        jkey(b, "p95_s", false);
        jnum(b, r->fault.p95_ms / 1000);
        jkey(b, "success_rate", false);
        jnum(b, r->fault.sr_pct);
        jkey(b, "cost_avg_usd", false);
        if (r->fault.cost_n)
            jnum(b, r->fault.cost_avg_usd);
        else
            sg_buf_appends(b, "null");
        jkey(b, "hops_avg", false);
        jnum(b, r->fault.hops_avg);
        sg_buf_appends(b, "},\"times\":{\"inject_s\":");
        jtime(b, r->t_inject_ms);
        jkey(b, "fault_end_s", false);
        jtime(b, r->t_fault_end_ms);
        jkey(b, "rollback_s", false);
        jtime(b, r->t_rollback_ms);
        jkey(b, "green_s", false);
        jtime(b, r->t_green_ms);
        jkey(b, "primary_back_s", false);
        jtime(b, r->t_primary_back_ms);
        sg_buf_appends(b, "},\"phases\":{\"baseline\":");
        json_stats(b, &r->baseline);
        sg_buf_appends(b, ",\"fault\":");
        json_stats(b, &r->fault);
        sg_buf_appends(b, ",\"recovery\":");
        json_stats(b, &r->recovery);
        sg_buf_appends(b, "}");
    } else {
        sg_buf_appends(b, ",\"measured\":");
        json_stats(b, &r->trial);
    }
    struct sg_drill_stats all;
    sg_drill_stats_compute(r->samples, r->n_samples, -1, &all);
    sg_buf_appendf(b,
                   ",\"totals\":{\"requests\":%zu,\"ok\":%zu,\"attempts\":%zu,"
                   "\"load_skipped\":%zu,\"served_by\":{",
                   all.n, all.ok, all.attempts, r->load_skipped);
    for (size_t i = 0; i < all.n_served; i++) {
        jkey(b, all.served[i].id, i == 0);
        sg_buf_appendf(b, "%zu", all.served[i].n);
    }
    sg_buf_appends(b, "}},\"precheck\":{\"ok\":");
    jbool(b, r->precheck_ok);
    jkey(b, "note", false);
    jstr(b, r->precheck_note);
    sg_buf_appends(b, "},\"rollback\":{\"ok\":");
    jbool(b, r->rollback_ok);
    jkey(b, "note", false);
    jstr(b, r->rollback_note);
    sg_buf_appends(b, "},\"verify\":{\"ran\":");
    jbool(b, r->verify_ran);
    jkey(b, "ok", false);
    jbool(b, r->verify_ok);
    jkey(b, "note", false);
    jstr(b, r->verify_note);
    static const char *const mstate[] = {"unavailable", "agrees", "differs"};
    sg_buf_appends(b, "},\"metrics_crosscheck\":{\"state\":");
    jstr(b, mstate[r->metrics_state % 3]);
    jkey(b, "note", false);
    jstr(b, r->metrics_note);
    sg_buf_appends(b, "},\"fault_errors\":[");
    for (size_t i = 0; i < r->n_fault_errors; i++) {
        if (i)
            sg_buf_append(b, ",", 1);
        jstr(b, r->fault_errors[i]);
    }
    sg_buf_appends(b, "],\"checks\":[");
    for (size_t i = 0; i < r->n_checks; i++) {
        const struct sg_drill_check *c = &r->checks[i];
        sg_buf_appends(b, i ? ",{\"name\":" : "{\"name\":");
        jstr(b, c->name);
        jkey(b, "label", false);
        jstr(b, c->label);
        jkey(b, "target", false);
        jstr(b, c->target);
        jkey(b, "measured", false);
        jstr(b, c->measured);
        jkey(b, "ok", false);
        jbool(b, c->ok);
        jkey(b, "counted", false);
        jbool(b, c->counted);
        sg_buf_appends(b, "}");
    }
    sg_buf_appends(b, "],\"followups\":[");
    for (size_t i = 0; i < r->n_followups; i++) {
        if (i)
            sg_buf_append(b, ",", 1);
        jstr(b, r->followups[i]);
    }
    sg_buf_appends(b, "],\"timeline\":[");
    for (size_t i = 0; i < r->n_events; i++) {
        sg_buf_appends(b, i ? ",{\"t_s\":" : "{\"t_s\":");
        jnum(b, r->events[i].t_ms / 1000);
        jkey(b, "event", false);
        jstr(b, r->events[i].text);
        sg_buf_appends(b, "}");
    }
    sg_buf_appends(b, "],\"left_on\":[");
    for (size_t i = 0; i < r->n_left_on; i++) {
        if (i)
            sg_buf_append(b, ",", 1);
        jstr(b, r->left_on[i]);
    }
    sg_buf_appends(b, "],\"store\":");
    jstr(b, r->store_note[0] ? r->store_note : NULL);
    sg_buf_appends(b, ",\"requests\":[");
    for (size_t i = 0; i < r->n_samples; i++) {
        const struct sg_drill_sample *s = &r->samples[i];
        sg_buf_appends(b, i ? ",{\"t_s\":" : "{\"t_s\":");
        sg_buf_appendf(b, "%.3f,\"phase\":", s->t_send_ms / 1000);
        jstr(b, sg_drill_phase_name((enum sg_drill_phase)s->phase));
        sg_buf_appendf(b, ",\"ms\":%.1f,\"ttfb_ms\":%.1f,\"status\":%d,\"ok\":%s,\"deployment\":",
                       s->total_ms, s->ttfb_ms, s->status, s->ok ? "true" : "false");
        jstr(b, s->deployment[0] ? s->deployment : NULL);
        sg_buf_appendf(b, ",\"attempts\":%d,\"hops\":%d,\"bypass\":%s,\"cost_usd\":", s->attempts,
                       s->hops, s->bypass ? "true" : "false");
        if (s->cost_known)
            jnum(b, s->cost_usd);
        else
            sg_buf_appends(b, "null");
        if (!s->ok) {
            jkey(b, "error", false);
            jstr(b, s->error);
        }
        sg_buf_appends(b, "}");
    }
    sg_buf_appends(b, "]}\n");
}

/* ---- markdown ---- */

/* Text in a table cell or a list item: pipes and newlines would break the row, and HTML in a
 * quoted error ("<html><body>502 ...") would be rendered, or hidden, by the viewer. Only what
 * CommonMark would read as a tag or an entity is escaped, so "<= 10s" stays readable as text. */
static void md_cell(struct sg_buf *b, const char *s)
{
    for (; *s; s++) {
        char next = s[1];
        bool word = (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z');
        if (*s == '|')
            sg_buf_appends(b, "\\|");
        else if (*s == '<' && (word || next == '/' || next == '!' || next == '?'))
            sg_buf_appends(b, "&lt;");
        else if (*s == '&' && (word || next == '#'))
            sg_buf_appends(b, "&amp;");
        else if (*s == '\n' || *s == '\r')
            sg_buf_append(b, " ", 1);
        else
            sg_buf_append(b, s, 1);
    }
}

/* The longest run of backticks in `s`. */
static size_t backtick_run(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s; s++) {
        run = *s == '`' ? run + 1 : 0;
        best = SG_MAX(best, run);
    }
    return best;
}

/* An id or alias as inline code: delimited by more backticks than it holds (CommonMark has no
 * escapes inside code spans), padded when it starts or ends with one; newlines become blanks. */
static void md_code(struct sg_buf *b, const char *s)
{
    size_t n = backtick_run(s) + 1;
    bool pad = n > 1;
    for (size_t i = 0; i < n; i++)
        sg_buf_append(b, "`", 1);
    if (pad)
        sg_buf_append(b, " ", 1);
    for (; *s; s++)
        sg_buf_append(b, *s == '\n' || *s == '\r' ? " " : s, 1);
    if (pad)
        sg_buf_append(b, " ", 1);
    for (size_t i = 0; i < n; i++)
        sg_buf_append(b, "`", 1);
}

static void md_stats_row(struct sg_buf *b, const char *name, const struct sg_drill_stats *st)
{
    sg_buf_appendf(b, "| %s | %zu | %.1f%% | %.3f | %.3f | %.3f | ", name, st->n, st->sr_pct,
                   st->p50_ms / 1000, st->p95_ms / 1000, st->p99_ms / 1000);
    if (st->cost_n)
        sg_buf_appendf(b, "$%.6f", st->cost_avg_usd);
    else
        sg_buf_appends(b, "n/a");
    sg_buf_appendf(b, " | %.2f | ", st->hops_avg);
    for (size_t i = 0; i < st->n_served; i++) {
        if (i)
            sg_buf_appends(b, ", ");
        md_cell(b, st->served[i].id);
        sg_buf_appendf(b, " %zu", st->served[i].n);
    }
    if (!st->n_served)
        sg_buf_appends(b, "-");
    sg_buf_appends(b, " |\n");
}

void sg_drill_render_md(const struct sg_drill_result *r, const char *svg_name, struct sg_buf *b)
{
    bool trial = strcmp(r->kind, "trial") == 0;
    char started[sizeof r->started_at + sizeof r->started_local + 16];
    snprintf(started, sizeof started, "%s%s%s", r->started_at,
             r->started_local[0] ? ", that is " : "", r->started_local);
    sg_buf_appends(b, "# ");
    md_cell(b, r->service);
    sg_buf_appendf(b, ": %s, %s\n\n", trial ? "change trial" : "failover drill", r->date);
    /* The summary names the primary and the alias: a fence longer than any backtick run. */
    size_t fence = 3;
    for (int i = 0; i < 3; i++)
        fence = SG_MAX(fence, backtick_run(r->summary[i]) + 1);
    for (size_t i = 0; i < fence; i++)
        sg_buf_append(b, "`", 1);
    sg_buf_appends(b, "\n");
    for (int i = 0; i < 3; i++)
        sg_buf_appendf(b, "%s\n", r->summary[i]);
    for (size_t i = 0; i < fence; i++)
        sg_buf_append(b, "`", 1);
    sg_buf_appends(b, "\n\n");
    if (trial) {
        sg_buf_appends(b, "Candidate ");
        md_code(b, r->primary);
        sg_buf_appends(b, " of ");
        md_code(b, r->alias);
        sg_buf_appendf(b, ", %zu sample requests through gateway ", r->trial.n);
        md_cell(b, r->gateway);
        sg_buf_appendf(b, ", started %s%s.\n\n", started, r->demo ? " (demo: mock providers)" : "");
    } else {
        sg_buf_appendf(b, "Fault `%s` on the primary ", r->mode);
        md_code(b, r->primary);
        sg_buf_appends(b, " of ");
        md_code(b, r->alias);
        sg_buf_appends(b, " (fails over to ");
        md_cell(b, r->secondaries[0] ? r->secondaries : "none");
        sg_buf_appends(b, ") through gateway ");
        md_cell(b, r->gateway);
        sg_buf_appendf(b,
                       ", started %s%s. Load: %g requests/s%s, %us warm-up, %us under "
                       "fault.\n\n",
                       started, r->demo ? " (demo: mock providers)" : "", r->rps,
                       r->stream ? " (streaming)" : "", r->warmup_s, r->duration_s);
    }
    if (r->feature[0]) {
        sg_buf_appends(b, "Feature: ");
        md_code(b, r->feature);
        sg_buf_appends(b, ".\n\n");
    }
    if (r->n_left_on) {
        sg_buf_appends(b, "**Not rolled back.** The gateway did not confirm these undone; check "
                          "them now:\n\n");
        for (size_t i = 0; i < r->n_left_on; i++) {
            sg_buf_appends(b, "- ");
            md_cell(b, r->left_on[i]);
            sg_buf_appends(b, "\n");
        }
        sg_buf_appends(b, "\n");
    }

    sg_buf_appends(b, "## Targets vs measured\n\n| check | target | measured | result |\n"
                      "|---|---|---|---|\n");
    for (size_t i = 0; i < r->n_checks; i++) {
        const struct sg_drill_check *c = &r->checks[i];
        sg_buf_appends(b, "| ");
        md_cell(b, c->name);
        sg_buf_appends(b, " | ");
        md_cell(b, c->target);
        sg_buf_appends(b, " | ");
        md_cell(b, c->measured);
        sg_buf_appendf(b, " | %s |\n",
                       !c->counted ? (c->ok ? "ok (info)" : "see note (info)")
                       : c->ok     ? "ok"
                                   : "**missed**");
    }
    sg_buf_appends(b, "\nTargets come from the config: `slo.p95_latency_s`, `slo.success_rate`, "
                      "`slo.cost_avg_usd`");
    if (!trial)
        sg_buf_appends(b, ", `drill.failover_target_s`, `drill.min_success_during_failover`");
    sg_buf_appends(b, ". Rows marked (info) do not decide the result.\n\n");

    if (svg_name)
        sg_buf_appendf(b, "## Latency\n\n![latency of every request](%s)\n\n", svg_name);

    sg_buf_appends(b, "## Phases\n\n| phase | requests | success | p50 (s) | p95 (s) | p99 (s) | "
                      "avg cost | avg hops | served by |\n|---|---|---|---|---|---|---|---|---|\n");
    if (trial) {
        md_stats_row(b, "trial", &r->trial);
    } else {
        md_stats_row(b, "baseline", &r->baseline);
        md_stats_row(b, "fault", &r->fault);
        md_stats_row(b, "recovery", &r->recovery);
    }
    sg_buf_appends(b, "\nLatency is the time from sending a request to the last byte of its "
                      "answer (or its error), measured by the drill's own client; p95 uses the "
                      "nearest-rank method over every request of the phase.\n\n");

    sg_buf_appends(b, "## Timeline\n\n| t (s) | event |\n|---|---|\n");
    for (size_t i = 0; i < r->n_events; i++) {
        sg_buf_appendf(b, "| %.2f | ", r->events[i].t_ms / 1000);
        md_cell(b, r->events[i].text);
        sg_buf_appends(b, " |\n");
    }
    sg_buf_appends(b, "\n");
    if (!trial) {
        sg_buf_appends(b, "## Rollback and verification\n\n");
        const struct {
            const char *what, *note;
        } notes[] = {{"Bypass pre-check", r->precheck_note},
                     {"Rollback", r->rollback_note},
                     {"Verification", r->verify_note},
                     {"Metrics cross-check", r->metrics_note}};
        for (size_t i = 0; i < SG_ARRAY_LEN(notes); i++) {
            sg_buf_appendf(b, "- %s: ", notes[i].what);
            md_cell(b, notes[i].note[0] ? notes[i].note : "not run");
            sg_buf_appends(b, "\n");
        }
        if (r->n_fault_errors) {
            sg_buf_appends(b, "- Why requests failed during the fault:\n");
            for (size_t i = 0; i < r->n_fault_errors; i++) {
                sg_buf_appends(b, "  - ");
                md_cell(b, r->fault_errors[i]);
                sg_buf_appends(b, "\n");
            }
        }
        sg_buf_appends(b, "\nTTR is the time from the fault's injection to the end of the first "
                          "successful answer served by a deployment other than the primary. "
                          "\"SR back at SLO\" is when the success rate, in buckets of requests by "
                          "send time, reached `slo.success_rate` and stayed there until the "
                          "rollback.\n\n");
    }
    sg_buf_appends(b, "## Follow-ups\n\n");
    if (!r->n_followups)
        sg_buf_appends(b, "None: every target held.\n");
    for (size_t i = 0; i < r->n_followups; i++) {
        sg_buf_appendf(b, "%zu. ", i + 1);
        md_cell(b, r->followups[i]);
        sg_buf_appends(b, "\n");
    }
    if (r->store_note[0]) {
        sg_buf_appends(b, "\nDrill history: ");
        md_cell(b, r->store_note);
        sg_buf_appends(b, "\n");
    }
}

/* ---- SVG ---- */

static void xml_text(struct sg_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sg_buf_appends(b, "&amp;"); break;
        case '<': sg_buf_appends(b, "&lt;"); break;
        case '>': sg_buf_appends(b, "&gt;"); break;
        case '"': sg_buf_appends(b, "&quot;"); break;
        case '\'': sg_buf_appends(b, "&apos;"); break;
        default:
            /* Control characters are not allowed in XML 1.0. */
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                sg_buf_append(b, s, 1);
        }
    }
}

/* A tick step of 1, 2 or 5 × 10^k giving about `want` intervals over `span`. */
static double nice_step(double span, int want)
{
    if (span <= 0)
        return 1;
    double raw = span / want, mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

#define SVG_W 820.0
#define SVG_H 340.0
#define PAD_L 64.0
#define PAD_R 20.0
#define PAD_T 36.0
#define PAD_B 48.0

void sg_drill_render_svg(const struct sg_drill_result *r, struct sg_buf *b)
{
    double t_max = 1, y_max = r->target_p95_s > 0 ? r->target_p95_s * 1.15 : 1;
    for (size_t i = 0; i < r->n_samples; i++) {
        const struct sg_drill_sample *s = &r->samples[i];
        t_max = SG_MAX(t_max, (s->t_send_ms + s->total_ms) / 1000);
        y_max = SG_MAX(y_max, s->total_ms / 1000 * 1.1);
    }
    t_max = SG_MAX(t_max, r->elapsed_ms / 1000);
    double pw = SVG_W - PAD_L - PAD_R, ph = SVG_H - PAD_T - PAD_B;
#define X(t) (PAD_L + (t) / t_max * pw)
#define Y(v) (PAD_T + ph - (v) / y_max * ph)
    sg_buf_appendf(b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                   "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
                   SVG_W, SVG_H, SVG_W, SVG_H);
    sg_buf_appendf(b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n",
                   SVG_W, SVG_H);
    sg_buf_appends(b, "<text x=\"64\" y=\"20\" font-size=\"13\" font-weight=\"bold\">");
    char title[300];
    snprintf(title, sizeof title, "%s %s: latency of every request (%s)",
             strcmp(r->kind, "trial") == 0 ? "Trial" : "Failover drill", r->date,
             strcmp(r->kind, "trial") == 0 ? r->primary : r->mode);
    xml_text(b, title);
    sg_buf_appends(b, "</text>\n");
    /* The fault window, shaded. */
    if (r->t_inject_ms >= 0) {
        double end = r->t_fault_end_ms >= 0 ? r->t_fault_end_ms / 1000 : t_max;
        sg_buf_appendf(b,
                       "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"#fde2e2\"/>\n",
                       X(r->t_inject_ms / 1000), PAD_T,
                       SG_MAX(1.0, X(end) - X(r->t_inject_ms / 1000)), ph);
        sg_buf_appendf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#b00020\">fault on</text>\n",
                       X(r->t_inject_ms / 1000) + 3, PAD_T + 12);
    }
    if (r->t_rollback_ms >= 0)
        sg_buf_appendf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"#2e7d32\" stroke-width=\"1.5\"/>\n"
                       "<text x=\"%.1f\" y=\"%.1f\" fill=\"#2e7d32\">rollback</text>\n",
                       X(r->t_rollback_ms / 1000), PAD_T, X(r->t_rollback_ms / 1000), PAD_T + ph,
                       X(r->t_rollback_ms / 1000) + 3, PAD_T + 24);
    /* Axes and ticks. */
    sg_buf_appendf(b,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n"
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                   PAD_L, PAD_T + ph, PAD_L + pw, PAD_T + ph, PAD_L, PAD_T, PAD_L, PAD_T + ph);
    double xs = nice_step(t_max, 8), ys = nice_step(y_max, 5);
    for (double t = 0; t <= t_max + 1e-9; t += xs)
        sg_buf_appendf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                       X(t), PAD_T + ph, X(t), PAD_T + ph + 4, X(t), PAD_T + ph + 16, t);
    for (double v = 0; v <= y_max + 1e-9; v += ys)
        sg_buf_appendf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                       PAD_L, Y(v), PAD_L + pw, Y(v), PAD_L - 5, Y(v) + 4, v);
    sg_buf_appendf(b,
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">seconds since the "
                   "start</text>\n"
                   "<text x=\"14\" y=\"%.1f\" transform=\"rotate(-90 14 %.1f)\" "
                   "text-anchor=\"middle\">latency (s)</text>\n",
                   PAD_L + pw / 2, SVG_H - 10, PAD_T + ph / 2, PAD_T + ph / 2);
    if (r->target_p95_s > 0)
        sg_buf_appendf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#b00020\" "
                       "stroke-dasharray=\"6 4\"/><text x=\"%.1f\" y=\"%.1f\" "
                       "text-anchor=\"end\" fill=\"#b00020\">p95 target %gs</text>\n",
                       PAD_L, Y(r->target_p95_s), PAD_L + pw, Y(r->target_p95_s), PAD_L + pw - 2,
                       Y(r->target_p95_s) - 4, r->target_p95_s);
    /* One mark per request: blue from the primary, orange from another deployment, a red
     * cross for a failure. */
    for (size_t i = 0; i < r->n_samples; i++) {
        const struct sg_drill_sample *s = &r->samples[i];
        double x = X(s->t_send_ms / 1000), y = Y(s->total_ms / 1000);
        if (!s->ok)
            sg_buf_appendf(b,
                           "<path d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"#d62728\" "
                           "stroke-width=\"1.5\"/>\n",
                           x - 3, y - 3);
        else
            sg_buf_appendf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x, y,
                           strcmp(s->deployment, r->primary) == 0 ? "#1f77b4" : "#ff7f0e");
    }
    /* Legend. */
    double lx = PAD_L + pw - 330, ly = 20;
    sg_buf_appendf(b,
                   "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\">",
                   lx, ly - 4, lx + 7, ly);
    xml_text(b, r->primary);
    sg_buf_appendf(b,
                   "</text><circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#ff7f0e\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\">other deployment</text>"
                   "<path d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"#d62728\" stroke-width=\"1.5\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\">failed</text>\n",
                   lx + 110, ly - 4, lx + 117, ly, lx + 230, ly - 7, lx + 240, ly);
#undef X
#undef Y
    sg_buf_appends(b, "</svg>\n");
}

/* ---- files ---- */

static int mkdirs(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *path, const struct sg_buf *b, char *err, size_t err_len)
{
    FILE *f = fopen(path, "w");
    if (!f || fwrite(b->data ? b->data : "", 1, b->len, f) != b->len) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return SG_EIO;
    }
    if (fclose(f) != 0) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        return SG_EIO;
    }
    return SG_OK;
}

int sg_drill_report_base(const struct sg_drill_result *r, const char *dir, char *base, size_t n,
                         char *err, size_t err_len)
{
    if (mkdirs(dir) != 0) {
        snprintf(err, err_len, "cannot create the report directory %s: %s", dir, strerror(errno));
        return SG_EIO;
    }
    char path[1200];
    for (int k = 1; k < 100000; k++) {
        if (k == 1)
            snprintf(base, n, "%s-%s", r->kind, r->date);
        else
            snprintf(base, n, "%s-%s-%d", r->kind, r->date, k);
        /* A name is free when none of the three files of the day is there. */
        bool taken = false;
        static const char *const ext[] = {"json", "svg"};
        for (size_t i = 0; i < SG_ARRAY_LEN(ext) && !taken; i++) {
            snprintf(path, sizeof path, "%s/%s.%s", dir, base, ext[i]);
            taken = access(path, F_OK) == 0;
        }
        if (taken)
            continue;
        /* Reserve it: the markdown is created empty, exclusively, so a run started at the same
         * time picks the next name, and a directory that cannot be written is found now. */
        snprintf(path, sizeof path, "%s/%s.md", dir, base);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            close(fd);
            return SG_OK;
        }
        if (errno != EEXIST) {
            snprintf(err, err_len, "cannot write to the report directory %s: %s", dir,
                     strerror(errno));
            return SG_EIO;
        }
    }
    snprintf(err, err_len, "no free report name in %s", dir);
    return SG_EIO;
}

int sg_drill_write_reports(const struct sg_drill_result *r, const char *dir, const char *base,
                           char *err, size_t err_len)
{
    char svg_name[160], path[1200];
    snprintf(svg_name, sizeof svg_name, "%s.svg", base);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_drill_render_svg(r, &b);
    snprintf(path, sizeof path, "%s/%s", dir, svg_name);
    int rc = write_file(path, &b, err, err_len);
    sg_buf_reset(&b);
    if (rc == SG_OK) {
        sg_drill_render_json(r, &b);
        snprintf(path, sizeof path, "%s/%s.json", dir, base);
        rc = write_file(path, &b, err, err_len);
        sg_buf_reset(&b);
    }
    if (rc == SG_OK) {
        sg_drill_render_md(r, svg_name, &b);
        snprintf(path, sizeof path, "%s/%s.md", dir, base);
        rc = write_file(path, &b, err, err_len);
    }
    sg_buf_dispose(&b);
    return rc;
}
