/* Two mock providers on a loop and a thread of their own: what `slogate demo` and
 * `slogate drill --demo` put behind their in-process gateway. */
#include "mock.h"

#include <stdlib.h>

struct sg_mock_pair {
    struct sg_mock_options opts[2]; /* strings are borrowed: sg_mock_new copies them */
    struct sg_mock *m[2];
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    uv_sem_t ready;
    int rc;
};

static void on_stop(uv_async_t *h)
{
    struct sg_mock_pair *p = h->data;
    sg_mock_free(p->m[0]);
    sg_mock_free(p->m[1]);
    uv_close((uv_handle_t *)&p->stop, NULL);
}

static void pair_main(void *arg)
{
    struct sg_mock_pair *p = arg;
    for (int i = 0; i < 2; i++)
        p->m[i] = sg_mock_new(&p->loop, &p->opts[i]);
    p->rc = sg_mock_listen(p->m[0], "127.0.0.1", 0);
    if (p->rc == 0)
        p->rc = sg_mock_listen(p->m[1], "127.0.0.1", 0);
    uv_sem_post(&p->ready);
    uv_run(&p->loop, UV_RUN_DEFAULT);
}

struct sg_mock_pair *sg_mock_pair_start(const struct sg_mock_options *a,
                                        const struct sg_mock_options *b)
{
    struct sg_mock_pair *p = sg_xcalloc(1, sizeof *p);
    p->opts[0] = *a;
    p->opts[1] = *b;
    uv_loop_init(&p->loop);
    uv_async_init(&p->loop, &p->stop, on_stop);
    p->stop.data = p;
    uv_sem_init(&p->ready, 0);
    uv_thread_create(&p->thread, pair_main, p);
    uv_sem_wait(&p->ready);
    if (p->rc != 0) {
        sg_mock_pair_stop(p);
        return NULL;
    }
    return p;
}

int sg_mock_pair_port(const struct sg_mock_pair *p, int which)
{
    return sg_mock_port(p->m[which ? 1 : 0]);
}

void sg_mock_pair_stop(struct sg_mock_pair *p)
{
    if (!p)
        return;
    uv_async_send(&p->stop);
    uv_thread_join(&p->thread);
    uv_sem_destroy(&p->ready);
    uv_loop_close(&p->loop);
    free(p);
}
