/* The open-files limit: raised to the hard limit at start, as nginx's worker_rlimit_nofile. */
#include "base.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/resource.h>

/* Where the hard limit is "unlimited" (never on Linux, where nr_open caps it; possible on BSDs),
 * the soft limit is raised this far. Linux's default nr_open. */
#define NOFILE_UNLIMITED_CAP ((rlim_t)1 << 20)

uint64_t sg_nofile_raise(uint64_t need, const char *why)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        SG_WARN("base", "cannot read the open-files limit: %s", strerror(errno));
        return 0;
    }
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? NOFILE_UNLIMITED_CAP : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) {
        want = rl.rlim_cur; /* already there: never lower it */
    } else {
        struct rlimit up = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) != 0) {
            SG_WARN("base", "cannot raise the open-files limit from %" PRIu64 " to %" PRIu64 ": %s",
                    (uint64_t)rl.rlim_cur, (uint64_t)want, strerror(errno));
            want = rl.rlim_cur;
        }
    }
    uint64_t now = want == RLIM_INFINITY ? UINT64_MAX : (uint64_t)want;
    if (need > now)
        SG_WARN("base",
                "the open-files limit is %" PRIu64 " (hard limit %s%" PRIu64 "), below the %" PRIu64
                " descriptors %s can need: connections past it fail. "
                "Raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower the maximum",
                now, rl.rlim_max == RLIM_INFINITY ? "unlimited, " : "",
                rl.rlim_max == RLIM_INFINITY ? now : (uint64_t)rl.rlim_max, need,
                why ? why : "this process");
    return now;
}
