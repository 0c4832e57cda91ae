/*
 * A hash table from byte-string keys to pointers: open addressing with linear probing, kept at
 * most half full, so a lookup examines one or two slots on average whatever the table's size.
 * Removal shifts the following run back (no tombstones), so a table that sees many inserts and
 * removals (deployments coming and going over reloads) never slows down.
 *
 * The hash is 64-bit FNV-1a, and the slot is taken from its high bits after a Fibonacci
 * multiply: FNV's low bits alone vary little between keys that differ only in their last
 * character ("d1", "d2"...), which is how generated ids and numbered configs look. The keys come
 * from the operator's configuration, not from clients, so no keyed hash is needed against
 * flooding.
 */
#include "base.h"

#include <stdlib.h>

uint64_t sg_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    return h;
}

/* The home slot of a hash in a table of `cap` (a power of two, at least 2) slots. */
static size_t home(uint64_t hash, size_t cap)
{
    return (size_t)((hash * 0x9e3779b97f4a7c15u) >> (64 - __builtin_ctzll(cap)));
}

/* The slot holding `key`, or the empty slot where it would go; adds the slots it examined to
 * `*probes`. `m->cap` > 0. */
static size_t find_slot(const struct sg_map *m, const char *key, size_t len, uint64_t hash,
                        size_t *probes)
{
    size_t mask = m->cap - 1;
    for (size_t i = home(hash, m->cap);; i = (i + 1) & mask) {
        const struct sg_map_slot *s = &m->v[i];
        (*probes)++;
        if (!s->key || (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0))
            return i;
    }
}

static size_t slot_of(struct sg_map *m, const char *key, size_t len, uint64_t hash)
{
    return find_slot(m, key, len, hash, &m->probes);
}

static void grow(struct sg_map *m)
{
    struct sg_map_slot *old = m->v;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : 16;
    m->v = sg_xcalloc(m->cap, sizeof *m->v);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            m->v[slot_of(m, old[i].key, old[i].len, old[i].hash)] = old[i];
    free(old);
}

void sg_map_dispose(struct sg_map *m)
{
    free(m->v);
    memset(m, 0, sizeof *m);
}

void *sg_map_get(struct sg_map *m, const char *key, size_t len)
{
    if (!m->n)
        return NULL;
    const struct sg_map_slot *s = &m->v[slot_of(m, key, len, sg_hash(key, len))];
    return s->key ? s->val : NULL;
}

void *sg_map_find(const struct sg_map *m, const char *key, size_t len)
{
    if (!m->n)
        return NULL;
    size_t ignored = 0;
    const struct sg_map_slot *s = &m->v[find_slot(m, key, len, sg_hash(key, len), &ignored)];
    return s->key ? s->val : NULL;
}

void sg_map_put(struct sg_map *m, const char *key, size_t len, void *val)
{
    if (2 * (m->n + 1) > m->cap)
        grow(m);
    uint64_t hash = sg_hash(key, len);
    struct sg_map_slot *s = &m->v[slot_of(m, key, len, hash)];
    if (!s->key)
        m->n++;
    *s = (struct sg_map_slot){key, len, hash, val};
}

void *sg_map_del(struct sg_map *m, const char *key, size_t len)
{
    if (!m->n)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(m, key, len, sg_hash(key, len));
    if (!m->v[i].key)
        return NULL;
    void *val = m->v[i].val;
    /* Backward shift: each later entry of the run whose home is not between the hole and it
     * moves into the hole, so every entry stays reachable from its home without tombstones. */
    for (size_t j = (i + 1) & mask; m->v[j].key; j = (j + 1) & mask) {
        size_t h = home(m->v[j].hash, m->cap);
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            m->v[i] = m->v[j];
            i = j;
        }
    }
    m->v[i] = (struct sg_map_slot){0};
    m->n--;
    return val;
}
