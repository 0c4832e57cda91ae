"""One request, one truth: a mixed load through two gateways (one on SQLite, one on a real
PostgreSQL, the same script at the same time against the same `slogate mock` providers), and
every request recorded the same way in the five places that record it — its row in the store,
Prometheus /metrics, the JSON lines request log, its OTLP spans, and the answer the client got
(status, x-request-id, x-slogate-* headers, usage). The SLO engine, budgets and drills read
these numbers: they must agree exactly, per request and in total (docs/internals/telemetry.md,
One request, five records).

The load mixes what a production gateway meets: whole and streamed answers (chat, Messages and
embeddings, tool calls, prompt caching), same-tier retries, cross-tier failover, a 429 that cools
its deployment, hedges, fallback aliases, more attempts than an event keeps, a stream cut
mid-way, providers that report no usage, the gateway's own errors (400, 401, 404, 413, 502,
504), a provider's 400, clients that hang up before and during a stream (499), attribution by
`x-slogate-feature`, `metadata.feature` and `user`, and callers' `traceparent` (sampled and not).

Each lane is one alias with its own providers, run in order, so what each request meets is the
same in both runs whatever the lanes' interleaving; lanes run concurrently.

A step marked `refused_body` is a body the parser refused: attributed by the key and
x-slogate-feature alone, and no cache lookup. `estimated` marks the rows whose usage is the
gateway's estimate: a provider that reported none, and streams that ended before their usage (cut,
or the client left), which are charged the estimate rather than nothing.
"""

import json
import random
import re
import threading
import time

from harness import (MASTER_KEY, MOCK_KEY, Conn, build_request, check, eq, http, sse_data, time_limit,
                     wait_until)
from pg import Postgres
from test_telemetry import (COLUMNS, Collector, as_logged, attrs, pg_count, pg_rows_by_id,
                            promtool_check, read_lines, sqlite_rows)

MINI = "openai/gpt-4o-mini"
HAIKU = "anthropic/claude-3-5-haiku-latest"
UNPRICED = "openai/mock-free-model"  # an OpenAI model the price table does not know

REGION = "eu-west-1"


# ---- the providers and the gateway's config --------------------------------------------------

def start_mocks(fx):
    return {
        "good": fx.mock(name="good"),
        "bad": fx.mock(name="bad", status=500),
        "limited": fx.mock(name="limited", status=429, retry_after=3600),
        "hang": fx.mock(name="hang", hang=True),
        "hold": fx.mock(name="hold", hang=True),  # for the clients that give up: see run_step
        # A stream sends its head and half its tokens, then the connection is reset; a whole
        # answer is reset before anything is sent. Paced, so the reset cannot overtake the
        # tokens sent before it.
        "cut": fx.mock(name="cut", reset="mid", tps=200),
        "slow": fx.mock(name="slow", latency_ms=1500),
        "nousage": fx.mock(name="nousage", no_usage=True),
        "paced": fx.mock(name="paced", tps=20),
    }


def dep(dep_id, alias, mock, model=MINI, **params):
    anthropic = model.startswith("anthropic/")
    lp = {"model": model, "api_key": MOCK_KEY, "stream_timeout": 2,
          "api_base": "http://127.0.0.1:%d" % mock.port if anthropic else mock.url}
    lp.update(params)
    return {"model_name": alias, "litellm_params": lp, "model_info": {"id": dep_id}}


def gateway_config(m, database_url, request_log, collector):
    model_list = [
        dep("ok", "ok/chat", m["good"], region_name=REGION),
        dep("claude", "claude/chat", m["good"], HAIKU),
        dep("free", "free/chat", m["good"], UNPRICED),
        dep("fo-bad", "failover/chat", m["bad"], order=1),
        dep("fo-good", "failover/chat", m["good"], order=2),
        # Same tier: a weighted deployment is always picked before one without a weight.
        dep("rt-bad", "retry/chat", m["bad"], weight=1),
        dep("rt-good", "retry/chat", m["good"]),
        dep("lim", "limited/chat", m["limited"], order=1),
        dep("lim-good", "limited/chat", m["good"], order=2),
        dep("dead-1", "dead/chat", m["bad"], order=1),
        dep("dead-2", "dead/chat", m["bad"], order=2),
        dep("hang", "hang/chat", m["hang"], stream_timeout=0.2),
        dep("wait", "wait/chat", m["hold"], stream_timeout=20, timeout=20),
        dep("cut", "cut/chat", m["cut"], order=1),
        dep("cut-good", "cut/chat", m["good"], order=2),
        dep("hedge-slow", "hedge/chat", m["slow"], order=1),
        dep("hedge-good", "hedge/chat", m["good"], order=2),
        dep("nousage", "nousage/chat", m["nousage"]),
        dep("paced", "paced/chat", m["paced"]),
        dep("fb-bad", "fallback/chat", m["bad"]),
        dep("fb2-bad", "fallback2/chat", m["bad"]),
    ] + [dep("many-%d" % i, "many/chat", m["bad"], order=i) for i in range(1, 11)]
    return {
        "model_list": model_list,
        # Failures never cool a deployment (the 429's Retry-After does): every run meets the
        # same routing.
        "router_settings": {"allowed_fails": 1000, "num_retries": 1, "hedge_after_ms": 300,
                            "fallbacks": [{"fallback/chat": ["ok/chat"]},
                                          {"fallback2/chat": ["dead/chat"]}]},
        "general_settings": {"master_key": MASTER_KEY, "database_url": database_url},
        "telemetry": {"request_log": request_log, "otlp_endpoint": collector.url},
    }


def deployments_of(cfg):
    """{deployment id: (alias, provider, provider model)}."""
    out = {}
    for e in cfg["model_list"]:
        provider, _, model = e["litellm_params"]["model"].partition("/")
        out[e["model_info"]["id"]] = (e["model_name"], provider, model)
    return out


# ---- the script --------------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
A_TOOLS = [{"name": "lookup", "input_schema": {"type": "object"}}]
CACHED_SYSTEM = [{"type": "text", "text": "Run @RUN@: " + "a stable prefix to cache. " * 40,
                  "cache_control": {"type": "ephemeral"}}]


def chat_req(model, stream=False, usage=None, **extra):
    b = {"model": model, "messages": [{"role": "user", "content": "Hello there"}]}
    if stream:
        b["stream"] = True
        if usage is not None:
            b["stream_options"] = {"include_usage": usage}
    b.update(extra)
    return {"api": "chat", "path": "/v1/chat/completions", "body": b}


def msg_req(model, stream=False, **extra):
    b = {"model": model, "max_tokens": 12, "messages": [{"role": "user", "content": "Hi"}]}
    if stream:
        b["stream"] = True
    b.update(extra)
    return {"api": "messages", "path": "/v1/messages", "body": b}


def embed_req(model):
    return {"api": "embeddings", "path": "/v1/embeddings",
            "body": {"model": model, "input": ["hello", "world"]}}


def lanes():
    """{lane: [step]}. A step is a request plus what the client must see of it (`want`: status,
    deployment, attempts, hops, error code), so a scenario that did not happen fails as such."""
    ok = lambda dep_id, attempts=1, hops=0: {"status": 200, "deployment": dep_id,
                                             "attempts": attempts, "hops": hops}
    failed = lambda status, error, dep_id, attempts, hops: dict(ok(dep_id, attempts, hops),
                                                              status=status, error=error)
    return {
        "ok": [
            dict(chat_req("ok/chat"), want=ok("ok")),
            dict(chat_req("ok/chat", stream=True, usage=True), want=ok("ok")),
            dict(chat_req("ok/chat", stream=True), want=ok("ok")),
            dict(chat_req("ok/chat", tools=TOOLS, tool_choice="required"), want=ok("ok")),
            dict(chat_req("ok/chat", stream=True, usage=True, tools=TOOLS,
                          tool_choice="required"), want=ok("ok")),
            dict(embed_req("ok/chat"), want=ok("ok")),
            dict(msg_req("ok/chat"), want=ok("ok")),
            dict(msg_req("ok/chat", stream=True), want=ok("ok")),
            # The provider's own 400 (a forced tool that is not in `tools`), relayed as it is.
            dict(chat_req("ok/chat", tools=TOOLS,
                          tool_choice={"type": "function", "function": {"name": "nope"}}),
                 want=failed(400, "upstream_client_error", "ok", 1, 0)),
            dict(chat_req("free/chat"), want=ok("free")),
            dict(chat_req("ok/chat"), sampled=False, want=ok("ok")),
        ],
        "gateway": [
            dict(chat_req("ok/chat"), key="sk-wrong", unread=True,
                 want={"status": 401, "error": "invalid_api_key"}),
            dict(msg_req("claude/chat"), key="sk-wrong", unread=True,
                 want={"status": 401, "error": "invalid_api_key"}),
            dict(chat_req("ok/chat"), raw=b'{"model": "ok/chat", "messages": [', refused_body=True,
                 want={"status": 400, "error": "invalid_request_error"}),
            # Refused by the HTTP layer before the handler: still a request, still a row.
            dict(chat_req("ok/chat"), unread=True,
                 raw_head=b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                          b"Content-Length: 50000000\r\n\r\n",
                 want={"status": 413, "error": "request_too_large"}),
            dict(chat_req("no/such-model", stream=True),
                 want={"status": 404, "error": "model_not_found"}),
            # A body the parser refuses (Messages needs max_tokens); authenticated, so its tenant
            # and x-slogate-feature are known and recorded.
            dict(msg_req("claude/chat", max_tokens=None), refused_body=True,
                 want={"status": 400, "error": "invalid_request_error"}),
            # Anthropic has no embeddings: refused before anything is sent upstream. The router
            # had picked `claude`: the answer, the row and the one attempt name it.
            dict(embed_req("claude/chat"),
                 want={"status": 400, "error": "invalid_request_error", "deployment": "claude",
                       "attempts": 1, "hops": 0}),
        ],
        "claude": [
            dict(msg_req("claude/chat"), want=ok("claude")),
            # Prompt caching: the first request writes the prefix, the second reads it (the
            # prefix names the run: the two gateways share the provider).
            dict(msg_req("claude/chat", system=CACHED_SYSTEM), cache="write", want=ok("claude")),
            dict(msg_req("claude/chat", system=CACHED_SYSTEM), cache="read", want=ok("claude")),
            dict(msg_req("claude/chat", stream=True), want=ok("claude")),
            dict(chat_req("claude/chat"), want=ok("claude")),
            dict(chat_req("claude/chat", stream=True, usage=True), want=ok("claude")),
            dict(msg_req("claude/chat", tools=A_TOOLS, tool_choice={"type": "any"}),
                 want=ok("claude")),
        ],
        "failover": [
            dict(chat_req("failover/chat"), want=ok("fo-good", 2, 1)),
            dict(chat_req("failover/chat", stream=True, usage=True), want=ok("fo-good", 2, 1)),
            dict(msg_req("failover/chat"), want=ok("fo-good", 2, 1)),
        ],
        "retry": [
            dict(chat_req("retry/chat"), want=ok("rt-good", 2, 0)),
            dict(chat_req("retry/chat", stream=True, usage=True), want=ok("rt-good", 2, 0)),
        ],
        "limited": [
            dict(chat_req("limited/chat"), want=ok("lim-good", 2, 1)),
            # The 429 cooled `lim` for its Retry-After: straight to the next tier.
            dict(chat_req("limited/chat"), want=ok("lim-good")),
            dict(chat_req("limited/chat", stream=True, usage=True), want=ok("lim-good")),
        ],
        "dead": [
            dict(chat_req("dead/chat"), want=failed(502, "upstream_error", "dead-2", 2, 1)),
            dict(chat_req("dead/chat", stream=True, usage=True),
                 want=failed(502, "upstream_error", "dead-2", 2, 1)),
            dict(msg_req("dead/chat"), want=failed(502, "upstream_error", "dead-2", 2, 1)),
        ],
        "fallback": [
            # Answered by the fallback alias: counted under it, recorded under the one asked.
            dict(chat_req("fallback/chat"), want=ok("ok", 2, 1)),
            dict(chat_req("fallback2/chat", stream=True, usage=True),
                 want=failed(502, "upstream_error", "dead-2", 3, 2)),
            # Ten tiers, ten failed attempts.
            dict(chat_req("many/chat"), want=failed(502, "upstream_error", "many-10", 10, 9)),
        ],
        "hang": [
            dict(chat_req("hang/chat", stream=True, usage=True),
                 want=failed(504, "first_byte_timeout", "hang", 1, 0)),
            dict(chat_req("hang/chat"), want=failed(504, "first_byte_timeout", "hang", 1, 0)),
        ],
        "cut": [
            # A whole answer reset before any byte: failed over.
            dict(chat_req("cut/chat"), want=ok("cut-good", 2, 1)),
            # A stream reset after its first tokens went out: an error event ends it.
            dict(chat_req("cut/chat", stream=True, usage=True), estimated=True,
                 want=failed(200, "stream_interrupted", "cut", 1, 0)),
        ],
        "hedge": [
            dict(chat_req("hedge/chat"), want=ok("hedge-good", 2, 1)),
            dict(chat_req("hedge/chat", stream=True, usage=True), want=ok("hedge-good", 2, 1)),
        ],
        "nousage": [
            dict(chat_req("nousage/chat"), estimated=True, want=ok("nousage")),
            dict(chat_req("nousage/chat", stream=True, usage=True), estimated=True,
                 want=ok("nousage")),
            dict(msg_req("nousage/chat", stream=True), estimated=True, want=ok("nousage")),
        ],
        "gone": [
            # The client reads the stream's first chunk and hangs up.
            dict(chat_req("paced/chat", stream=True, usage=True), hangup="mid-stream",
                 estimated=True,
                 want={"status": 499, "deployment": "paced", "error": "client_disconnected"}),
            # The client hangs up while the provider has not answered: it never saw a byte,
            # not even its request id.
            dict(chat_req("wait/chat"), hangup="before-head",
                 want={"status": 499, "deployment": "wait", "error": "client_disconnected"}),
        ],
    }


def bulk_lanes(n_lanes=4, per_lane=24):
    """Plain traffic beside the scenarios: whole and streamed chat, Messages and embeddings on
    one healthy deployment, several requests in flight on each worker at once."""
    ok = {"status": 200, "deployment": "ok", "attempts": 1, "hops": 0}
    kinds = [chat_req("ok/chat"), chat_req("ok/chat", stream=True, usage=True),
             chat_req("ok/chat", stream=True), msg_req("ok/chat"),
             msg_req("ok/chat", stream=True), embed_req("ok/chat")]
    return {"bulk-%d" % b: [dict(kinds[(i + b) % len(kinds)], want=ok) for i in range(per_lane)]
            for b in range(n_lanes)}


def attribute(lane, i, step, rnd):
    """Give the step its attribution and trace context, as varied clients send them."""
    step = dict(step, lane=lane, i=i, headers={})
    body = step["body"] = {k: v for k, v in step["body"].items() if v is not None}
    user = "user-%s-%d" % (lane, i)
    feature = "feat-%d" % (i % 3)
    how = (i + len(lane)) % 3
    if step["api"] == "messages":
        if how != 2 or step.get("hangup"):
            body["metadata"] = {"user_id": user}
        if how != 1:
            step["headers"]["x-slogate-feature"] = feature
    else:
        if how != 2 or step.get("hangup"):
            body["user"] = user  # the request a client gives up on is found by its user
        if how == 0:
            step["headers"]["x-slogate-feature"] = feature
        elif how == 1 and step["api"] == "chat":
            body["metadata"] = {"feature": feature}
    if how == 0 or step.get("sampled") is False:
        step["trace"] = "%032x" % rnd.getrandbits(128)
        step["parent"] = "%016x" % (rnd.getrandbits(63) | 1)
        step["headers"]["traceparent"] = "00-%s-%s-%s" % (
            step["trace"], step["parent"], "00" if step.get("sampled") is False else "01")
    return step


def script(seed):
    rnd = random.Random(seed)
    return {lane: [attribute(lane, i, s, rnd) for i, s in enumerate(steps)]
            for lane, steps in dict(lanes(), **bulk_lanes()).items()}


# ---- the client ---------------------------------------------------------------------------------

class Seen:
    """What the client saw of one request."""

    def __init__(self, step):
        self.step = step
        self.status = 0
        self.rid = None
        self.headers = {}
        self.first_byte = False
        self.usage = None      # (input, output, cached read, cache write) the answer reported
        self.error = None      # the error code the body or the stream's error event named


def request_bytes(step, run):
    if step.get("raw_head"):
        return step["raw_head"]
    headers = dict(step["headers"])
    key = step.get("key", MASTER_KEY)
    if step["api"] == "messages":
        headers["x-api-key"] = key
        headers["anthropic-version"] = "2023-06-01"
        key = None
    # "@RUN@" becomes one letter per run: the same lengths (and tokens), distinct texts.
    body = step.get("raw") or json.dumps(step["body"]).replace("@RUN@", run[0]).encode()
    return build_request("POST", step["path"], body, headers, key, close=True)


def run_step(port, run, step, hold):
    seen = Seen(step)
    with Conn(port, timeout=20) as c:
        c.send(request_bytes(step, run))
        if step.get("hangup") == "before-head":
            # The provider holds the request (every run's, at once): nothing has come back.
            wait_until(lambda: hold["mock"].stats()["hangs"] >= hold["runs"], 20,
                       "the provider to hold the request")
            seen.status = 499
        elif step.get("hangup") == "mid-stream":
            hang_up_mid_stream(c, seen)
        else:
            read_answer(seen, c.read_response())
    return seen


def hang_up_mid_stream(c, seen):
    """Read the head and the first bytes of the body, then close (the `with` does)."""
    buf = b""
    deadline = time.monotonic() + 20
    while b"\r\n\r\n" not in buf or buf.endswith(b"\r\n\r\n"):
        check(time.monotonic() < deadline, "the stream's first event within 20 s")
        d = c.sock.recv(65536)
        check(d, "the gateway closed before the stream's first event: %r" % buf)
        buf += d
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    eq(head[0].split(" ")[1], "200", "the stream's status")
    seen.headers = dict((k.strip().lower(), v.strip()) for k, _, v in
                        (ln.partition(":") for ln in head[1:]))
    seen.rid = seen.headers.get("x-request-id")
    seen.first_byte = True
    seen.status = 499


def read_answer(seen, r):
    step = seen.step
    seen.status = r.status
    seen.rid = r.header("x-request-id")
    seen.headers = dict(r.headers)
    seen.first_byte = True
    if r.header("content-type", "").startswith("text/event-stream"):
        read_stream(seen, r)
        return
    try:
        j = json.loads(r.body)
    except ValueError:
        return
    if not isinstance(j, dict):
        return
    if isinstance(j.get("error"), dict):
        seen.error = error_code(j)
        return
    u = j.get("usage")
    if not u:
        return
    if step["api"] == "messages":
        seen.usage = messages_usage(u, u["output_tokens"])
    else:
        seen.usage = openai_usage(u)


def error_code(j):
    """The code an error body names: OpenAI's code (else its type); Anthropic's shape has no
    code, only a type, marked as such."""
    e = j["error"]
    if j.get("type") == "error":
        return "anthropic:" + e["type"]
    return e.get("code") or e.get("type")


def openai_usage(u):
    """(input with the cached part, output, cached read, cache write)."""
    return (u["prompt_tokens"], u.get("completion_tokens", 0),
            (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            u.get("cache_creation_input_tokens") or 0)


def messages_usage(u, output):
    """Anthropic's input_tokens leave the cached parts out; the event counts them in."""
    read, write = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
    return (u["input_tokens"] + read + write, output, read, write)


def read_stream(seen, r):
    mu = None  # a Messages stream's usage: message_start's, then message_delta's (cumulative)
    for d in sse_data(r.body):
        if d == "[DONE]":
            continue
        j = json.loads(d)
        if isinstance(j.get("error"), dict):
            seen.error = error_code(j)
        elif j.get("type") == "message_start":
            mu = dict(j["message"].get("usage") or {})
        elif j.get("type") == "message_delta" and mu is not None:
            mu.update(j.get("usage") or {})
        elif j.get("usage"):
            seen.usage = openai_usage(j["usage"])
    if seen.step["api"] == "messages" and mu and "output_tokens" in mu:
        seen.usage = messages_usage(mu, mu["output_tokens"])


def drive(gateways, plan, hold_mock):
    """Every lane against every gateway at once; {run: {(lane, i): Seen}}."""
    seen = {run: {} for run in gateways}
    hold = {"mock": hold_mock, "runs": len(gateways)}
    failures = []

    def lane(run, port, steps):
        try:
            for s in steps:
                seen[run][(s["lane"], s["i"])] = run_step(port, run, s, hold)
        except BaseException as e:  # reported by the main thread
            failures.append("%s lane %s: %r" % (run, steps[0]["lane"], e))

    threads = [threading.Thread(target=lane, args=(run, gw.port, steps), daemon=True)
               for run, gw in gateways.items() for steps in plan.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    eq(failures, [], "clients that failed")
    return seen


# ---- what the client saw, checked -------------------------------------------------------------

def check_client_view(s):
    """The scenario happened as the step says (else the comparisons below prove little)."""
    want, what = s.step["want"], "%s #%d" % (s.step["lane"], s.step["i"])
    eq(s.status, want["status"], what + ": status (error %r)" % s.error)
    if s.rid is not None or s.step.get("hangup") != "before-head":
        check(s.rid and len(s.rid) == 32, what + ": x-request-id %r" % s.rid)
    if s.step.get("hangup"):
        return
    if "deployment" in want:
        eq(s.headers.get("x-slogate-deployment"), want["deployment"], what + ": deployment")
        eq(int(s.headers["x-slogate-attempts"]), want["attempts"], what + ": attempts")
        eq(int(s.headers["x-slogate-failover-hops"]), want["hops"], what + ": hops")
    if want.get("error") and not (s.error or "").startswith("anthropic:") and \
            want["error"] != "upstream_client_error":
        eq(s.error, want["error"], what + ": the error the client read")
    if want["status"] == 200 and not want.get("error"):
        check(s.error is None, what + ": no error (%r)" % s.error)
        if s.step.get("estimated"):
            # The provider reported none: the client is shown the gateway's estimate, which
            # the row must hold too (expected_row).
            check(s.usage and s.usage[0] > 0 and s.usage[1] > 0,
                  what + ": the estimate in the answer's usage (%r)" % (s.usage,))
        elif s.step["api"] != "chat" or s.step["body"].get("stream_options") or \
                not s.step["body"].get("stream"):
            check(s.usage, what + ": the answer's usage")
        if s.step.get("cache"):
            check(s.usage[3 if s.step["cache"] == "write" else 2] > 0,
                  what + ": the prompt cache %s in the usage %r" % (s.step["cache"], s.usage))


# USD per token: input, output, cached read, cache write (docs/pricing.md's table).
PRICES = {"gpt-4o-mini": (0.15e-6, 0.6e-6, 0.075e-6, 0.15e-6),
          "claude-3-5-haiku-latest": (0.8e-6, 4e-6, 0.08e-6, 1.0e-6)}


def close_to(got, want, what, rel=1e-9):
    check(abs(got - want) <= rel * max(abs(got), abs(want)) + 1e-15,
          "%s: expected %.17g, got %.17g" % (what, want, got))


def client_fields(s, deps):
    """The row as the client's request and answer say it must be (request log types: empty
    strings for NULL text, ttft -1 for none)."""
    step, body, h = s.step, s.step["body"], s.headers
    unread = step.get("unread")  # refused before the body was read: nothing of it is known
    # Refused by the body's parser: attributed by the key and x-slogate-feature only.
    refused = step.get("refused_body")
    unparsed = unread or step.get("raw")  # not even its model was read
    meta = body.get("metadata") or {}
    want = step["want"]
    dep_id = want.get("deployment", "")
    alias, provider, model = deps.get(dep_id, ("", "", ""))
    attempts = int(h["x-slogate-attempts"]) if "x-slogate-attempts" in h else \
        want.get("attempts", 1)
    out = {
        "request_id": s.rid,
        "status": s.status,
        "tenant_id": "" if unread else "default",
        "alias": "" if unparsed else body["model"],
        "stream": False if unparsed else bool(body.get("stream")),
        "user_id": "" if unread or refused else (meta.get("user_id", "")
                                                 if step["api"] == "messages"
                                                 else body.get("user", "")),
        "feature": "" if unread else step["headers"].get("x-slogate-feature",
                                                         "" if refused else meta.get("feature", "")),
        "deployment": dep_id,
        "provider": provider,
        "model": model,
        "region": REGION if dep_id == "ok" else "",
        "error_type": want.get("error", ""),
        "retries": max(attempts - 1, 0),
        "failover_hops": int(h.get("x-slogate-failover-hops", want.get("hops", 0))),
        "usage_estimated": bool(step.get("estimated")),
        "cache_hit": False,
        "cache_ttl_s": 0,
    }
    if s.usage:
        out["input_tokens"], out["output_tokens"], out["cached_tokens"] = s.usage[:3]
    return out


def check_row(s, row, deps):
    what = "%s #%d (%s)" % (s.step["lane"], s.step["i"], row["request_id"])
    want = client_fields(s, deps)
    if want["request_id"] is None:
        del want["request_id"]
    eq({k: row[k] for k in want}, want, what + ": the row against what the client saw")
    eq(row["ttft_ms"] >= 0, s.first_byte, what + ": a time to first byte iff one was sent")
    # The row's overhead is the header's, plus the answer's handling after the head left.
    if "x-slogate-overhead-us" in s.headers:
        check(row["overhead_us"] >= int(s.headers["x-slogate-overhead-us"]),
              what + ": overhead %d us, the header said %s" % (
                  row["overhead_us"], s.headers["x-slogate-overhead-us"]))
    check(row["ttft_ms"] <= row["latency_ms_total"], what + ": ttft within the latency")
    if row["status"] == 200 and not row["error_type"]:
        check(row["input_tokens"] > 0 and (row["output_tokens"] > 0 or s.step["api"] ==
                                           "embeddings"), what + ": tokens of an answer")
    # The cost is the row's tokens at the deployment's prices: none without tokens, and an
    # unpriced deployment's are free.
    pin, pout, pread, pwrite = PRICES.get(row["model"], (0, 0, 0, 0))
    if s.step.get("estimated") and not s.usage:
        # Ended before its usage (cut, or the client left): the estimate, some of each.
        check(row["input_tokens"] > 0 and row["output_tokens"] > 0,
              what + ": estimated tokens of a stream that ended early (%r)" % row)
    read, write = row["cached_tokens"], s.usage[3] if s.usage else 0
    close_to(row["cost_usd"], (row["input_tokens"] - read - write) * pin +
             row["output_tokens"] * pout + read * pread + write * pwrite,
             what + ": cost of the row's tokens (%d in of which %d read and %d written, %d out)"
             % (row["input_tokens"], read, write, row["output_tokens"]))
    hdr = s.headers.get("x-slogate-cost-usd")
    if hdr is not None and not row["stream"] and s.status == 200:
        eq("%.8f" % row["cost_usd"], hdr, what + ": x-slogate-cost-usd of a whole answer")


# ---- the records --------------------------------------------------------------------------------

BOOLS = ("cache_hit", "stream", "usage_estimated")


def sqlite_events(db):
    """{request_id: row} with the request log's names and types (`time` for start_time)."""
    cols = ["start_time" if c == "start_unix_us" else c for c in COLUMNS]
    out = {}
    for r in sqlite_rows(db, "SELECT %s FROM slogate_requests" % ", ".join(cols)) or []:
        ev = {}
        for c, v in zip(COLUMNS, r):
            if c == "start_unix_us":
                ev["time"] = v
            elif c in BOOLS:
                ev[c] = bool(v)
            elif v is None:
                ev[c] = -1 if c == "ttft_ms" else ""
            else:
                ev[c] = v
        out[ev["request_id"]] = ev
    return out


def pg_events(pg):
    return {rid: {c: as_logged(c, v) for c, v in zip(COLUMNS, row)}
            for rid, row in pg_rows_by_id(pg).items()}


def log_events(path):
    return {ev["request_id"]: ev for ev in read_lines([path])}


def match_rows(seen, rows):
    """{(lane, i): row}: each request's row, by the x-request-id the client got (by its user
    when it hung up before the head, so it never got one); no row left over."""
    by_user = {r["user_id"]: r for r in rows.values() if r["user_id"]}
    out = {}
    for k, s in seen.items():
        if s.rid:
            check(s.rid in rows, "%s #%d: no row for x-request-id %s" % (k + (s.rid,)))
            out[k] = rows[s.rid]
        else:
            out[k] = by_user.get(s.step["body"].get("user"))
            check(out[k] is not None, "%s #%d: no row for the request the client gave up on" % k)
    ids = [r["request_id"] for r in out.values()]
    eq(len(set(ids)), len(ids), "one row per request (distinct ids)")
    eq(sorted(set(rows) - set(ids)), [], "rows no client request made")
    return out


# Fields that must be the same whichever store recorded the request; times and ids differ.
VOLATILE = ("request_id", "start_unix_us", "time", "latency_ms_total", "ttft_ms", "overhead_us")


def stable(row):
    return {k: v for k, v in row.items() if k not in VOLATILE and k in COLUMNS} | {
        "has_ttft": row["ttft_ms"] >= 0}


# ---- /metrics -------------------------------------------------------------------------------------

def parse_prom(text):
    """{name: [(labels dict, value)]} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = dict((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in
                      re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        out.setdefault(name, []).append((labels, float(value)))
    return out


def grouped(samples, keys, skip_zero=True):
    out = {}
    for labels, v in samples:
        k = tuple(labels.get(x, "") for x in keys)
        out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v or not skip_zero}


def tally(rows, key, value=lambda r: 1):
    out = {}
    for r in rows:
        k = key(r)
        if k is None:
            continue
        out[k] = out.get(k, 0) + value(r)
    return {k: v for k, v in out.items() if v}


def check_metrics(run, text, rows, deps, logged, before_lookup=()):
    """Every counter and histogram of request events equals the rows grouped by its labels
    (docs/internals/telemetry.md, Metrics: series are keyed by the deployment that answered, or
    was tried last; the failures by the group the client asked for)."""
    p = parse_prom(text)
    aliases = {a for a, _, _ in deps.values()}

    def series(r):  # (alias, deployment, provider) of the row's series
        if r["deployment"] in deps:
            a, prov, _ = deps[r["deployment"]]
            return a, r["deployment"], prov
        return (r["alias"] if r["alias"] in aliases else ""), "", ""

    def asked(r):
        return r["alias"] if r["alias"] in aliases else ""

    def same(family, keys, want, what, exact=True):
        got = grouped(p.get(family, []), keys)
        if exact:
            eq(got, want, "%s: %s" % (run, what))
            return
        eq(sorted(got), sorted(want), "%s: %s (series)" % (run, what))
        for k in want:
            close_to(got[k], want[k], "%s: %s %s" % (run, what, k))

    cls = lambda r: "%dxx" % min(max(r["status"] // 100, 2), 5)
    same("slogate_requests_total", ("alias", "deployment", "provider", "status_class"),
         tally(rows, lambda r: series(r) + (cls(r),)), "requests by alias, deployment, class")
    same("slogate_request_failures_total", ("alias", "error_type"),
         tally(rows, lambda r: (asked(r), r["error_type"]) if r["error_type"] else None),
         "failures by error type")
    tokens = {}
    for t in ("input", "output", "cached"):
        for k, v in tally(rows, lambda r: series(r)[:2], lambda r: r[t + "_tokens"]).items():
            tokens[k + (t,)] = v
    same("slogate_tokens_total", ("alias", "deployment", "type"), tokens, "tokens by type")
    same("slogate_cost_usd_total", ("alias", "deployment"),
         tally(rows, lambda r: series(r)[:2], lambda r: r["cost_usd"]), "cost", exact=False)
    same("slogate_usage_estimated_total", ("alias", "deployment"),
         tally(rows, lambda r: series(r)[:2] if r["usage_estimated"] else None),
         "requests with estimated usage")
    same("slogate_request_duration_seconds_count", ("alias", "deployment"),
         tally(rows, lambda r: series(r)[:2]), "latency histogram count")
    same("slogate_request_duration_seconds_sum", ("alias", "deployment"),
         tally(rows, lambda r: series(r)[:2], lambda r: r["latency_ms_total"] / 1000.0),
         "latency histogram sum", exact=False)
    same("slogate_time_to_first_token_seconds_count", ("alias", "deployment"),
         tally(rows, lambda r: series(r)[:2] if r["ttft_ms"] >= 0 else None),
         "TTFT histogram count (rows with a time to first byte)")
    same("slogate_time_to_first_token_seconds_sum", ("alias", "deployment"),
         tally(rows, lambda r: series(r)[:2] if r["ttft_ms"] >= 0 else None,
               lambda r: r["ttft_ms"] / 1000.0), "TTFT histogram sum", exact=False)
    for fam in ("slogate_request_duration_seconds", "slogate_time_to_first_token_seconds"):
        inf = grouped([(l, v) for l, v in p[fam + "_bucket"] if l["le"] == "+Inf"],
                      ("alias", "deployment"))
        eq(inf, grouped(p[fam + "_count"], ("alias", "deployment")), run + ": %s +Inf" % fam)
    eq(grouped(p["slogate_overhead_seconds_count"], ()), {(): len(rows)},
       run + ": overhead histogram count")
    close_to(p["slogate_overhead_seconds_sum"][0][1],
             sum(r["overhead_us"] for r in rows) / 1e6, run + ": overhead histogram sum")
    eq(p["slogate_requests_in_flight"][0][1], 0.0, run + ": requests in flight after the load")
    # Every request that reached the cache stage bypasses it for now; those turned away before
    # it (bad key, bad body, unknown model) are not lookups.
    lookups = sum(1 for r in rows if r["alias"] in aliases and r["request_id"] not in before_lookup)
    eq(grouped(p["slogate_cache_requests_total"], ("result",)), {("bypass",): lookups},
       run + ": cache lookups")
    # The router's failed attempts per deployment are the attempts the request log lists as
    # failed (a cancelled hedge, a client's 400 are not failures) — but for the attempts an
    # event could not keep (many/chat), which the log only counts.
    failed = ("failure", "auth", "rate_limited", "first_byte_timeout")
    want = {}
    for ev in logged.values():
        for at in ev["attempts"]:
            if at["error_type"] in failed:
                k = (deps[at["deployment"]][0], at["deployment"])
                want[k] = want.get(k, 0) + 1
    got = grouped(p["slogate_deployment_attempt_failures_total"], ("alias", "deployment"))
    eq({k: v for k, v in got.items() if k[0] != "many/chat"},
       {k: v for k, v in want.items() if k[0] != "many/chat"},
       run + ": failed attempts by deployment, router against the request log")
    eq(got.get(("many/chat", "many-8")), 1.0, run + ": an attempt the event did not keep")
    eq(grouped(p["slogate_store_rows_written_total"], ()), {(): len(rows)},
       run + ": rows the store says it wrote")
    eq(grouped(p["slogate_request_log_lines_total"], ()), {(): len(rows)},
       run + ": request log lines")
    return p


# ---- OTLP -----------------------------------------------------------------------------------------

def check_spans(run, spans, seen, rows, logged, exported):
    """One SERVER span per sampled request in the row's trace, with the row's values; one CLIENT
    child per upstream attempt, as the request log lists them; none for an unsampled caller."""
    by_rid = {}
    for sp in spans:
        if sp["kind"] == 2:
            by_rid.setdefault(attrs(sp).get("slogate.request_id"), []).append(sp)
    kids = {}
    for sp in spans:
        if sp["kind"] == 3:
            kids.setdefault(sp.get("parentSpanId"), []).append(sp)
    n_spans = 0
    for k, s in seen.items():
        row = rows[k]
        rid, ev = row["request_id"], logged[row["request_id"]]
        what = "%s %s #%d (%s)" % (run, k[0], k[1], rid)
        if s.step.get("sampled") is False:
            eq(by_rid.get(rid, []), [], what + ": spans of a caller that did not sample")
            continue
        eq(len(by_rid.get(rid, [])), 1, what + ": request spans")
        sp = by_rid[rid][0]
        eq((sp["traceId"], sp["spanId"]), (ev["trace_id"], ev["span_id"]),
           what + ": the span is the logged event's")
        if s.step.get("trace"):
            eq((sp["traceId"], sp.get("parentSpanId")), (s.step["trace"], s.step["parent"]),
               what + ": the caller's trace and span")
        a = attrs(sp)
        want = {"http.response.status_code": str(row["status"]),
                "error.type": row["error_type"] or None,
                "gen_ai.request.model": row["alias"] or None,
                "gen_ai.provider.name": row["provider"] or None,
                "slogate.deployment": row["deployment"] or None,
                "slogate.feature": row["feature"] or None,
                "slogate.retries": str(row["retries"]),
                "slogate.failover_hops": str(row["failover_hops"]),
                "slogate.overhead_us": str(row["overhead_us"]),
                "slogate.cost_usd": row["cost_usd"] or None,
                "slogate.stream": row["stream"],
                "slogate.usage.estimated": True if row["usage_estimated"] else None}
        tokens = row["input_tokens"] or row["output_tokens"]
        want["gen_ai.usage.input_tokens"] = str(row["input_tokens"]) if tokens else None
        want["gen_ai.usage.output_tokens"] = str(row["output_tokens"]) if tokens else None
        eq({x: a.get(x) for x in want}, want, what + ": span attributes against the row")
        # Failed: a 5xx, or a 2xx whose answer then broke off; a 4xx (a client that left
        # too) leaves it unset (OpenTelemetry's HTTP conventions for server spans).
        failed = row["status"] >= 500 or (row["status"] < 400 and row["error_type"])
        eq(sp["status"].get("code"), 2 if failed else None, what + ": span status")
        children = sorted(kids.get(sp["spanId"], []), key=lambda c: int(attrs(c)["slogate.attempt"]))
        eq([(attrs(c).get("slogate.deployment"), attrs(c).get("error.type", ""))
            for c in children],
           [(x["deployment"], x["error_type"]) for x in ev["attempts"]],
           what + ": attempt spans against the logged attempts")
        # An event keeps 8 attempts: the first 7 and the last; the rest are counted as dropped
        # (docs/internals/telemetry.md, The event).
        dropped = int(a.get("slogate.attempts_dropped", "0"))
        eq(dropped, ev.get("attempts_dropped", 0), what + ": attempts dropped, span and log")
        check(len(children) <= 8 and (dropped == 0 or len(children) == 8),
              what + ": %d attempt spans, %d dropped" % (len(children), dropped))
        if "x-slogate-attempts" in s.headers:
            eq(len(children) + dropped, int(s.headers["x-slogate-attempts"]),
               what + ": attempt spans (and dropped ones) against x-slogate-attempts")
        eq(len(children) + dropped, row["retries"] + 1 if children else 0,
           what + ": attempt spans (and dropped ones) against the row's retries")
        if children and row["deployment"]:
            eq(attrs(children[-1]).get("slogate.deployment"), row["deployment"],
               what + ": the last attempt span is the row's deployment")
        n_spans += 1 + len(children)
    eq(exported, n_spans, run + ": slogate_otlp_spans_exported_total against the spans received")


# ---- the test ---------------------------------------------------------------------------------------

@time_limit(150)
def test_every_record_of_a_mixed_load_agrees(fx):
    col = Collector()
    try:
        m = start_mocks(fx)
        pg = Postgres(fx)
        cfgs = {"sqlite": gateway_config(m, "sqlite://" + fx.path("s.db"), fx.path("s.jsonl"),
                                         col),
                "postgres": gateway_config(m, pg.createdb("slogate"), fx.path("p.jsonl"), col)}
        deps = deployments_of(cfgs["sqlite"])
        gws = {run: fx.gateway(cfg, workers=2, name="gw-" + run) for run, cfg in cfgs.items()}
        plan = script(seed=5)
        n = sum(len(steps) for steps in plan.values())
        seen = drive(gws, plan, m["hold"])
        for run in gws:
            for s in seen[run].values():
                check_client_view(s)

        # Everything recorded: rows, log lines, the in-flight gauge back to 0.
        log = {"sqlite": fx.path("s.jsonl"), "postgres": fx.path("p.jsonl")}
        wait_until(lambda: len(sqlite_events(fx.path("s.db"))) >= n, 15, "%d SQLite rows" % n)
        wait_until(lambda: pg_count(pg) >= n, 15, "%d PostgreSQL rows" % n)
        for run in gws:
            wait_until(lambda: len(read_lines([log[run]])) >= n, 10, "%s: %d log lines" % (run, n))
        time.sleep(0.3)  # nothing more arrives
        stores = {"sqlite": sqlite_events(fx.path("s.db")), "postgres": pg_events(pg)}

        rows = {}
        for run in gws:
            rows[run] = match_rows(seen[run], stores[run])
            logged = log_events(log[run])
            eq(len(read_lines([log[run]])), n, run + ": request log lines")
            eq(sorted(logged), sorted(stores[run]), run + ": the request log's ids are the rows'")
            for rid, row in stores[run].items():
                ev = logged[rid]
                eq(row, {c: ev.get(c) for c in row},
                   "%s: the row of %s against its request log line" % (run, rid))
            for k, s in seen[run].items():
                check_row(s, rows[run][k], deps)

        # The two stores recorded the same script identically.
        for k in seen["sqlite"]:
            eq(stable(rows["postgres"][k]), stable(rows["sqlite"][k]),
               "%s #%d: the PostgreSQL row against the SQLite row" % k)

        # /metrics and the spans, once nothing is in flight and every span was exported.
        for run, gw in gws.items():
            text = wait_until(lambda: scrape_idle(gw), 10, run + ": nothing in flight")
            want_spans = sum(1 for s in seen[run].values() if s.step.get("sampled") is not False)
            rids = {r["request_id"] for r in rows[run].values()}
            wait_until(lambda: len([sp for sp in col.spans() if sp["kind"] == 2 and
                                    attrs(sp).get("slogate.request_id") in rids]) >= want_spans,
                       15, "%s: %d request spans" % (run, want_spans))
            logged = log_events(log[run])
            traces = {logged[rid]["trace_id"] for rid in rids}
            # The collector has a batch before the exporter has read its 200 and counted it.
            wait_until(lambda: exported_count(gw) == len(spans_of_run(col.spans(), rids)),
                       10, run + ": every span received counted as exported")
            marked = lambda flag: {rows[run][k]["request_id"] for k, s in seen[run].items()
                                   if s.step.get(flag)}
            p = check_metrics(run, scrape_idle(gw), list(rows[run].values()), deps, logged,
                              before_lookup=marked("refused_body"))
            exported = p["slogate_otlp_spans_exported_total"][0][1]
            spans = [sp for sp in col.spans() if sp["traceId"] in traces]
            check_spans(run, spans, seen[run], rows[run], logged, exported)
            promtool_check(text)
    finally:
        col.close()


def spans_of_run(spans, rids):
    """The request spans of these request ids and their attempt children."""
    reqs = {sp["spanId"] for sp in spans
            if sp["kind"] == 2 and attrs(sp).get("slogate.request_id") in rids}
    return [sp for sp in spans if sp["spanId"] in reqs or
            (sp["kind"] == 3 and sp.get("parentSpanId") in reqs)]


def exported_count(gw):
    return parse_prom(http(gw.port, "GET", "/metrics").text)[
        "slogate_otlp_spans_exported_total"][0][1]


def scrape_idle(gw):
    """The /metrics text once no request is in flight, else None."""
    r = http(gw.port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    return r.text if parse_prom(r.text)["slogate_requests_in_flight"][0][1] == 0 else None


@time_limit(60)
def test_attempts_past_what_an_event_keeps(fx):
    """A request may make more attempts than its event keeps (8): the spans and the request log
    keep the first 7 and the last — the one that ended the request — and say how many they
    left out, so they still add up to x-slogate-attempts and the row's retries."""
    col = Collector()
    try:
        bad = fx.mock(name="bad", status=500)
        cfg = {"model_list": [dep("many-%d" % i, "many/chat", bad, order=i)
                              for i in range(1, 11)],
               "router_settings": {"allowed_fails": 1000},
               "general_settings": {"master_key": MASTER_KEY,
                                    "database_url": "sqlite://" + fx.path("m.db")},
               "telemetry": {"request_log": fx.path("m.jsonl"), "otlp_endpoint": col.url}}
        gw = fx.gateway(cfg)
        r = http(gw.port, "POST", "/v1/chat/completions", chat_req("many/chat")["body"])
        eq(r.status, 502, "every tier failed (%s)" % r.text[:200])
        eq(r.header("x-slogate-attempts"), "10", "attempts")
        eq(r.header("x-slogate-deployment"), "many-10", "the last deployment tried")
        rid = r.header("x-request-id")
        wait_until(lambda: read_lines([fx.path("m.jsonl")]), 10, "the request log line")
        ev = read_lines([fx.path("m.jsonl")])[0]
        eq(ev["retries"], 9, "the row's retries")
        kept = ["many-%d" % i for i in (1, 2, 3, 4, 5, 6, 7, 10)]
        eq([a["deployment"] for a in ev["attempts"]], kept, "the attempts the log lists")
        eq(ev.get("attempts_dropped"), 2, "the attempts it leaves out")
        wait_until(lambda: [s for s in col.spans() if s["kind"] == 2], 10, "the request span")
        req = [s for s in col.spans() if s["kind"] == 2][0]
        eq(attrs(req).get("slogate.request_id"), rid, "the request span")
        eq(attrs(req).get("slogate.attempts_dropped"), "2", "the request span says 2 are missing")
        wait_until(lambda: len([s for s in col.spans() if s["kind"] == 3]) >= 8, 10,
                   "8 attempt spans")
        kids = sorted([s for s in col.spans() if s.get("parentSpanId") == req["spanId"]],
                      key=lambda s: int(attrs(s)["slogate.attempt"]))
        eq([(attrs(s)["slogate.deployment"], attrs(s)["slogate.attempt"]) for s in kids],
           [(d, d.split("-")[1]) for d in kept], "the attempt spans, numbered as they were made")
        eq([attrs(s)["error.type"] for s in kids], ["failure"] * 8, "each attempt failed")
    finally:
        col.close()

