"""The chaos soak's short mode (tests/soak/run; docs/testing.md, The chaos soak): one minute of
mixed client load through a gateway on SQLite while, on a fixed seed's schedule, the providers
fail in every way the mock knows, another process locks the database, SIGHUP reloads a changed
config, a SIGKILL and then a SIGTERM restart the gateway on the same store and spool. Every
invariant must hold: one row per answered request, no duplicate, the spend the clients were shown
equal to the rows', /metrics equal to the rows of each lifetime, no sanitizer report, RSS
bounded, ready at the end.

The runner's process group holds everything the soak starts (--no-session), and its files live
in this test's temporary directory."""

import os
import re
import subprocess
import sys

from harness import REPO, check, contains, time_limit

# Its plan: a SIGKILL, a graceful restart, 3 reloads, 2 SQLite locks and 10 provider faults (hang,
# reset mid-stream, 5xx, 503, cut answers, no usage, slow ...), on both mocks.
SEED = 18


@time_limit(110)
def test_soak_one_minute_of_chaos_every_invariant_holds(fx):
    env = dict(os.environ, TMPDIR=fx.dir)
    p = subprocess.run([sys.executable, os.path.join(REPO, "tests", "soak", "run"),
                        "--minutes", "1", "--seed", str(SEED), "--bin", fx.bin, "--no-session"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=100)
    out = p.stdout.decode("utf-8", "replace")
    failed = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
    check(p.returncode == 0 and not failed,
          "the soak failed (exit %d): %s\n%s" % (p.returncode, failed, out[-6000:]))
    # It did what it says: the seed's plan ran, with the kill and the reloads.
    chaos = re.search(r"^chaos: (.*)$", out, re.M)
    check(chaos, "the soak's summary names the chaos it ran: %s" % out[-2000:])
    for what in ("kill 1", "restart 1", "reload", "fault", "sqlite-lock"):
        contains(chaos.group(1), what, "the chaos the seed plans")
    m = re.search(r"^load: (\d+) requests .* (\d+) gateway lifetimes, (\d+) rows$", out, re.M)
    check(m and int(m.group(1)) > 1000 and m.group(2) == "3",
          "a load of more than 1000 requests over 3 gateway lifetimes: %s" % (m and m.group(0)))
    m = re.search(r"^soak: (\d+) passed, 0 failed$", out, re.M)
    check(m and int(m.group(1)) >= 10, "the soak's last line: every invariant checked passed")
