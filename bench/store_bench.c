/*
 * store_bench — how many request rows per second the store's writer sustains, and what
 * sg_store_submit costs the request path.
 *
 *   build/store_bench URL [EVENTS] [--no-journal]   e.g. sqlite:///tmp/x.db, postgresql://...
 *
 * Phase 1 (warm-up): EVENTS events submitted and written (creates and migrates the schema).
 * Phase 2: EVENTS more events submitted while keeping the queue under half full (the submitter
 * waits, the writer never does), timed until the last row is committed: rows per second. The
 * time spent building and submitting each event (sg_event_new, fill, sg_store_submit: what the
 * request path does), waits excluded, is the submit cost. The writer thread's CPU time over
 * phase 2, per row, is what storing costs the machine (for PostgreSQL, bench/store adds the
 * server's). --no-journal runs the store without its crash journal (journal_dir ""), to see what
 * the journal's copy adds to the submit cost.
 * Prints one JSON line. bench/store runs it against SQLite and a PostgreSQL it starts.
 */
#include "store/store.h"
#include "telemetry/telemetry.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct sg_event *make_event(uint64_t i, const char *run)
{
    struct sg_event *e = sg_event_new();
    char id[64];
    snprintf(id, sizeof id, "%s-%012" PRIu64, run, i);
    SG_EVENT_SETS(e, request_id, id);
    e->start_unix_us = sg_wall_us();
    SG_EVENT_SETS(e, tenant_id, "default");
    SG_EVENT_SETS(e, user_id, "user-42");
    SG_EVENT_SETS(e, feature, "summarize");
    SG_EVENT_SETS(e, alias, "app/chat");
    SG_EVENT_SETS(e, provider, "openai");
    SG_EVENT_SETS(e, model, "gpt-4o-mini");
    SG_EVENT_SETS(e, deployment, "primary");
    e->status = 200;
    e->latency_ms_total = 412.5;
    e->ttft_ms = 88.25;
    e->overhead_us = 35;
    e->input_tokens = 240;
    e->output_tokens = 42;
    e->cost_usd = 0.0000612;
    return e;
}

static const char *journal_dir; /* NULL: the default (/dev/shm); "": none (--no-journal) */

static struct sg_store *open_store(const char *url, const char *spool, size_t qcap)
{
    char err[512];
    struct sg_store_backend *be = sg_store_backend_for_url(url, err, sizeof err);
    if (!be) {
        fprintf(stderr, "store_bench: %s\n", err);
        exit(2);
    }
    struct sg_store_options o = {
        .spool_path = spool, .queue_capacity = qcap, .journal_dir = journal_dir};
    struct sg_store *s = sg_store_new(be, &o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "store_bench: %s\n", err);
        exit(1);
    }
    return s;
}

/* CPU seconds (utime + stime) the writer thread (named sg-store) has used so far. */
static double writer_cpu_s(void)
{
    DIR *d = opendir("/proc/self/task");
    double s = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[300], line[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = '\0';
        const char *rp = strrchr(line, ')');
        unsigned long ut = 0, st = 0;
        /* after "(comm) ": state, then fields 4..13; utime and stime are fields 14 and 15 */
        if (strstr(line, "(sg-store)") && rp &&
            sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            s += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    if (d)
        closedir(d);
    return s;
}

static struct sg_store_stats stats(struct sg_store *s)
{
    struct sg_store_stats st;
    sg_store_stats(s, &st);
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: store_bench URL [EVENTS] [--no-journal]\n");
        return 2;
    }
    const char *url = argv[1];
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    if (argc > 3 && strcmp(argv[3], "--no-journal") == 0)
        journal_dir = "";
    sg_log_set_level(SG_LOG_WARN);
    char dir[] = "/tmp/slogate-store-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char spool[96], run[32];
    snprintf(spool, sizeof spool, "%s/spool.jsonl", dir);
    snprintf(run, sizeof run, "b%" PRIx64, sg_wall_us());

    /* Phase 1: warm-up (schema, caches). */
    struct sg_store *s = open_store(url, spool, 8192);
    struct sg_store_stats st;
    for (uint64_t i = 0; i < n; i++) {
        while (sg_store_stats(s, &st), st.queued > st.queue_capacity / 2)
            usleep(100);
        sg_store_submit(s, make_event(i, run));
    }
    while (stats(s).rows_written + stats(s).duplicates < n && stats(s).lost == 0)
        usleep(2000);
    sg_store_close(s, 60000);

    /* Phase 2: sustained rows per second, the queue never full. */
    s = open_store(url, spool, 8192);
    st = stats(s);
    uint64_t base = st.rows_written, work_ns = 0;
    uint64_t t0 = sg_now_us();
    for (uint64_t i = 0; i < n; i++) {
        while (sg_store_stats(s, &st), st.queued > st.queue_capacity / 2)
            usleep(100);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        sg_store_submit(s, make_event(n + i, run));
        clock_gettime(CLOCK_MONOTONIC, &b);
        work_ns += (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec));
    }
    double submit_ns = (double)work_ns / (double)n;
    while (sg_store_stats(s, &st),
           st.rows_written - base < n && st.lost == 0 && sg_now_us() - t0 < 300000000u)
        usleep(1000);
    uint64_t t1 = sg_now_us();
    double writer_s = writer_cpu_s();
    st = stats(s);
    double secs = (double)(t1 - t0) / 1e6;
    printf("{\"url_scheme\":\"%.*s\",\"journal\":%s,\"events\":%" PRIu64
           ",\"submit_ns_per_event\":%.0f,"
           "\"rows_per_s\":%.0f,\"writer_cpu_us_per_row\":%.2f,\"batches\":%" PRIu64
           ",\"overflows\":%" PRIu64 ",\"lost\":%" PRIu64 "}\n",
           (int)(strstr(url, "://") ? strstr(url, "://") - url : 0), url,
           journal_dir ? "false" : "true", n, submit_ns, (double)(st.rows_written - base) / secs,
           writer_s * 1e6 / (double)n, st.batches, st.overflows, st.lost);
    sg_store_close(s, 60000);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
