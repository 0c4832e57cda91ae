"""Several `slogate serve` instances with one config, one real redis-server and one real
PostgreSQL, under failure, the way an operator meets it (docs/instances.md): an admin action
on one instance and what the others do, Redis restarted empty or on a unix socket or with an
ACL user, the database stopped while two instances write and one is SIGKILLed, two instances
migrating an empty database at the same moment."""

import os
import shutil
import signal
import subprocess
import threading
import time

from harness import check, contains, eq, http, time_limit, wait_until
from pg import Postgres
from test_redis import start_redis
from test_router_faults import metric
from test_telemetry import Load, pg_count, send


# ---- helpers ----------------------------------------------------------------------------------

def ready(gw):
    r = http(gw.port, "GET", "/health/readiness", key=None)
    eq(r.status, 200, "GET /health/readiness (%s)" % r.text)
    return r.json()


def deployments(gw):
    r = http(gw.port, "GET", "/admin/deployments")
    eq(r.status, 200, "GET /admin/deployments (%s)" % r.text)
    return {d["id"]: d for d in r.json()["deployments"]}


def redis_cli(*args):
    """redis-cli's answer to one command, stripped; e.g. redis_cli("-p", port, "GET", key)."""
    exe = shutil.which("redis-cli")
    check(exe, "redis-cli is installed (scripts/install-deps)")
    r = subprocess.run([exe, "--no-auth-warning"] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    return r.stdout.decode().strip()


def redis_proc(fx):
    procs = [p for p in fx.procs if p.name == "redis" and p.alive()]
    check(procs, "a redis-server is running")
    return procs[-1]


def two_tier(fx, primary, secondary, redis_url, cooldown_time=30):
    cfg = fx.config([primary, secondary], general={"redis_url": redis_url})
    cfg["router_settings"] = {"allowed_fails": 3, "cooldown_time": cooldown_time,
                              "num_retries": 1}
    return cfg


def wait_redis_ok(*gws):
    for g in gws:
        wait_until(lambda: ready(g)["redis"] == "ok", 5, "%s to reach Redis" % g.proc.name)


# ---- admin actions on one instance -----------------------------------------------------------

@time_limit(40)
def test_drill_rollback_on_one_instance_clears_the_shared_cooldown_everywhere(fx):
    """A drill revokes the primary's key on gateway-1 only (faults are per instance); its 401
    cools the primary, and the cooldown reaches gateway-2 through Redis (shared). The rollback
    — faults off, clear-cooldowns, on gateway-1 — used to clear gateway-1 alone: gateway-2 kept
    its adopted copy and sent nothing to the healthy primary for the rest of cooldown_time
    (30 s here). A clear is now shared like the cooldown it clears."""
    rport = start_redis(fx)
    a, b = fx.mock("provider-a"), fx.mock("provider-b")
    cfg = two_tier(fx, a, b, "redis://127.0.0.1:%d/0" % rport)
    gw1, gw2 = fx.gateway(cfg, name="gateway-1"), fx.gateway(cfg, name="gateway-2")
    wait_redis_ok(gw1, gw2)
    r = http(gw1.port, "POST", "/admin/faults", {"deployment": "primary", "revoke_key": True})
    eq(r.status, 200, "fault set on gateway-1 (%s)" % r.text)
    eq(http(gw2.port, "GET", "/admin/faults").json()["faults"], [],
       "drill faults are gateway-1's own: gateway-2 has none")
    eq(gw1.chat().header("x-slogate-deployment"), "secondary", "gateway-1 fails over on the 401")
    wait_until(lambda: deployments(gw2)["primary"]["state"] == "cooling", 3,
               "gateway-2 to adopt the cooldown")
    # Rollback, as `slogate drill` does it, on gateway-1 only.
    eq(http(gw1.port, "DELETE", "/admin/faults").status, 200, "faults off")
    eq(http(gw1.port, "POST", "/admin/deployments/clear-cooldowns").status, 200, "cleared")
    eq(deployments(gw1)["primary"]["state"], "healthy", "gateway-1 cleared it")
    wait_until(lambda: deployments(gw2)["primary"]["state"] == "healthy", 3,
               "gateway-2 to drop the cooldown cleared on gateway-1")
    r = gw2.chat()
    eq(r.status, 200, "gateway-2 answers (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "primary", "gateway-2 is back on the primary")
    time.sleep(0.6)  # two more rounds: nobody re-adopts it
    for g in (gw1, gw2):
        eq(deployments(g)["primary"]["state"], "healthy", "%s after two rounds" % g.proc.name)
    eq(metric(gw2, "slogate_deployment_healthy", deployment="primary"), 1.0,
       "gateway-2's metric says the primary takes traffic")
    # A cooldown taken after the clear is new: it is shared again, over the clear's mark.
    eq(http(gw2.port, "POST", "/admin/faults", {"deployment": "primary",
                                                "revoke_key": True}).status, 200, "fault on gw2")
    eq(gw2.chat().header("x-slogate-deployment"), "secondary", "gateway-2 fails over")
    wait_until(lambda: deployments(gw1)["primary"]["state"] == "cooling", 3,
               "gateway-1 to adopt gateway-2's new cooldown")


@time_limit(40)
def test_pin_and_disable_are_per_instance(fx):
    """Decided (docs/instances.md): a pin, a disable and a drill fault act on the instance that
    got them, as LiteLLM's in-memory router state does; only cooldowns (and clearing them) are
    shared. An operator pins or disables on every instance, or reloads a config everywhere."""
    rport = start_redis(fx)
    a, b = fx.mock("provider-a"), fx.mock("provider-b")
    cfg = two_tier(fx, a, b, "redis://127.0.0.1:%d/0" % rport)
    gw1, gw2 = fx.gateway(cfg, name="gateway-1"), fx.gateway(cfg, name="gateway-2")
    wait_redis_ok(gw1, gw2)
    eq(http(gw1.port, "POST", "/admin/deployments/secondary/pin").status, 200, "pin on gw1")
    eq(http(gw1.port, "POST", "/admin/deployments/primary/disable").status, 200, "disable")
    eq(gw1.chat().header("x-slogate-deployment"), "secondary", "gateway-1 follows its pin")
    time.sleep(0.6)  # two sync rounds
    d = deployments(gw2)
    eq((d["secondary"]["pinned"], d["primary"]["disabled"]), (False, False),
       "gateway-2 has neither the pin nor the disable")
    eq(gw2.chat().header("x-slogate-deployment"), "primary", "gateway-2 routes as configured")


# ---- Redis ------------------------------------------------------------------------------------

@time_limit(60)
def test_redis_restarted_empty_gets_the_live_cooldowns_back(fx):
    """Redis stopped in the middle of a load on two instances, then started again on the same
    port with nothing in it. Clients saw no error; readiness and slogate_redis_up said degraded
    and then recovered (the metric did not exist). The cooldown published before the restart was
    gone from Redis for good — each instance believed Redis still had it — so an instance
    started after the restart tried the deployment its peers knew to be down. Instances now
    publish again a live cooldown Redis no longer holds."""
    rport = start_redis(fx)
    a, b = fx.mock("provider-a", key="not-the-key"), fx.mock("provider-b")  # primary: 401
    cfg = two_tier(fx, a, b, "redis://127.0.0.1:%d/0" % rport)
    gw1, gw2 = fx.gateway(cfg, name="gateway-1"), fx.gateway(cfg, name="gateway-2")
    wait_redis_ok(gw1, gw2)
    eq(metric(gw1, "slogate_redis_up"), 1.0, "slogate_redis_up while Redis answers")
    eq(gw1.chat().header("x-slogate-deployment"), "secondary", "gateway-1 cools the primary")
    key = "slogate:cooldown:primary"
    wait_until(lambda: redis_cli("-p", rport, "EXISTS", key) == "1", 3, "the shared cooldown")
    loads = [Load(gw1, threads=2), Load(gw2, threads=2)]
    time.sleep(0.3)
    redis_proc(fx).kill()
    wait_until(lambda: "unreachable" in ready(gw2)["redis"], 5, "readiness to say so")
    eq(metric(gw2, "slogate_redis_up"), 0.0, "slogate_redis_up while Redis is away")
    time.sleep(0.5)
    start_redis(fx, port=rport)  # empty: no persistence
    wait_redis_ok(gw1, gw2)
    eq(metric(gw2, "slogate_redis_up"), 1.0, "slogate_redis_up once Redis is back")
    time.sleep(0.3)
    results = loads[0].stop() + loads[1].stop()
    check(len(results) > 50, "the load ran (%d requests)" % len(results))
    eq([x for x in results if x[0] != 200], [], "client requests that failed")
    wait_until(lambda: redis_cli("-p", rport, "EXISTS", key) == "1", 3,
               "the live cooldown published again in the restarted Redis")
    left = int(redis_cli("-p", rport, "PTTL", key))
    check(10000 < left <= 30000, "with the time it has left: %d ms" % left)
    gw3 = fx.gateway(cfg, name="gateway-3")
    wait_redis_ok(gw3)
    wait_until(lambda: deployments(gw3)["primary"]["state"] == "cooling", 3,
               "an instance started after the restart adopts the cooldown")
    a.reset_stats()
    r = gw3.chat()
    eq((r.status, r.header("x-slogate-attempts")), (200, "1"),
       "gateway-3 goes straight to the secondary")
    eq(a.stats()["requests"], 0, "the dead primary saw nothing from gateway-3")


@time_limit(40)
def test_redis_url_with_an_acl_user_an_escaped_password_and_a_database(fx):
    """redis://user:password@host:port/db as redis-py (LiteLLM) reads it. The user was dropped
    (AUTH with the password alone is the user `default`: refused), a %-escaped password was sent
    escaped, and a database number the server refuses was ignored: the instance said "ok" while
    it shared through database 0. Wrong credentials or database now say what was refused."""
    sock = fx.path("redis.sock")
    rport = start_redis(fx, args=["--requirepass", "default-secret",
                                  "--user", "gw", "on", ">p@ss:w/rd", "~slogate:*", "+@all",
                                  "--unixsocket", sock, "--unixsocketperm", "700"])
    a, b = fx.mock("provider-a", key="not-the-key"), fx.mock("provider-b")
    good = "redis://gw:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d/3" % rport
    gw = fx.gateway(two_tier(fx, a, b, good), name="gateway-acl")
    wait_redis_ok(gw)
    eq(gw.chat().header("x-slogate-deployment"), "secondary", "the primary cools")
    auth = ["-p", rport, "--user", "gw", "--pass", "p@ss:w/rd"]
    wait_until(lambda: redis_cli(*(auth + ["-n", 3, "EXISTS", "slogate:cooldown:primary"]))
               == "1", 3, "the cooldown in database 3")
    eq(redis_cli(*(auth + ["-n", 0, "EXISTS", "slogate:cooldown:primary"])), "0",
       "and not in database 0")
    gw.proc.kill()
    # The same Redis through its unix socket (unix://[[user]:password@]/path[?db=N]).
    gwu = fx.gateway(two_tier(fx, a, b, "unix://:default-secret@%s?db=3" % sock),
                     name="gateway-unix")
    wait_redis_ok(gwu)
    wait_until(lambda: deployments(gwu)["primary"]["state"] == "cooling", 3,
               "the unix-socket instance adopts the cooldown in database 3")
    # What a mistake says, in readiness, the metric and the log.
    for url, says in (("redis://gw:hunter2@127.0.0.1:%d/3" % rport, "AUTH refused (WRONGPASS"),
                      ("redis://:default-secret@127.0.0.1:%d/99" % rport,
                       "SELECT refused (ERR DB index is out of range)")):
        g = fx.gateway(two_tier(fx, a, b, url), name="gateway-bad")
        wait_until(lambda: says in g.proc.stderr(), 5, "the log to say %r" % says)
        time.sleep(0.6)  # rounds that would have been answered on database 0
        contains(ready(g)["redis"], "unreachable", "readiness for %s" % url)
        eq(metric(g, "slogate_redis_up"), 0.0, "slogate_redis_up for %s" % url)
        check("hunter2" not in g.proc.stderr() and "default-secret" not in g.proc.stderr(),
              "no password in the log: %s" % g.proc.stderr()[-600:])
        eq(g.chat().status, 200, "served on local state")
        g.proc.kill()


# ---- PostgreSQL -------------------------------------------------------------------------------

@time_limit(120)
def test_two_instances_postgres_down_one_killed_every_answer_one_row(fx):
    """Two instances write to one PostgreSQL; it stops; both spool (each its own slot in their
    shared directory); one is SIGKILLed with its spool pending and started again while the other
    keeps writing; the database comes back. Every answered request is one row, none twice."""
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": url})
    gw1, gw2 = fx.gateway(cfg, name="gateway-1"), fx.gateway(cfg, name="gateway-2")
    loads = [Load(gw1, threads=2), Load(gw2, threads=2)]
    time.sleep(0.8)
    pg.stop()
    for g in (gw1, gw2):
        wait_until(lambda: metric(g, "slogate_store_spool_events", backend="postgres") > 0, 10,
                   "%s to spool" % g.proc.name)
    first = loads[0].stop()  # gateway-1's clients stop before it is killed
    gw1.proc.signal(signal.SIGKILL)
    gw1.proc.wait(5)
    gw1b = fx.gateway(cfg, name="gateway-1b")  # started again while the database is down
    more = send(gw1b, 20)
    pg.start()
    results = first + loads[1].stop() + [(200, i) for i in more]
    eq([x for x in results if x[0] != 200], [], "client requests that failed")
    ids = [rid for _, rid in results]
    wait_until(lambda: pg_count(pg) >= len(ids), 30, "%d rows" % len(ids))
    time.sleep(0.5)
    eq(pg.query("SELECT count(*), count(DISTINCT request_id) FROM slogate_requests", "slogate"),
       "%d|%d" % (len(ids), len(ids)), "rows and distinct request ids")
    stored = set(pg.query("SELECT request_id FROM slogate_requests", "slogate").split("\n"))
    eq([i for i in ids if i not in stored], [], "answered requests without a row")


@time_limit(60)
def test_instances_starting_together_migrate_an_empty_database_once(fx):
    """Three instances start at the same moment against an empty PostgreSQL: one applies each
    migration, the others wait on the advisory lock and find it done; every one writes."""
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": url})
    paths = [fx.write_config(cfg, "gw%d.yaml" % i) for i in range(3)]
    procs = [fx.spawn(["serve", "-c", p, "--port", "0", "--workers", "1", "--log-level",
                       "info"], "gateway-%d" % i) for i, p in enumerate(paths)]
    ports = [int(p.wait_line(r"^slogate listening on http://[\d.]+:(\d+) ").group(1))
             for p in procs]
    ids = []
    for port in ports:
        r = http(port, "POST", "/v1/chat/completions",
                 {"model": "app/chat", "messages": [{"role": "user", "content": "hi"}]})
        eq(r.status, 200, "each instance answers (%s)" % r.text)
        ids.append(r.header("x-request-id"))
    wait_until(lambda: pg_count(pg) == 3, 10, "each instance's row")
    eq(pg.query("SELECT string_agg(version::text, ',' ORDER BY version) FROM "
                "slogate_schema_migrations", "slogate"), "1,2,3,4", "each migration once")
    applied = sum(p.stderr().count("applied schema migration") for p in procs)
    eq(applied, 4, "migrations applied in all (one instance applies each)")
    for p in procs:
        bad = [ln for ln in p.stderr().splitlines() if "store" in ln and "info" not in ln]
        eq(bad, [], "%s: store warnings or errors" % p.name)
