/*
 * gateway — the request path of DESIGN §2 and the worker threads that run it.
 *
 * N workers, each a thread with its own uv loop, its own SO_REUSEPORT listener (the kernel
 * spreads connections), its own upstream (curl multi + connection pool). The config is shared
 * read-only through a reference-counted runtime; nothing on the request path takes a lock.
 *
 * The request path, one stage per function in handler.c:
 *   auth → attribution → admission → cache lookup → route → attempt → respond → record.
 */
#ifndef SG_GATEWAY_H
#define SG_GATEWAY_H

#include "config/config.h"

struct sg_gateway;

struct sg_gateway_options {
    const char *host;        /* NULL: config server.host */
    int port;                /* -1: config server.port; 0: ephemeral */
    int workers;             /* 0: config server.workers, else the number of cores */
    bool quiet;              /* no startup banner */
    const char *config_path; /* the file POST /admin/reload and SIGHUP read again (NULL: none) */
};

/* Takes the caller's reference to `cfg`. */
struct sg_gateway *sg_gateway_new(struct sg_config *cfg_take, const struct sg_gateway_options *o);
/* Start the workers; returns once every listener is open (0) or one failed (SG_EIO). */
int sg_gateway_start(struct sg_gateway *gw);
/* The port the workers listen on (after start), and how many workers there are. */
int sg_gateway_port(const struct sg_gateway *gw);
int sg_gateway_workers(const struct sg_gateway *gw);
/* Begin a graceful stop from any thread: stop accepting, finish in-flight requests (up to
 * server.drain_timeout_s), then the workers' loops end. */
void sg_gateway_stop(struct sg_gateway *gw);
/* Wait for every worker thread to end. */
void sg_gateway_join(struct sg_gateway *gw);
void sg_gateway_free(struct sg_gateway *gw);

/* Run a gateway in the foreground until SIGINT/SIGTERM, then drain and return an exit code.
 * Used by `serve` and `demo`. `banner` (may be NULL) is printed once listening. */
int sg_gateway_run(struct sg_gateway *gw, void (*banner)(struct sg_gateway *gw, void *ud),
                   void *ud);

/* A reference to the config in force (a reload may replace it at any time); the caller
 * releases it with sg_config_unref(). */
struct sg_config *sg_gateway_config_ref(struct sg_gateway *gw);

#endif
