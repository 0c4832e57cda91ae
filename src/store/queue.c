/*
 * The bounded event queue between the workers (producers) and the writer thread (the one
 * consumer): Dmitry Vyukov's bounded MPMC ring, used with a single consumer.
 *
 * Each cell carries a sequence number. A producer at position `pos` may fill the cell when its
 * sequence equals pos, claims the position with a compare-and-swap on `enq`, writes the pointer
 * and publishes with seq = pos + 1 (release). The consumer at `pos` takes the cell when
 * seq == pos + 1 and hands it back with seq = pos + capacity. Full and empty are seen from the
 * sequence numbers alone; nothing blocks.
 */
#include "store_int.h"

#include <stdlib.h>

void sg_evq_init(struct sg_evq *q, size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    q->cells = sg_xcalloc(cap, sizeof *q->cells);
    q->mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&q->cells[i].seq, i);
    atomic_init(&q->enq, 0);
    atomic_init(&q->deq, 0);
}

void sg_evq_dispose(struct sg_evq *q)
{
    if (!q->cells)
        return;
    struct sg_event *ev;
    while ((ev = sg_evq_pop(q)))
        sg_event_free(ev);
    free(q->cells);
    q->cells = NULL;
}

bool sg_evq_push(struct sg_evq *q, struct sg_event *ev)
{
    size_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
    for (;;) {
        struct sg_evq_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->ev = ev;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
            /* lost the race: pos was reloaded by the CAS */
        } else if (dif < 0) {
            return false; /* the consumer has not freed this cell yet: full */
        } else {
            pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        }
    }
}

struct sg_event *sg_evq_pop(struct sg_evq *q)
{
    size_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    struct sg_evq_cell *c = &q->cells[pos & q->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if ((intptr_t)seq - (intptr_t)(pos + 1) < 0)
        return NULL;
    struct sg_event *ev = c->ev;
    c->ev = NULL;
    atomic_store_explicit(&q->deq, pos + 1, memory_order_relaxed);
    atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
    return ev;
}

size_t sg_evq_size(struct sg_evq *q)
{
    size_t d = atomic_load_explicit(&q->deq, memory_order_relaxed);
    size_t e = atomic_load_explicit(&q->enq, memory_order_relaxed);
    return e > d ? e - d : 0;
}
