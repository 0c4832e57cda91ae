/* drill — private parts shared by the files of the module (see drill.h for the layers). */
#ifndef SG_DRILL_INT_H
#define SG_DRILL_INT_H

#include "drill.h"

#include <uv.h>

struct sg_upstream;
struct sg_upstream_headers;
struct json_object;
struct sg_drill_call;

/* Copy a string into a fixed field, cut to fit (fields in results are display text). */
static inline void sg_drill_copy(char *dst, size_t n, const char *src)
{
    size_t l = strlen(src);
    if (l >= n)
        l = n - 1;
    memcpy(dst, src, l);
    dst[l] = '\0';
}

/* ---- client.c: the drill's HTTP client ---- */

struct sg_drill_client {
    uv_loop_t *loop;
    struct sg_upstream *up;
    const struct sg_config *cfg; /* prices of the deployments that answer */
    char *base;                  /* "http://host:port", no trailing '/' */
    char *chat_url;
    char *key;
    struct sg_upstream_headers *hdrs; /* Authorization, Content-Type, x-slogate-feature */
    uint64_t t0_us;                   /* the run's start: sample times are relative to it */
    uint32_t timeout_ms;              /* a chat request's whole deadline */
    size_t in_flight;
    struct sg_drill_call *calls; /* in flight, so dispose can cancel and free them */
};

/* The answer to an admin call. `status` 0: no HTTP answer (error says why). */
struct sg_drill_reply {
    int status;
    struct sg_buf body;
    char error[256];
    /* No answer came, but the request went out (the answer timed out, or the connection was
     * cut before it): the gateway may have acted on it. */
    bool lost;
};

/* Whether an admin call that changes something may have taken effect: it did (2xx), or nobody
 * knows (its answer was lost, or a 5xx from something in between). Only a 4xx from the gateway,
 * or a request that never left, says it was not applied. What may have been applied is rolled
 * back (every undo is idempotent). */
static inline bool sg_drill_reply_maybe_applied(int rc, const struct sg_drill_reply *r)
{
    return rc == SG_OK ? r->status < 400 || r->status >= 500 : r->lost;
}

typedef void (*sg_drill_chat_cb)(void *ud, const struct sg_drill_sample *s);

int sg_drill_client_init(struct sg_drill_client *c, uv_loop_t *loop, const char *base_url,
                         const char *key, const char *feature, const struct sg_config *cfg,
                         uint64_t t0_us, char *err, size_t err_len);
/* Cancel what is in flight (no callbacks) and free; run the loop afterwards so libuv can close
 * the handles. */
void sg_drill_client_dispose(struct sg_drill_client *c);

/* Start one chat request for `alias` with the user message `prompt`; `cb` gets the sample when
 * it ends (never synchronously). */
void sg_drill_chat(struct sg_drill_client *c, const char *alias, const char *prompt, bool stream,
                   enum sg_drill_phase phase, sg_drill_chat_cb cb, void *ud);

/* An admin call (any method) on libuv's thread pool through libcurl, with the master key; runs
 * the loop until it ends, so the load keeps flowing meanwhile. `json_body` may be NULL.
 * Returns SG_OK when an HTTP answer came (whatever its status), else an SG_E* code. The caller
 * disposes out->body. Must not be called from a loop callback. */
int sg_drill_admin(struct sg_drill_client *c, const char *method, const char *path,
                   const char *json_body, uint32_t timeout_ms, struct sg_drill_reply *out);
void sg_drill_reply_dispose(struct sg_drill_reply *r);

/* Read a chat answer's body into `s`, whose status is set: its shape, model, usage and error
 * message. A 2xx answer to a stream request is read as SSE, event by event, and is an error
 * unless it ends with [DONE]. Pure (the fuzz target feeds it any bytes); `p` may be NULL. */
void sg_drill_answer_read(struct sg_drill_sample *s, bool stream, const char *p, size_t n);

/* ---- load.c: the steady load ---- */

struct sg_drill_load {
    struct sg_drill_client *c;
    uv_timer_t timer;
    bool timer_init, running;
    double rps;
    uint64_t t_start_us, sent;
    uint64_t limit;       /* stop after this many sends (0 = no limit) */
    size_t max_in_flight; /* sends are skipped beyond this (the gateway hangs) */
    size_t skipped;
    enum sg_drill_phase phase; /* stamped on each request; the driver moves it */
    char **prompts;
    size_t n_prompts, next_prompt;
    const char *alias;
    bool stream;
    sg_drill_chat_cb cb;
    void *ud;
};

void sg_drill_load_init(struct sg_drill_load *l, struct sg_drill_client *c, const char *alias,
                        char **prompts, size_t n_prompts, bool stream, double rps,
                        sg_drill_chat_cb cb, void *ud);
void sg_drill_load_start(struct sg_drill_load *l, enum sg_drill_phase phase);
void sg_drill_load_stop(struct sg_drill_load *l);
/* Close the timer (before the loop is closed). */
void sg_drill_load_dispose(struct sg_drill_load *l);
/* The next prompt, round robin. */
const char *sg_drill_load_prompt(struct sg_drill_load *l);

/* ---- run.c: what a drill and a trial share — the loop, signals, waits, display, events ---- */

struct sg_drill_run {
    const struct sg_drill_options *o;
    struct sg_drill_result *res;
    uv_loop_t loop;
    struct sg_drill_client c;
    struct sg_drill_load load;
    char **prompts;
    size_t n_prompts;
    uv_signal_t sigint, sigterm;
    uv_timer_t wake, ui;
    bool stop; /* a signal came: roll back and leave */
    int signals;
    uint64_t t0_us;
    FILE *out;
    bool tty;
    char phase[96]; /* shown in the live display */
    double phase_start_ms, phase_len_ms;
    int ui_lines;            /* lines of the live block now on screen */
    double last_progress_ms; /* plain log: when the last progress line went out */
    /* What must be undone, whatever happens. */
    bool fault_on, bypass_on, pinned;
    char prev_pin[64]; /* trial: the deployment pinned before, restored after */
    /* drill: firsts worth a line in the timeline */
    bool seen_failover, seen_failure;
    bool primary_back; /* drill: the primary served a request sent after the rollback */
    char last_line[160];
    /* The reports' directory and base name, reserved before anything is changed. */
    const char *out_dir;
    char report_base[160];
};

/* A command's own preparation (what it reads from the gateway into `res`), before the run. */
typedef int (*sg_drill_setup_fn)(const struct sg_drill_options *o, struct sg_drill_result *res,
                                 char *err, size_t err_len);
/* Run `setup`, take the SLO's targets (and --feature's cost cap), then set up the loop, the
 * client, signals and the display. On failure prints
 * "slogate <cmd>: <why>" on stderr and returns the error; nothing is left to dispose. */
int sg_drill_run_init(struct sg_drill_run *R, const struct sg_drill_options *o,
                      struct sg_drill_result *res, sg_drill_setup_fn setup, const char *cmd);
void sg_drill_run_dispose(struct sg_drill_run *R);
/* Give back the reserved report name (an exit that writes no report: a usage error). */
void sg_drill_run_unreserve(struct sg_drill_run *R);
/* Note in the result what is still on at the gateway (R->fault_on, bypass_on, pinned). */
void sg_drill_run_left_on(struct sg_drill_run *R);
/* Milliseconds since the run started. */
double sg_drill_run_now(const struct sg_drill_run *R);
/* Run the loop for `ms` (or until a signal when `stoppable`). */
void sg_drill_run_wait(struct sg_drill_run *R, double ms, bool stoppable);
/* Run the loop until `*flag` or `ms` passed or (stoppable) a signal; returns *flag. */
bool sg_drill_run_wait_flag(struct sg_drill_run *R, const bool *flag, double ms, bool stoppable);
/* Wait until no chat request is in flight (at most `ms`). */
void sg_drill_run_drain(struct sg_drill_run *R, double ms);
/* A line in the timeline, printed as it happens. */
void sg_drill_run_event(struct sg_drill_run *R, const char *fmt, ...) SG_PRINTF(2, 3);
/* Name the phase in the live display; `len_ms` 0 when it has no set length. */
void sg_drill_run_phase(struct sg_drill_run *R, const char *name, double len_ms);
/* Keep the sample in the result (the chat callback of every request of a run). */
void sg_drill_run_keep(struct sg_drill_run *R, const struct sg_drill_sample *s);
/* Send one request and wait for its answer (pre-check, verify). */
bool sg_drill_run_one(struct sg_drill_run *R, enum sg_drill_phase phase,
                      struct sg_drill_sample *out);
/* Turn the router bypass on or off; false (with a timeline line) when the gateway refused or
 * did not answer. Turning it on without an answer leaves R->bypass_on set: it may be on. */
bool sg_drill_run_bypass(struct sg_drill_run *R, bool on);
/* The timeline line for a change (`what`: "turning the router bypass on") that may have taken
 * effect although no answer said so (sg_drill_reply_maybe_applied): it is undone with the rest. */
void sg_drill_run_unsure(struct sg_drill_run *R, const char *what, int rc,
                         const struct sg_drill_reply *rep);
/* What GET /admin/deployments says. */
#define SG_DRILL_MAX_GW_DEPS 64
struct sg_drill_gw_state {
    int status;      /* HTTP status; 0 when the gateway did not answer */
    char error[256]; /* why, when status is not 200 */
    bool bypass;
    size_t n;
    struct {
        char id[64], alias[128], state[16], reason[64];
        bool pinned, fault;
    } d[SG_DRILL_MAX_GW_DEPS];
    char faults[200]; /* "primary" ... for deployments with a fault on; "" when none */
};
void sg_drill_run_state(struct sg_drill_run *R, struct sg_drill_gw_state *st);
/* The reading half of sg_drill_run_state, pure: `status` is the HTTP status (0: no answer,
 * `error` says why), `body` (NUL-terminated, or NULL) the answer. A 200 that is not a
 * deployments list becomes status 0 with a message. */
void sg_drill_gw_state_read(struct sg_drill_gw_state *st, int status, const char *body,
                            size_t body_len, const char *error);
/* The entry for `id`, or NULL. */
const char *sg_drill_gw_dep_state(const struct sg_drill_gw_state *st, const char *id);

/* Clear the live block before printing the summary. */
void sg_drill_run_clear_ui(struct sg_drill_run *R);

/* ---- drill.c, shared with trial.c ---- */

/* Date, start time, gateway, rate: what every report starts with. */
void sg_drill_result_meta(struct sg_drill_result *r, const struct sg_drill_options *o);
/* Dispose the run, evaluate, store, write the reports, print the summary; the exit code. */
int sg_drill_finish(struct sg_drill_run *R, const struct sg_drill_options *o,
                    struct sg_drill_result *r, bool trial);

/* ---- the store (drill results for reports and the dashboard) ---- */

/* Record a finished run in the config's database (general_settings.database_url); writes where
 * it went, or why not, into r->store_note. `report_path` is the markdown report's path. */
void sg_drill_store(const struct sg_config *cfg, struct sg_drill_result *r,
                    const char *report_path);

#endif
