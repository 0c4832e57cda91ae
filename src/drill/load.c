/*
 * The steady synthetic load: requests at a fixed rate, whatever the answers do. The rate is
 * kept against the start time (request k is due at start + k/rps), so a slow loop turn catches
 * up instead of drifting; requests are never held back waiting for answers, as a real client
 * population would not be. Only when the gateway stops answering altogether does a cap on
 * requests in flight skip sends (counted, and reported), so the drill cannot pile up sockets.
 */
#include "drill_int.h"

#include <math.h>

#define DEFAULT_MAX_IN_FLIGHT 64

void sg_drill_load_init(struct sg_drill_load *l, struct sg_drill_client *c, const char *alias,
                        char **prompts, size_t n_prompts, bool stream, double rps,
                        sg_drill_chat_cb cb, void *ud)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    l->alias = alias;
    l->prompts = prompts;
    l->n_prompts = n_prompts;
    l->stream = stream;
    l->rps = rps > 0 ? rps : 1;
    l->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    l->cb = cb;
    l->ud = ud;
    uv_timer_init(c->loop, &l->timer);
    l->timer.data = l;
    l->timer_init = true;
}

const char *sg_drill_load_prompt(struct sg_drill_load *l)
{
    const char *p = l->prompts[l->next_prompt % l->n_prompts];
    l->next_prompt++;
    return p;
}

static void on_tick(uv_timer_t *t)
{
    struct sg_drill_load *l = t->data;
    if (!l->running)
        return;
    double elapsed_s = (double)(sg_now_us() - l->t_start_us) / 1e6;
    uint64_t due = (uint64_t)floor(elapsed_s * l->rps) + 1; /* request 0 goes at once */
    if (l->limit && due > l->limit)
        due = l->limit;
    while (l->sent < due) {
        l->sent++;
        if (l->c->in_flight >= l->max_in_flight) {
            l->skipped++;
            continue;
        }
        sg_drill_chat(l->c, l->alias, sg_drill_load_prompt(l), l->stream, l->phase, l->cb, l->ud);
    }
    if (l->limit && l->sent >= l->limit)
        sg_drill_load_stop(l);
}

void sg_drill_load_start(struct sg_drill_load *l, enum sg_drill_phase phase)
{
    l->phase = phase;
    if (l->running)
        return;
    l->running = true;
    l->t_start_us = sg_now_us();
    l->sent = 0;
    /* Tick at the send interval, at most every 20 ms (sends are computed from the clock, so
     * the tick only bounds how late one can be). */
    uint64_t every = (uint64_t)(1000.0 / l->rps);
    every = every < 1 ? 1 : every > 20 ? 20 : every;
    uv_timer_start(&l->timer, on_tick, 0, every);
}

void sg_drill_load_stop(struct sg_drill_load *l)
{
    l->running = false;
    if (l->timer_init)
        uv_timer_stop(&l->timer);
}

void sg_drill_load_dispose(struct sg_drill_load *l)
{
    if (l->timer_init) {
        uv_timer_stop(&l->timer);
        uv_close((uv_handle_t *)&l->timer, NULL);
        l->timer_init = false;
    }
}
