"""Request telemetry and the store: every request a row (SQLite and a real PostgreSQL), nothing
lost or doubled when PostgreSQL goes away mid-load or the gateway is killed meanwhile, Prometheus
/metrics checked by promtool, OTLP spans received by a collector in this process, the JSON lines
request log."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import MASTER_KEY, Conn, chat_body, check, contains, eq, http, time_limit, wait_until
from pg import Postgres


# ---- helpers ----------------------------------------------------------------------------------

def sqlite_rows(path, sql="SELECT count(*) FROM slogate_requests"):
    if not os.path.exists(path):
        return None
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return None  # not created yet
    finally:
        con.close()


def sqlite_count(path):
    r = sqlite_rows(path)
    return r[0][0] if r else 0


def metrics(gw, key=MASTER_KEY):
    r = http(gw.port, "GET", "/metrics", key=key)
    eq(r.status, 200, "GET /metrics (%s)" % r.text[:300])
    return r.text


def metric(text, name, **labels):
    """The value of one sample, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all('%s="%s"' % (k, v) in head for k, v in labels.items()):
            return float(value)
    return None


def promtool_check(text):
    promtool = shutil.which("promtool")
    check(promtool, "promtool is installed (Debian package prometheus; scripts/install-deps)")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    eq(p.returncode, 0, "promtool check metrics: %s" % p.stdout.decode()[:2000])


def pg_count(pg, db="slogate"):
    """Rows in slogate_requests; -1 while the table does not exist yet or the server is away."""
    try:
        return int(pg.query("SELECT count(*) FROM slogate_requests", db))
    except Exception:
        return -1


def readiness(gw):
    r = http(gw.port, "GET", "/health/readiness", key=None)
    return r.status, r.json()


def send(gw, n, **kw):
    """n chat requests; returns the x-request-id of each answer, in order."""
    ids = []
    for _ in range(n):
        r = gw.chat(chat_body(**kw))
        eq(r.status, 200, "chat status (%s)" % r.text[:300])
        ids.append(r.header("x-request-id"))
    return ids


class Load:
    """Requests in a few client threads until stop(); every answer's status and id is kept."""

    def __init__(self, gw, threads=3, pause=0.005):
        self.gw, self.pause = gw, pause
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                r = self.gw.chat(chat_body(), timeout=15)
                res = (r.status, r.header("x-request-id"))
            except Exception as e:  # a failed request is a finding, not a crash of the test
                res = (0, repr(e))
            with self.lock:
                self.results.append(res)
            time.sleep(self.pause)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(20)
        return self.results


# ---- SQLite ----------------------------------------------------------------------------------

@time_limit(60)
def test_sqlite_every_request_is_one_row(fx):
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + fx.path("t.db")})
    cfg["model_list"][0]["litellm_params"]["region_name"] = "eu-west-1"
    gw = fx.gateway(cfg, workers=2)
    ids = send(gw, 150)
    ids += send(gw, 20, stream=True)
    # Requests that fail count too: a bad key, an unknown model, bad JSON.
    r = gw.chat(chat_body(), key="wrong")
    eq(r.status, 401, "wrong key")
    ids.append(r.header("x-request-id"))
    r = gw.chat(chat_body(model="no/such-model"))
    eq(r.status, 404, "unknown model")
    ids.append(r.header("x-request-id"))
    r = http(gw.port, "POST", "/v1/chat/completions", "{nope")
    eq(r.status, 400, "bad JSON")
    # So do the ones the HTTP layer refuses before the handler: too large, malformed, headers too
    # large. A refusal on another path is no model request and no row.
    refused = [(b"Content-Length: 50000000\r\n", 413),
               (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
               (b"X-Big: " + b"b" * 20000 + b"\r\nContent-Length: 2\r\n", 431)]
    for path in (b"/v1/chat/completions", b"/elsewhere"):
        for head, status in refused:
            with Conn(gw.port) as c:
                c.send(b"POST " + path + b" HTTP/1.1\r\nHost: t\r\n" + head + b"\r\n{}")
                r = c.read_response()
            eq(r.status, status, "%s refused (%s)" % (path, r.text))
            if path == b"/v1/chat/completions":
                ids.append(r.header("x-request-id"))
    check(None not in ids, "every model request's answer has an x-request-id")
    n = 150 + 20 + 3 + 3
    db = fx.path("t.db")
    wait_until(lambda: sqlite_count(db) >= n, 10, "%d rows in SQLite" % n)
    time.sleep(0.5)  # nothing more arrives
    eq(sqlite_count(db), n, "rows in slogate_requests")
    eq(sqlite_rows(db, "SELECT count(DISTINCT request_id) FROM slogate_requests")[0][0], n,
       "distinct request ids")
    stored = set(r[0] for r in sqlite_rows(db, "SELECT request_id FROM slogate_requests"))
    missing = [i for i in ids if i not in stored]
    eq(missing, [], "answers' x-request-id values missing from the store")
    rows = sqlite_rows(db, "SELECT status, count(*) FROM slogate_requests GROUP BY status")
    eq(dict(rows), {200: 170, 400: 2, 401: 1, 404: 1, 413: 1, 431: 1}, "rows by status")
    e = sqlite_rows(db, "SELECT status, error_type, ttft_ms >= 0, overhead_us FROM "
                        "slogate_requests WHERE status IN (413, 431) OR error_type = 'bad_request' "
                        "ORDER BY status")
    eq([list(x) for x in e], [[400, "bad_request", 1, 0], [413, "request_too_large", 1, 0],
                              [431, "headers_too_large", 1, 0]], "the refusals' rows")
    one = sqlite_rows(db, "SELECT tenant_id, alias, provider, model, deployment, region, "
                          "error_type, input_tokens > 0, output_tokens > 0, latency_ms_total > 0, "
                          "ttft_ms > 0, ttft_ms <= latency_ms_total, overhead_us > 0, retries, "
                          "failover_hops, cost_usd > 0, stream, start_time LIKE '20__-__-__T%Z' "
                          "FROM slogate_requests WHERE request_id = ?".replace("?", "'%s'" % ids[0]))
    eq(list(one[0]), ["default", "app/chat", "openai", "gpt-4o-mini", "primary", "eu-west-1",
                      None, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1], "the row of a plain request")
    st = sqlite_rows(db, "SELECT count(*) FROM slogate_requests WHERE stream = 1 AND "
                         "output_tokens > 0 AND ttft_ms > 0")[0][0]
    eq(st, 20, "streamed rows with usage and time to first token")
    e = sqlite_rows(db, "SELECT error_type, alias, deployment FROM slogate_requests "
                        "WHERE status = 404")[0]
    eq(list(e), ["model_not_found", "no/such-model", None], "the 404's row")
    version = sqlite_rows(db, "SELECT max(version) FROM slogate_schema_migrations")[0][0]
    check(version >= 1, "schema migrated (version %r)" % version)
    # `slogate check` reports it.
    r = fx.cli(["check", "-c", gw.config_path])
    eq(r.code, 0, "check (%s)" % r)
    contains(r.out, "schema version %d (current)" % version, "check names the schema version")


def test_attribution_user_and_feature(fx):
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + fx.path("a.db")})
    gw = fx.gateway(cfg)
    a = gw.chat(chat_body(user="end-user-7", metadata={"feature": "from-body"}))
    b = gw.chat(chat_body(metadata={"feature": "from-body"}),
                headers={"x-slogate-feature": "from-header"})
    c = gw.chat(chat_body())
    for r in (a, b, c):
        eq(r.status, 200, "chat")
    db = fx.path("a.db")
    wait_until(lambda: sqlite_count(db) == 3, 10, "3 rows")
    got = {rid: (t, u, f) for rid, t, u, f in sqlite_rows(
        db, "SELECT request_id, tenant_id, user_id, feature FROM slogate_requests")}
    eq(got[a.header("x-request-id")], ("default", "end-user-7", "from-body"), "user and feature")
    eq(got[b.header("x-request-id")], ("default", None, "from-header"),
       "x-slogate-feature wins over metadata.feature")
    eq(got[c.header("x-request-id")], ("default", None, None), "nothing given")


@time_limit(60)
def test_long_user_and_feature_stay_distinct(fx):
    # Ids longer than the row's column keep their start and a hash of the whole, so two long
    # ids that differ only at the end are still two users (budgets and reports count by them).
    m = fx.mock()
    db = fx.path("long.db")
    gw = fx.gateway(fx.config([m], general={"database_url": "sqlite://" + db}))
    base = "tenant-42/" + "é" * 100  # 210 bytes of UTF-8
    ids = []
    for tail in ("-a", "-b"):
        r = gw.chat(chat_body(user=base + tail, metadata={"feature": "f" * 80 + tail}))
        eq(r.status, 200, "chat")
        ids.append(r.header("x-request-id"))
    r = gw.chat(chat_body(user="short"), headers={"x-slogate-feature": "h" * 70 + "-a"})
    ids.append(r.header("x-request-id"))
    wait_until(lambda: sqlite_count(db) == 3, 10, "3 rows")
    got = dict((rid, (u, f)) for rid, u, f in sqlite_rows(
        db, "SELECT request_id, user_id, feature FROM slogate_requests"))
    (u1, f1), (u2, f2), (u3, f3) = (got[i] for i in ids)
    check(u1 and u2 and u1 != u2, "two long users stay two users: %r %r" % (u1, u2))
    for u in (u1, u2):
        check(len(u.encode()) <= 127 and u.startswith("tenant-42/éé"),
              "a long user keeps its start and fits the column: %r" % u)
    check(f1 and f2 and f1 != f2 and f1.startswith("ffff"), "long features: %r %r" % (f1, f2))
    eq(u3, "short", "a short user as given")
    check(f3 and f3.startswith("hhhh") and len(f3) <= 63, "long header feature: %r" % f3)


@time_limit(60)
def test_client_gone_is_a_499_row_naming_the_deployment_it_waited_for(fx):
    # A client that leaves while the provider is still thinking: the row says 499 and which
    # deployment the request was at, as a client that leaves mid-stream does.
    m = fx.mock(latency_ms=600)
    db = fx.path("gone.db")
    gw = fx.gateway(fx.config([m], general={"database_url": "sqlite://" + db}))
    for stream in (False, True):
        c = Conn(gw.port)
        c.request("POST", "/v1/chat/completions", chat_body(stream=stream))
        wait_until(lambda: m.stats()["in_flight"] == 1, 3, "the request to reach the provider")
        c.close()
        wait_until(lambda: m.stats()["in_flight"] == 0, 3, "the provider call to be cancelled")
    wait_until(lambda: sqlite_count(db) == 2, 10, "2 rows")
    got = sqlite_rows(db, "SELECT status, error_type, deployment, provider, model, stream "
                          "FROM slogate_requests ORDER BY request_id")
    want = ("primary", "openai", "gpt-4o-mini")
    eq(got, [(499, "client_disconnected") + want + (0,), (499, "client_disconnected") + want + (1,)],
       "499 rows with their deployment")


@time_limit(60)
def test_reload_added_deployment_has_its_own_series(fx):
    """A deployment added by a reload is counted under its own name at once (not under
    deployment=""), and the counters of the one it kept carry on."""
    a, b = fx.mock(name="provider-a"), fx.mock(name="provider-b")
    cfg = fx.config([a])
    gw = fx.gateway(cfg, workers=2)
    send(gw, 3)
    cfg2 = fx.config([a, b])
    cfg2["model_list"][1]["model_info"]["id"] = "added"
    cfg2["model_list"][1]["litellm_params"]["order"] = 1  # before the primary
    cfg2["model_list"][0]["litellm_params"]["order"] = 2
    fx.write_config(cfg2, "gateway.yaml")
    r = http(gw.port, "POST", "/admin/reload", key=MASTER_KEY)
    eq(r.status, 200, "reload (%s)" % r.text[:200])
    send(gw, 4)
    text = metrics(gw)
    eq(metric(text, "slogate_requests_total", alias="app/chat", deployment="added",
              status_class="2xx"), 4.0, "requests of the added deployment")
    eq(metric(text, "slogate_requests_total", alias="app/chat", deployment="primary",
              status_class="2xx"), 3.0, "the kept deployment's counter carried on")
    eq(metric(text, "slogate_requests_total", alias="app/chat", deployment="",
              status_class="2xx"), 0.0, "nothing counted under the group instead")
    eq(metric(text, "slogate_deployment_healthy", deployment="added"), 1.0,
       "the added deployment's state")
    check(metric(text, "slogate_cost_usd_total", alias="app/chat", deployment="added") > 0,
          "its cost")
    promtool_check(text)


# ---- PostgreSQL ------------------------------------------------------------------------------

@time_limit(90)
def test_postgres_every_request_is_one_row(fx):
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    gw = fx.gateway(fx.config([m], general={"database_url": url}), workers=2)
    ids = send(gw, 120) + send(gw, 10, stream=True)
    wait_until(lambda: pg_count(pg) == 130, 15,
               "130 rows in PostgreSQL")
    time.sleep(0.5)
    eq(pg.query("SELECT count(*), count(DISTINCT request_id) FROM slogate_requests", "slogate"),
       "130|130", "rows and distinct ids")
    stored = set(pg.query("SELECT request_id FROM slogate_requests", "slogate").split("\n"))
    eq([i for i in ids if i not in stored], [], "ids missing")
    version = int(pg.query("SELECT max(version) FROM slogate_schema_migrations", "slogate"))
    check(version >= 1, "schema migrated (version %d)" % version)
    eq(pg.query("SELECT count(*) FROM slogate_requests WHERE start_time > now() - interval "
                "'5 minutes' AND deployment = 'primary' AND status = 200 AND input_tokens > 0 "
                "AND cost_usd > 0 AND tenant_id = 'default'", "slogate"), "130",
       "typed columns (timestamptz, numbers)")
    r = fx.cli(["check", "-c", gw.config_path])
    contains(r.out, "schema version %d (current)" % version,
             "check reports the PostgreSQL schema version")


# The columns in table order, as the request log names them.
COLUMNS = ["request_id", "start_unix_us", "tenant_id", "user_id", "feature", "alias", "provider",
           "model", "deployment", "region", "status", "error_type", "latency_ms_total", "ttft_ms",
           "overhead_us", "retries", "failover_hops", "input_tokens", "output_tokens",
           "cached_tokens", "cost_usd", "cache_hit", "cache_ttl_s", "stream", "usage_estimated"]


def pg_rows_by_id(pg):
    """{request_id: [column values as the request log writes them]} read back from PostgreSQL."""
    sel = ", ".join("(extract(epoch FROM start_time) * 1000000)::bigint" if c == "start_unix_us"
                    else "coalesce(%s, -1)" % c if c == "ttft_ms"
                    else "coalesce(%s, '')" % c if c in ("user_id", "feature", "region",
                                                          "error_type")
                    else c for c in COLUMNS)
    out = {}
    for line in pg.query("SELECT %s FROM slogate_requests" % sel, "slogate").split("\n"):
        v = line.split("|")
        out[v[0]] = v
    return out


def as_logged(col, text):
    """A psql value as the request log has it."""
    if col in ("cache_hit", "stream", "usage_estimated"):
        return text == "t"
    if col in ("latency_ms_total", "ttft_ms", "cost_usd"):
        return float(text)
    if col in ("start_unix_us", "status", "overhead_us", "retries", "failover_hops",
               "input_tokens", "output_tokens", "cached_tokens", "cache_ttl_s"):
        return int(text)
    return text


@time_limit(120)
def test_postgres_columns_exact_and_replay_of_stored_rows(fx):
    """Every column of every row equals the request's event (the request log is that event),
    doubles and the microsecond start time exactly; then a spool holding rows the database has
    already (a replay after a lost commit answer) adds only the new ones."""
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": url})
    cfg["model_list"][0]["litellm_params"]["region_name"] = "eu-west-1"
    cfg["telemetry"] = {"request_log": fx.path("req.jsonl")}
    gw = fx.gateway(cfg, workers=2)
    ids = send(gw, 12, user="end-user-\u00e9\t7", metadata={"feature": "summarize"})
    ids += send(gw, 6, stream=True)
    r = gw.chat(chat_body(model="no/such-model"))
    eq(r.status, 404, "unknown model")
    n = len(ids) + 1
    wait_until(lambda: pg_count(pg) == n, 15, "%d rows in PostgreSQL" % n)
    wait_until(lambda: len(read_lines([fx.path("req.jsonl")])) == n, 10, "%d log lines" % n)
    logged = read_lines([fx.path("req.jsonl")])
    rows = pg_rows_by_id(pg)
    for ev in logged:
        row = rows.get(ev["request_id"])
        check(row is not None, "a row for %s" % ev["request_id"])
        got = {c: as_logged(c, v) for c, v in zip(COLUMNS, row)}
        want = {c: ev.get(c, "") for c in COLUMNS}
        eq(got, want, "the row of %s" % ev["request_id"])
    eq(sorted(ev["status"] for ev in logged).count(404), 1, "the failed request is a row too")
    check(any(ev["user_id"] == "end-user-\u00e9\t7" for ev in logged),
          "the end user (with a tab and a non-ASCII letter) stored as sent")

    gw.proc.signal(signal.SIGTERM)
    gw.proc.wait(10)
    # The spool of a writer that committed these rows but never heard so: the same 19 events,
    # plus 5 the database has not seen.
    new = []
    for i in range(5):
        ev = dict(logged[i], request_id="replayed-%02d" % i)
        new.append(ev)
    with open(fx.path("slogate-spool.jsonl"), "w") as f:
        for ev in logged + new:
            f.write(json.dumps(ev) + "\n")
    gw2 = fx.gateway(cfg, workers=1, name="gateway2")
    wait_until(lambda: pg_count(pg) == n + 5, 20, "%d rows after the replay" % (n + 5))
    eq(pg.query("SELECT count(*), count(DISTINCT request_id) FROM slogate_requests", "slogate"),
       "%d|%d" % (n + 5, n + 5), "no duplicates")
    text = metrics(gw2)
    eq(metric(text, "slogate_store_duplicate_rows_total", backend="postgres"), float(n),
       "the rows already stored are counted as duplicates, not written")
    eq(metric(text, "slogate_store_rows_written_total", backend="postgres"), 5.0, "new rows")
    rows = pg_rows_by_id(pg)
    eq(rows["replayed-03"][1:], rows[logged[3]["request_id"]][1:], "a replayed row's columns")


@time_limit(60)
def test_invalid_utf8_in_a_header_is_still_a_row(fx):
    """x-slogate-feature is a header: its bytes need not be UTF-8, and PostgreSQL refuses text
    that is not. The byte is stored as U+FFFD, and neither that request's row nor the rows of the
    same batch are lost (PostgreSQL would refuse the batch, and its spool replay, forever)."""
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    gw = fx.gateway(fx.config([m], general={"database_url": url}))
    r = gw.chat(chat_body(), headers={"x-slogate-feature": "caf\xe9-\xff"})
    eq(r.status, 200, "a feature header that is not UTF-8 is still served")
    ids = [r.header("x-request-id")] + send(gw, 5)
    wait_until(lambda: pg_count(pg) == 6, 15, "6 rows in PostgreSQL")
    eq(pg.query("SELECT feature FROM slogate_requests WHERE request_id = '%s'" % ids[0],
                "slogate"), "caf\ufffd-\ufffd", "the invalid bytes stored as U+FFFD")
    eq(metric(metrics(gw), "slogate_store_degraded", backend="postgres"), 0.0,
       "the store is not stuck")


@time_limit(120)
def test_postgres_stopped_mid_load_nothing_lost_nothing_doubled(fx):
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    gw = fx.gateway(fx.config([m], general={"database_url": url}), workers=2)
    load = Load(gw)
    time.sleep(1.5)
    pg.stop()                                  # PostgreSQL goes away in the middle of the load
    t_down = time.monotonic()
    seen_degraded = False
    while time.monotonic() - t_down < 3:
        st, body = readiness(gw)
        eq(st, 200, "readiness stays 200 while the store is degraded (requests are served)")
        if body["store"]["status"] == "degraded":
            seen_degraded = True
        time.sleep(0.1)
    check(seen_degraded, "/health/readiness said the store is degraded while PostgreSQL was down")
    text = metrics(gw)
    eq(metric(text, "slogate_store_degraded", backend="postgres"), 1.0, "degraded metric")
    check(metric(text, "slogate_store_spool_events", backend="postgres") > 0,
          "events are spooled while the database is down")
    pg.start()
    time.sleep(1.5)
    results = load.stop()
    failed = [r for r in results if r[0] != 200]
    eq(failed, [], "client requests that failed during the outage")
    n = len(results)
    check(n > 100, "the load ran (%d requests)" % n)
    wait_until(lambda: pg_count(pg) == n, 30,
               "all %d rows in PostgreSQL after it came back" % n)
    time.sleep(0.5)
    eq(pg.query("SELECT count(*), count(DISTINCT request_id) FROM slogate_requests", "slogate"),
       "%d|%d" % (n, n), "no duplicates")
    stored = set(pg.query("SELECT request_id FROM slogate_requests", "slogate").split("\n"))
    eq([rid for _, rid in results if rid not in stored], [], "answered requests missing")
    wait_until(lambda: readiness(gw)[1]["store"]["status"] == "ok", 10, "the store back to ok")
    text = metrics(gw)
    eq(metric(text, "slogate_store_degraded", backend="postgres"), 0.0, "degraded metric")
    eq(metric(text, "slogate_store_spool_events", backend="postgres"), 0.0, "spool empty")
    eq(metric(text, "slogate_store_events_lost_total", backend="postgres"), 0.0, "nothing lost")


@time_limit(120)
def test_gateway_killed_while_db_down_replays_spool_on_restart(fx):
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": url})
    gw = fx.gateway(cfg, workers=2)
    ids = send(gw, 10)
    wait_until(lambda: pg_count(pg) == 10, 10,
               "10 rows")
    pg.stop()
    ids += send(gw, 60)
    # Wait until the writer has spooled them (the spool is a file: it survives SIGKILL).
    wait_until(lambda: metric(metrics(gw), "slogate_store_spool_events", backend="postgres") == 60,
               10, "60 events in the spool")
    gw.proc.signal(signal.SIGKILL)
    gw.proc.wait(5)
    check(os.path.getsize(fx.path("slogate-spool.jsonl")) > 0, "the spool file holds the events")
    pg.start()
    gw2 = fx.gateway(cfg, workers=1, name="gateway2")
    ids += send(gw2, 5)
    wait_until(lambda: pg_count(pg) == 75, 20,
               "75 rows after the restart replayed the spool")
    time.sleep(0.5)
    eq(pg.query("SELECT count(*), count(DISTINCT request_id) FROM slogate_requests", "slogate"),
       "75|75", "rows and distinct ids")
    stored = set(pg.query("SELECT request_id FROM slogate_requests", "slogate").split("\n"))
    eq([i for i in ids if i not in stored], [], "ids missing")
    wait_until(lambda: os.path.getsize(fx.path("slogate-spool.jsonl")) == 0, 10,
               "the spool emptied after the replay")


@time_limit(60)
def test_sqlite_locked_by_another_process_spools_and_survives_sigkill(fx):
    # Another process holds SQLite's write lock: the writer waits a moment, then spools, so a
    # SIGKILL loses nothing and the restart stores every row once the lock is gone.
    db = fx.path("locked.db")
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + db})
    gw = fx.gateway(cfg)
    ids = send(gw, 5)
    wait_until(lambda: sqlite_count(db) == 5, 10, "5 rows")
    lock = sqlite3.connect(db, timeout=5, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        ids += send(gw, 40)
        # Spooled within 3 s: the writer waits 250 ms for the lock (it used to wait 5 s, with
        # the batch in no queue and no file).
        wait_until(lambda: readiness(gw)[1]["store"]["spool_events"] == 40, 3,
                   "the 40 events spooled while the database is locked")
        gw.proc.signal(signal.SIGKILL)
        gw.proc.wait(5)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    gw2 = fx.gateway(cfg, name="gateway2")
    ids += send(gw2, 3)
    wait_until(lambda: sqlite_count(db) == 48, 20, "48 rows after the restart replayed the spool")
    eq(sqlite_rows(db, "SELECT count(DISTINCT request_id) FROM slogate_requests")[0][0], 48,
       "distinct ids")
    stored = set(r[0] for r in sqlite_rows(db, "SELECT request_id FROM slogate_requests"))
    eq([i for i in ids if i not in stored], [], "ids missing")


@time_limit(60)
def test_sigkill_with_the_database_up_loses_no_answered_request(fx):
    # Answered requests whose events still wait in the writer's memory (the next batch goes out
    # within 200 ms) when the gateway is killed: the crash journal keeps a copy, and the next
    # start writes them. They used to be lost.
    db = fx.path("k.db")
    jdir = fx.path("journal")  # telemetry.journal_dir: /dev/shm unless set
    os.mkdir(jdir)
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + db})
    cfg["telemetry"] = {"journal_dir": jdir}
    gw = fx.gateway(cfg)
    ids = send(gw, 20)
    eq(len([f for f in os.listdir(jdir) if f.endswith(".journal")]), 1, "the journal in its folder")
    queued = 0
    for _ in range(40):
        ids += send(gw, 3)
        queued = readiness(gw)[1]["store"]["queued"]
        if queued:
            break
    check(queued > 0, "answered requests' events wait in memory (queued %d)" % queued)
    gw.proc.signal(signal.SIGKILL)
    gw.proc.wait(5)
    check(sqlite_count(db) < len(ids), "the killed gateway had not written them all")
    gw2 = fx.gateway(cfg, name="gateway2")
    wait_until(lambda: sqlite_count(db) == len(ids), 10,
               "%d rows after the restart" % len(ids))
    eq(sqlite_rows(db, "SELECT count(DISTINCT request_id) FROM slogate_requests")[0][0],
       len(ids), "distinct ids")
    stored = set(r[0] for r in sqlite_rows(db, "SELECT request_id FROM slogate_requests"))
    eq([i for i in ids if i not in stored], [], "ids missing")
    contains(gw2.proc.stderr(), "held in memory when it ended", "the restart says what it recovered")
    eq(metric(metrics(gw2), "slogate_store_unjournaled_total", backend="sqlite"), 0.0,
       "every event had its journal copy")
    gw2.proc.signal(signal.SIGTERM)
    eq(gw2.proc.wait(10), 0, "gateway2 stops cleanly")
    eq(os.listdir(jdir), [], "a clean stop leaves no journal")

    # journal_dir: none turns it off: events are handed over uncopied, and counted.
    cfg["telemetry"] = {"journal_dir": "none"}
    gw3 = fx.gateway(cfg, name="gateway3")
    send(gw3, 4)
    eq(metric(metrics(gw3), "slogate_store_unjournaled_total", backend="sqlite"), 4.0,
       "events without a journal copy")


@time_limit(60)
def test_database_down_at_start_serves_and_reports(fx):
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    pg.stop()
    m = fx.mock()
    gw = fx.gateway(fx.config([m], general={"database_url": url}))
    ids = send(gw, 5)
    st, body = readiness(gw)
    eq(st, 200, "readiness status")
    wait_until(lambda: readiness(gw)[1]["store"]["status"] == "degraded", 10, "store degraded")
    pg.start()
    wait_until(lambda: pg_count(pg) == 5, 20,
               "the 5 rows once PostgreSQL is up (the schema created then)")
    stored = set(pg.query("SELECT request_id FROM slogate_requests", "slogate").split("\n"))
    eq(sorted(stored), sorted(ids), "the rows are the requests")


# ---- Prometheus --------------------------------------------------------------------------------

def test_metrics_pass_promtool_and_count(fx):
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + fx.path("m.db")})
    cfg["telemetry"] = {"metrics_token": "scrape-token"}
    gw = fx.gateway(cfg, workers=2)
    send(gw, 30)
    send(gw, 5, stream=True)
    m.faults(status=500)
    for _ in range(3):
        eq(gw.chat(chat_body()).status, 502, "a provider 500 is a 502")
    m.clear_faults()
    eq(gw.chat(chat_body(model="nope")).status, 404, "unknown model")
    # Who may scrape: the master key, the metrics token; nobody else.
    eq(http(gw.port, "GET", "/metrics", key=None).status, 401, "no key")
    eq(http(gw.port, "GET", "/metrics", key="wrong").status, 401, "wrong key")
    text = metrics(gw, key="scrape-token")
    promtool_check(text)
    r = http(gw.port, "GET", "/metrics")
    contains(r.header("content-type"), "text/plain; version=0.0.4", "content type")
    labels = dict(alias="app/chat", deployment="primary", provider="openai")
    eq(metric(text, "slogate_requests_total", status_class="2xx", **labels), 35, "2xx")
    eq(metric(text, "slogate_requests_total", status_class="5xx", **labels), 3, "5xx")
    eq(metric(text, "slogate_requests_total", alias="", status_class="4xx"), 1, "404 under alias=''")
    eq(metric(text, "slogate_request_failures_total", alias="app/chat",
              error_type="upstream_error"), 3, "failures by type")
    eq(metric(text, "slogate_request_failures_total", alias="", error_type="model_not_found"), 1,
       "404 failure")
    hl = dict(alias="app/chat", deployment="primary")
    eq(metric(text, "slogate_request_duration_seconds_bucket", le="+Inf", **hl), 38, "+Inf bucket")
    eq(metric(text, "slogate_request_duration_seconds_count", **hl), 38, "histogram count")
    # Buckets are cumulative.
    bs = [float(l.rpartition(" ")[2]) for l in text.splitlines()
          if l.startswith('slogate_request_duration_seconds_bucket{alias="app/chat",'
                          'deployment="primary"')]
    check(bs == sorted(bs) and len(bs) > 5, "cumulative buckets: %r" % bs)
    eq(metric(text, "slogate_time_to_first_token_seconds_count", **hl), 38, "ttft samples")
    check(metric(text, "slogate_tokens_total", type="output", **hl) > 0, "output tokens counted")
    check(metric(text, "slogate_cost_usd_total", **hl) > 0, "cost counted")
    eq(metric(text, "slogate_cache_requests_total", result="bypass"), 38, "cache results")
    eq(metric(text, "slogate_requests_in_flight"), 0, "in flight when idle")
    # Three failures in a row (allowed_fails: 3) put the deployment in cooldown.
    eq(metric(text, "slogate_deployment_healthy", deployment="primary"), 0, "deployment state")
    check(metric(text, "slogate_deployment_cooldown_remaining_seconds", deployment="primary") > 0,
          "cooldown left")
    eq(metric(text, "slogate_deployment_attempt_failures_total", deployment="primary"), 3,
       "failed attempts")
    check(metric(text, "slogate_overhead_seconds_count") == 39, "overhead samples")
    check(metric(text, "slogate_store_queue_depth", backend="sqlite") is not None, "queue depth")
    check(metric(text, "slogate_store_spool_bytes", backend="sqlite") == 0, "spool size")


# ---- OpenTelemetry ---------------------------------------------------------------------------

class Collector:
    """An OTLP/HTTP receiver in this process. `script` lists answers to give first, each a status
    or (status, headers); 200 afterwards. Keeps each accepted body and the time of every call."""

    def __init__(self, script=()):
        self.bodies, self.times, self.script = [], [], list(script)
        self.lock = threading.Lock()
        col = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("content-length", "0")))
                with col.lock:
                    col.times.append(time.monotonic())
                    ans = col.script.pop(0) if col.script else 200
                    status, headers = ans if isinstance(ans, tuple) else (ans, {})
                    if status == 200 and self.path == "/v1/traces":
                        col.bodies.append(json.loads(data))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def spans(self):
        with self.lock:
            return [s for b in self.bodies for rs in b["resourceSpans"]
                    for ss in rs["scopeSpans"] for s in ss["spans"]]

    def calls(self):
        with self.lock:
            return list(self.times)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = next(iter(v.values())) if v else None
    return out


@time_limit(40)
def test_otlp_spans_follow_genai_conventions(fx):
    col = Collector(script=[503])  # the first export is refused: it must be retried
    try:
        a, b = fx.mock(name="provider-a"), fx.mock(name="provider-b")
        cfg = fx.config([a, b], general={"database_url": "sqlite://" + fx.path("o.db")})
        cfg["telemetry"] = {"otlp_endpoint": "http://127.0.0.1:%d" % col.port}
        cfg["service"] = {"name": "Acme Assistant"}
        gw = fx.gateway(cfg)
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = gw.chat(chat_body(), headers={"traceparent": "00-%s-00f067aa0ba902b7-01" % trace})
        eq(r.status, 200, "chat")
        rid = r.header("x-request-id")
        sent = a.last()["headers"].get("traceparent", "")
        check(sent.startswith("00-%s-" % trace), "the provider got the caller's trace: %r" % sent)
        a.faults(status=500)  # the next request fails over to provider-b
        r2 = gw.chat(chat_body())
        eq(r2.status, 200, "failover")
        a.clear_faults()
        wait_until(lambda: len([s for s in col.spans() if s["kind"] == 2]) >= 2, 15,
                   "two request spans at the collector")
        check(len(col.calls()) >= 2, "the refused export was retried (%d calls)" % len(col.calls()))
        spans = col.spans()
        reqs = [s for s in spans if s["kind"] == 2]
        s1 = [s for s in reqs if attrs(s).get("slogate.request_id") == rid][0]
        eq(s1["name"], "chat app/chat", "span name: {operation} {model}")
        eq(s1["traceId"], trace, "the incoming trace id is kept")
        eq(s1["parentSpanId"], "00f067aa0ba902b7", "parent: the caller's span")
        at = attrs(s1)
        eq(at["gen_ai.operation.name"], "chat", "gen_ai.operation.name")
        eq(at["gen_ai.provider.name"], "openai", "gen_ai.provider.name")
        eq(at["gen_ai.request.model"], "app/chat", "gen_ai.request.model")
        eq(at["gen_ai.response.model"], "gpt-4o-mini", "gen_ai.response.model")
        check(int(at["gen_ai.usage.input_tokens"]) > 0, "input tokens")
        check(int(at["gen_ai.usage.output_tokens"]) > 0, "output tokens")
        eq(at["server.address"], "127.0.0.1", "server.address")
        check("error.type" not in at, "no error.type on success")
        kids = [s for s in spans if s.get("parentSpanId") == s1["spanId"]]
        eq(len(kids), 1, "one attempt span")
        eq(kids[0]["kind"], 3, "attempt spans are CLIENT")
        eq(kids[0]["name"], "chat gpt-4o-mini", "attempt span name")
        eq(sent.split("-")[2], kids[0]["spanId"], "traceparent upstream names the attempt span")
        s2 = [s for s in reqs if attrs(s).get("slogate.request_id") == r2.header("x-request-id")][0]
        k2 = sorted([s for s in spans if s.get("parentSpanId") == s2["spanId"]],
                    key=lambda s: int(s["startTimeUnixNano"]))
        eq(len(k2), 2, "two attempts: the failed one and the failover")
        eq(attrs(k2[0]).get("http.response.status_code"), "500", "first attempt's status")
        check(attrs(k2[0]).get("error.type"), "the failed attempt has error.type")
        eq(attrs(k2[1]).get("slogate.deployment"), "secondary", "the second attempt")
        eq(attrs(s2)["slogate.retries"], "1", "retries on the request span")
        res = col.bodies[0]["resourceSpans"][0]["resource"]["attributes"]
        eq(res[0]["value"]["stringValue"], "Acme Assistant", "service.name from service.name")
    finally:
        col.close()


def test_otlp_collector_gone_requests_unaffected(fx):
    port = __import__("harness").free_port()  # nothing listens there
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + fx.path("g.db")})
    cfg["telemetry"] = {"otlp_endpoint": "http://127.0.0.1:%d" % port}
    gw = fx.gateway(cfg)
    t0 = time.monotonic()
    send(gw, 20)
    check(time.monotonic() - t0 < 5, "requests are not slowed by a dead collector")
    wait_until(lambda: (metric(metrics(gw), "slogate_otlp_spans_dropped_total",
                               reason="export_failed") or 0) >= 40, 15,
               "spans dropped and counted after the retries")


# ---- JSON lines request log ------------------------------------------------------------------

def read_lines(paths):
    """Every line across the log and its rotated copies. A rotation may rename a file between
    listing and opening it, and a line may be half written; both are skipped, and the caller's
    wait_until reads again."""
    out = []
    for p in paths:
        try:
            with open(p) as f:
                out += [json.loads(ln) for ln in f if ln.endswith("\n") and ln.strip()]
        except FileNotFoundError:
            pass
    return out


def test_request_log_jsonl_rotates_and_keeps_secrets_out(fx):
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + fx.path("l.db")})
    cfg["telemetry"] = {"request_log": "requests.jsonl", "request_log_max_mb": 0.004,
                        "request_log_backups": 20}
    gw = fx.gateway(cfg)
    ids = send(gw, 40, content="a secret-ish prompt text")
    paths = [fx.path("requests.jsonl")] + [fx.path("requests.jsonl.%d" % i) for i in range(1, 21)]
    wait_until(lambda: sorted(l["request_id"] for l in read_lines(paths)) == sorted(ids), 10,
               "one line per request across the rotated files")
    check(os.path.exists(fx.path("requests.jsonl.1")), "the log rotated by size")
    for p in paths:
        if os.path.exists(p):
            check(os.path.getsize(p) <= 4 * 1048576 // 1000 + 2048, "%s within its size" % p)
            raw = open(p).read()
            for secret in (MASTER_KEY, "key-a", "secret-ish"):
                check(secret not in raw, "%r must not appear in the request log" % secret)
    lines = read_lines(paths)
    eq(sorted(l["request_id"] for l in lines), sorted(ids), "one line per request")
    l0 = lines[0]
    for k in ("time", "tenant_id", "user_id", "feature", "alias", "provider", "model",
              "deployment", "status", "latency_ms_total", "ttft_ms", "overhead_us", "retries",
              "failover_hops", "input_tokens", "output_tokens", "cost_usd", "cache_hit",
              "attempts"):
        check(k in l0, "the line has %s: %r" % (k, l0))
    eq(l0["attempts"][0]["deployment"], "primary", "attempts listed")


def test_request_log_prompts_only_when_asked(fx):
    m = fx.mock()
    cfg = fx.config([m], general={"disable_spend_logs": True})
    cfg["telemetry"] = {"request_log": fx.path("p.jsonl"), "log_prompts": True}
    gw = fx.gateway(cfg)
    send(gw, 3, content="please summarize the quarterly report")
    wait_until(lambda: len(read_lines([fx.path("p.jsonl")])) == 3, 10, "3 lines")
    for l in read_lines([fx.path("p.jsonl")]):
        contains(l.get("prompt", ""), "please summarize the quarterly report", "prompt logged")
    check(not os.path.exists(fx.path("slogate.db")), "disable_spend_logs: no database written")
    st, body = readiness(gw)
    eq(body["store"]["backend"], "none", "readiness: no database backend")
