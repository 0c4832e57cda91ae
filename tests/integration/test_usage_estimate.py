"""A provider that reports no usage (OpenAI-compatible servers that ignore
stream_options.include_usage, or send whole answers without a usage object: `slogate mock
--no-usage`): the gateway estimates the tokens, prices the estimate, shows it to the client in
its format (docs/pricing.md: the Anthropic SDK needs the counts), and says so — the
usage_estimated column in SQLite and PostgreSQL (migration 4, applied to a database of schema 3
with its rows), the request log, the slogate.usage.estimated span attribute, and
slogate_usage_estimated_total. Requests whose provider reports usage keep its exact counts.
docs/pricing.md states the rules these tests hold the gateway to."""

import json

from harness import MASTER_KEY, MOCK_KEY, chat_body, check, eq, http, time_limit, wait_until
from pg import Postgres
from test_telemetry import (Collector, attrs, metric, metrics, pg_count, promtool_check,
                            read_lines, sqlite_rows)

IN_PRICE, OUT_PRICE = 0.000001, 0.000002
# The mock's answer: 24 tokens, each streamed as one chunk, between the role chunk and the
# finish chunk (docs/mock.md).
MOCK_TOKENS = 24


def vllm_config(fx, mocks, url, **extra):
    """An OpenAI-compatible deployment (priced in the config, as vLLM's are) behind the mock."""
    cfg = fx.config(mocks, model="hosted_vllm/llama-3.1-8b", input_cost_per_token=IN_PRICE,
                    output_cost_per_token=OUT_PRICE, general={"database_url": url})
    cfg.update(extra)
    return cfg


def messages(gw, stream=False):
    body = {"model": "app/chat", "max_tokens": 100, "messages": [{"role": "user",
                                                                   "content": "Hello"}]}
    if stream:
        body["stream"] = True
    return http(gw.port, "POST", "/v1/messages", body, headers={"x-api-key": MASTER_KEY},
                key=None)


def send_all(gw):
    """Every shape of request: whole and streamed chat (with and without the client asking for
    usage), whole and streamed Messages. Returns {kind: x-request-id}."""
    ids = {}
    r = gw.chat(chat_body())
    eq(r.status, 200, "whole answer (%s)" % r.text[:200])
    ids["whole"] = r
    r = gw.chat(chat_body(stream=True, stream_options={"include_usage": True}))
    eq(r.status, 200, "stream asking for usage")
    ids["stream_usage"] = r
    r = gw.chat(chat_body(stream=True))
    eq(r.status, 200, "stream")
    ids["stream"] = r
    r = messages(gw)
    eq(r.status, 200, "Messages answer (%s)" % r.text[:200])
    ids["messages"] = r
    r = messages(gw, stream=True)
    eq(r.status, 200, "Messages stream")
    ids["messages_stream"] = r
    return ids


def data_events(r):
    return [json.loads(e) for e in r.sse_events() if e != "[DONE]"]


def check_answers_show_the_record(ans, rows, estimated):
    """What the clients got: the numbers the gateway records, in each format — estimated or
    reported alike (docs/pricing.md). A Messages answer cannot leave them out (the Anthropic
    SDK needs both counts), so OpenAI answers show them too."""
    def rec(kind):
        return rows[ans[kind].header("x-request-id")][:2]

    u = ans["whole"].json()["usage"]
    eq((u["prompt_tokens"], u["completion_tokens"]), rec("whole"), "the whole answer's usage")
    eq(u["total_tokens"], sum(rec("whole")), "total_tokens")
    ev = ans["stream_usage"].sse_events()
    eq(ev[-1], "[DONE]", "the stream ends with [DONE]")
    chunks = data_events(ans["stream_usage"])
    last = chunks[-1]
    eq(last["choices"], [], "the usage chunk the client asked for comes last")
    eq((last["usage"]["prompt_tokens"], last["usage"]["completion_tokens"]), rec("stream_usage"),
       "the usage chunk's numbers")
    for k in ("id", "model", "object", "created"):
        eq(last[k], chunks[0][k], "the usage chunk's %s is the stream's" % k)
    check(all("usage" not in c for c in data_events(ans["stream"])),
          "no usage for the stream that did not ask")
    mu = ans["messages"].json()["usage"]
    eq((mu["input_tokens"], mu["output_tokens"]), rec("messages"), "the Messages answer's usage")
    mev = data_events(ans["messages_stream"])
    start = [e for e in mev if e["type"] == "message_start"][0]["message"]["usage"]
    delta = [e for e in mev if e["type"] == "message_delta"][0]["usage"]
    eq((delta["input_tokens"], delta["output_tokens"]), rec("messages_stream"),
       "message_delta's usage")
    # message_start leaves before any usage: the pre-call estimate, the same for every request
    # of this prompt (the recorded input when nothing is reported).
    check(start["input_tokens"] > 0 and start["output_tokens"] == 0,
          "message_start's usage: %r" % start)
    if estimated:
        eq(start["input_tokens"], rec("messages_stream")[0], "message_start's input: the estimate")
    # The whole answer's cost header is the estimate's (it was 0 before the estimate).
    check(float(ans["whole"].header("x-slogate-cost-usd")) > 0, "the whole answer is priced")
    return start["input_tokens"]


COLS = "input_tokens, output_tokens, cost_usd, usage_estimated, stream"


def check_rows(rows, ans, estimated):
    """rows: {request_id: (input, output, cost, usage_estimated, stream)}."""
    for kind, r in ans.items():
        rid = r.header("x-request-id")
        check(rid in rows, "a row for the %s request" % kind)
        inp, out, cost, est, stream = rows[rid]
        eq(bool(est), estimated, "%s: usage_estimated" % kind)
        check(inp > 0 and out > 0, "%s: tokens %d in, %d out" % (kind, inp, out))
        check(abs(cost - (inp * IN_PRICE + out * OUT_PRICE)) < 1e-12,
              "%s: cost %r is the tokens at the deployment's prices" % (kind, cost))
        eq(bool(stream), kind.endswith("stream") or kind == "stream_usage", "%s: stream" % kind)
    if estimated:
        # Streams: one token per chunk the gateway saw. Chat clients get the OpenAI chunks as
        # they are: the role chunk, one per token, the finish chunk. The Messages translator
        # counts only the chunks that carry text.
        for kind in ("stream", "stream_usage"):
            eq(rows[ans[kind].header("x-request-id")][1], MOCK_TOKENS + 2,
               "%s: output = chunks before [DONE]" % kind)
        eq(rows[ans["messages_stream"].header("x-request-id")][1], MOCK_TOKENS,
           "Messages stream: output = chunks with text")
        # Whole answers: the text estimator over what the model wrote, conservative.
        for kind in ("whole", "messages"):
            out = rows[ans[kind].header("x-request-id")][1]
            check(MOCK_TOKENS <= out <= 3 * MOCK_TOKENS,
                  "%s: %d output tokens estimated for %d written" % (kind, out, MOCK_TOKENS))
        # Input: the pre-call estimate, the same for every request of the same prompt.
        ins = {rows[r.header("x-request-id")][0] for r in ans.values()}
        eq(len(ins), 1, "one input estimate for one prompt: %s" % ins)
    else:
        # Reported usage is recorded exactly: the whole answer's usage object.
        u = ans["whole"].json()["usage"]
        eq(rows[ans["whole"].header("x-request-id")][:2],
           (u["prompt_tokens"], u["completion_tokens"]), "the reported tokens, exactly")
        for kind in ("stream", "stream_usage", "messages_stream"):
            eq(rows[ans[kind].header("x-request-id")][1], MOCK_TOKENS, "%s: reported" % kind)


def sqlite_by_id(db):
    rows = sqlite_rows(db, "SELECT request_id, %s FROM slogate_requests" % COLS) or []
    return {r[0]: tuple(r[1:]) for r in rows}


@time_limit(60)
def test_no_usage_is_estimated_priced_and_marked(fx):
    db = fx.path("u.db")
    col = Collector()
    try:
        m = fx.mock(no_usage=True)
        cfg = vllm_config(fx, [m], "sqlite://" + db)
        cfg["telemetry"] = {"otlp_endpoint": col.url, "request_log": fx.path("req.jsonl")}
        gw = fx.gateway(cfg)
        est = send_all(gw)
        m.faults(no_usage=False)
        rep = send_all(gw)
        check("usage" in rep["whole"].json(), "usage reported once the fault is off")
        wait_until(lambda: len(sqlite_by_id(db)) == 10, 15, "10 rows in SQLite")
        rows = sqlite_by_id(db)
        check_rows(rows, est, True)
        check_rows(rows, rep, False)
        start_in = check_answers_show_the_record(est, rows, True)
        eq(check_answers_show_the_record(rep, rows, False), start_in,
           "message_start: the same estimate when usage is reported")

        # The request log (the spool's line format) says it too.
        wait_until(lambda: len(read_lines([fx.path("req.jsonl")])) == 10, 10, "10 log lines")
        logged = {e["request_id"]: e for e in read_lines([fx.path("req.jsonl")])}
        for r in list(est.values()) + list(rep.values()):
            rid = r.header("x-request-id")
            eq(logged[rid]["usage_estimated"], bool(rows[rid][3]), "request log of %s" % rid)

        text = metrics(gw)
        promtool_check(text)
        eq(metric(text, "slogate_usage_estimated_total", alias="app/chat", deployment="primary"),
           5.0, "the estimated requests are counted")
        out_est = sum(rows[r.header("x-request-id")][1] for r in est.values())
        out_rep = sum(rows[r.header("x-request-id")][1] for r in rep.values())
        eq(metric(text, "slogate_tokens_total", alias="app/chat", deployment="primary",
                  type="output"), float(out_est + out_rep), "estimated tokens are in the total")

        wait_until(lambda: len([s for s in col.spans() if s["kind"] == 2]) >= 10, 15,
                   "10 request spans at the collector")
        spans = {attrs(s)["slogate.request_id"]: attrs(s) for s in col.spans() if s["kind"] == 2}
        for r in est.values():
            a = spans[r.header("x-request-id")]
            eq(a.get("slogate.usage.estimated"), True, "the span says the usage is estimated")
            check(int(a["gen_ai.usage.output_tokens"]) > 0, "estimated output tokens on the span")
        for r in rep.values():
            check("slogate.usage.estimated" not in spans[r.header("x-request-id")],
                  "no estimated attribute when the provider reported usage")
    finally:
        col.close()


# The schema as slogate wrote it up to version 3 (migrations 1-3, PostgreSQL dialect), with a
# row: migration 4 must add the column and keep it.
PG_SCHEMA_3 = """
CREATE TABLE slogate_schema_migrations (version integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE slogate_requests (request_id text PRIMARY KEY, start_time timestamptz NOT NULL,
  tenant_id text NOT NULL, user_id text, feature text, alias text, provider text, model text,
  deployment text, region text, status integer NOT NULL, error_type text,
  latency_ms_total double precision NOT NULL, ttft_ms double precision,
  overhead_us bigint NOT NULL DEFAULT 0, retries integer NOT NULL DEFAULT 0,
  failover_hops integer NOT NULL DEFAULT 0, input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0, cached_tokens bigint NOT NULL DEFAULT 0,
  cost_usd double precision NOT NULL DEFAULT 0, cache_hit boolean NOT NULL DEFAULT false,
  cache_ttl_s integer NOT NULL DEFAULT 0, stream boolean NOT NULL DEFAULT false);
CREATE INDEX slogate_requests_time ON slogate_requests (start_time);
CREATE TABLE slogate_drills (id text PRIMARY KEY, kind text NOT NULL,
  started_at timestamptz NOT NULL, elapsed_s double precision NOT NULL, gateway text,
  alias text, deployment text, mode text, feature text, passed boolean NOT NULL,
  interrupted boolean NOT NULL DEFAULT false, aborted boolean NOT NULL DEFAULT false,
  ttr_s double precision, p95_s double precision, success_rate double precision,
  cost_avg_usd double precision, summary text NOT NULL, report_path text,
  result_json text NOT NULL);
INSERT INTO slogate_schema_migrations (version) VALUES (1), (2), (3);
INSERT INTO slogate_requests (request_id, start_time, tenant_id, status, latency_ms_total,
  input_tokens, output_tokens, cost_usd) VALUES ('old-1', now(), 'default', 200, 1.5, 12, 7,
  0.25);
"""


@time_limit(90)
def test_postgres_schema_3_migrated_and_estimates_marked(fx):
    pg = Postgres(fx)
    url = pg.createdb("slogate")
    pg.query(PG_SCHEMA_3, "slogate")
    m = fx.mock(no_usage=True)
    gw = fx.gateway(vllm_config(fx, [m], url), workers=2)
    est = send_all(gw)
    m.faults(no_usage=False)
    rep = send_all(gw)
    wait_until(lambda: pg_count(pg) == 11, 15, "11 rows in PostgreSQL")
    eq(pg.query("SELECT max(version) FROM slogate_schema_migrations", "slogate"), "4",
       "migration 4 applied")
    eq(pg.query("SELECT input_tokens, output_tokens, cost_usd, usage_estimated FROM "
                "slogate_requests WHERE request_id = 'old-1'", "slogate"), "12|7|0.25|f",
       "the schema-3 row is kept, as reported usage")
    rows = {}
    for line in pg.query("SELECT request_id, %s FROM slogate_requests WHERE request_id <> "
                         "'old-1'" % COLS, "slogate").split("\n"):
        v = line.split("|")
        rows[v[0]] = (int(v[1]), int(v[2]), float(v[3]), v[4] == "t", v[5] == "t")
    check_rows(rows, est, True)
    check_rows(rows, rep, False)
    check_answers_show_the_record(est, rows, True)
    r = fx.cli(["check", "-c", gw.config_path])
    check("schema version 4 (current)" in r.out, "check reports schema 4: %s" % r.out[-500:])


@time_limit(30)
def test_mock_no_usage_fault_is_shown_and_set_by_flag(fx):
    """The fault as the control API shows it, set by the flag and by POST."""
    m = fx.mock(no_usage=True)
    eq(m._control("GET", "/_mock/faults")["no_usage"], True, "--no-usage shows in the faults")
    r = http(m.port, "POST", "/v1/chat/completions", chat_body(model="x"), key=MOCK_KEY)
    eq(r.status, 200, "answer")
    check("usage" not in r.json(), "no usage object: %s" % json.dumps(r.json())[:300])
    eq(m.faults(no_usage=False)["no_usage"], False, "POST turns it off")
    eq(m.clear_faults()["no_usage"], True, "DELETE returns to the faults it started with")
