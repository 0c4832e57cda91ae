/*
 * Background health checks (general_settings.background_health_checks): every
 * health_check_interval, worker 0 sends each deployment a one-token chat request. A deployment
 * that fails it is put in cooldown before a client request has to find out; one that answers is
 * left alone (a cooling deployment still recovers through its half-open probe).
 */
#include "gateway_int.h"

#include <stdio.h>
#include <stdlib.h>

struct probe_call {
    struct gw_probes *p;
    struct probe_call *prev, *next;
    struct sg_runtime *rt; /* keeps the deployment alive across a reload */
    const struct sg_deployment *d;
    struct sg_upstream_call *call;
    char *body;
    int status;
};

struct gw_probes {
    struct sg_worker *w;
    uv_timer_t timer;
    struct probe_call *calls; /* in flight */
};

static void call_free(struct probe_call *c)
{
    struct gw_probes *p = c->p;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sg_runtime_unref(c->rt);
    free(c->body);
    free(c);
}

static void on_head(void *ud, int status, const struct sg_http_header *h, size_t n)
{
    SG_UNUSED(h);
    SG_UNUSED(n);
    ((struct probe_call *)ud)->status = status;
}

static void on_body(void *ud, const char *data, size_t len)
{
    SG_UNUSED(ud);
    SG_UNUSED(data);
    SG_UNUSED(len);
}

static void on_done(void *ud, const struct sg_upstream_result *r)
{
    struct probe_call *c = ud;
    enum sg_outcome o =
        sg_router_classify(r->error ? 0 : r->status, r->error, r->first_byte_timeout, NULL, 0);
    if (o != SG_OUT_SUCCESS && o != SG_OUT_CLIENT_ERROR && o != SG_OUT_CONTEXT_WINDOW) {
        struct sg_dep_health *e = sg_router_health_of(c->rt->router, c->d);
        if (e)
            sg_health_cool(e, sg_now_ms(), c->rt->cfg->router.cooldown_ms,
                           "the background health check failed");
        SG_WARN("probe", "deployment %s failed its health check (%s); cooling it down", c->d->id,
                r->error ? (r->detail ? r->detail : sg_strerror(r->error)) : "bad status");
    }
    c->call = NULL;
    call_free(c);
}

static const struct sg_upstream_handlers handlers = {on_head, on_body, on_done};

static void on_tick(uv_timer_t *t)
{
    struct gw_probes *p = t->data;
    struct sg_runtime *rt = p->w->rt;
    for (size_t i = 0; i < rt->cfg->n_deployments; i++) {
        const struct sg_deployment *d = &rt->cfg->deployments[i];
        /* A wildcard route has no model of its own to ask for ('*'), unless it names one. */
        const char *model = d->health_check_model ? d->health_check_model : d->provider_model;
        if (!d->health_check_model && d->stars)
            continue;
        struct probe_call *c = sg_xcalloc(1, sizeof *c);
        c->p = p;
        c->rt = sg_runtime_ref(rt);
        c->d = d;
        struct sg_buf b;
        sg_buf_init(&b, 0);
        sg_buf_appends(&b, "{\"model\":\"");
        sg_buf_append_json_str(&b, model, strlen(model));
        /* The same tiny request in both wire formats (dep_urls/dep_headers are per format). */
        sg_buf_appends(&b, "\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}],"
                           "\"max_tokens\":1}");
        c->body = sg_buf_steal(&b, NULL);
        uint32_t ttfb =
            d->stream_timeout_ms ? d->stream_timeout_ms : rt->cfg->router.stream_timeout_ms;
        struct sg_upstream_request r = {
            .url = rt->dep_urls[i],
            .body = c->body,
            .body_len = strlen(c->body),
            .headers = rt->dep_headers[i],
            .timeout_ms = d->timeout_ms ? d->timeout_ms : rt->cfg->router.timeout_ms,
            .first_byte_timeout_ms = ttfb,
        };
        c->next = p->calls;
        if (p->calls)
            p->calls->prev = c;
        p->calls = c;
        c->call = sg_upstream_start(p->w->up, &r, &handlers, c);
    }
}

struct gw_probes *gw_probes_start(struct sg_worker *w, uint32_t interval_ms)
{
    struct gw_probes *p = sg_xcalloc(1, sizeof *p);
    p->w = w;
    uv_timer_init(&w->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_tick, interval_ms, interval_ms);
    return p;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void gw_probes_stop(struct gw_probes *p)
{
    if (!p)
        return;
    while (p->calls) {
        sg_upstream_cancel(p->calls->call);
        call_free(p->calls);
    }
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}
