/*
 * A bounded ring of pointers for any number of producers and consumers: Dmitry Vyukov's bounded
 * MPMC queue. The store's event queue (workers push, the writer pops) and the event pool (the
 * writer gives events back, workers take them) are both one.
 *
 * Each cell carries a sequence number. A producer at position `pos` may fill the cell when its
 * sequence equals pos: it claims the position with a compare-and-swap on `enq`, writes the
 * pointer and publishes with seq = pos + 1 (release). A consumer at `pos` may take the cell when
 * seq == pos + 1: it claims it with a compare-and-swap on `deq`, reads the pointer and hands the
 * cell back with seq = pos + capacity. Full and empty are seen from the sequence numbers alone;
 * nothing blocks and nothing allocates.
 */
#include "base.h"

#include <stdlib.h>

void sg_mpmc_init(struct sg_mpmc *q, size_t capacity)
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

void sg_mpmc_dispose(struct sg_mpmc *q)
{
    free(q->cells);
    q->cells = NULL;
}

bool sg_mpmc_push(struct sg_mpmc *q, void *p)
{
    size_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
    for (;;) {
        struct sg_mpmc_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->p = p;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
            /* lost the race: the CAS reloaded pos */
        } else if (dif < 0) {
            return false; /* no consumer has freed this cell yet: full */
        } else {
            pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        }
    }
}

void *sg_mpmc_pop(struct sg_mpmc *q)
{
    size_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    for (;;) {
        struct sg_mpmc_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->deq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                void *p = c->p;
                atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
                return p;
            }
        } else if (dif < 0) {
            return NULL; /* empty */
        } else {
            pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
        }
    }
}

size_t sg_mpmc_size(struct sg_mpmc *q)
{
    size_t d = atomic_load_explicit(&q->deq, memory_order_relaxed);
    size_t e = atomic_load_explicit(&q->enq, memory_order_relaxed);
    return e > d ? e - d : 0;
}
