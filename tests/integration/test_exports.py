"""The telemetry exports at their edges, as a user sees them: the JSON lines request log when
someone else moves or removes it (logrotate) or the disk refuses it, the OTLP spans a collector in
this process receives (operation names, trace context in and upstream, a collector that asks to
wait), and who may read /metrics and what it says."""

import json
import os

from harness import MASTER_KEY, chat_body, check, contains, eq, http, time_limit, wait_until
from test_telemetry import Collector, attrs, metric, metrics, promtool_check, read_lines, send


# ---- JSON lines request log ------------------------------------------------------------------

def log_gateway(fx, **telemetry):
    m = fx.mock()
    cfg = fx.config([m], general={"disable_spend_logs": True})
    cfg["telemetry"] = dict({"request_log": fx.path("r.jsonl")}, **telemetry)
    return m, fx.gateway(cfg)


def ids_in(path):
    return sorted(l["request_id"] for l in read_lines([path]))


def test_request_log_moved_or_removed_by_logrotate_is_reopened(fx):
    """logrotate's default (rename, then a new file; no signal to the gateway): the lines after
    the move go to a new file at the configured path, not on into the moved one. The same when
    the file is deleted."""
    m, gw = log_gateway(fx)
    log, moved = fx.path("r.jsonl"), fx.path("r.jsonl-20260101")
    first = send(gw, 2)
    wait_until(lambda: ids_in(log) == sorted(first), 10, "2 lines in the log")
    os.rename(log, moved)
    second = send(gw, 3)
    wait_until(lambda: ids_in(log) == sorted(second), 10,
               "the 3 lines after the move in a new %s (the moved file has %d lines)"
               % (log, len(ids_in(moved))))
    eq(ids_in(moved), sorted(first), "the moved file keeps only the lines before the move")
    os.unlink(log)
    third = send(gw, 2)
    wait_until(lambda: ids_in(log) == sorted(third), 10,
               "the lines after a delete in a new %s" % log)


def log_errors(gw):
    return metric(metrics(gw), "slogate_request_log_errors_total") or 0


def test_request_log_disk_errors_say_so_once_and_requests_go_on(fx):
    """A log the disk refuses (/dev/full: every write is ENOSPC): clients are served as ever, the
    lost lines are counted, and the gateway says once, on stderr, which file and why — not
    nothing, and not one line per batch."""
    m, gw = log_gateway(fx, request_log="/dev/full")
    send(gw, 1)
    wait_until(lambda: log_errors(gw) == 1, 10, "the refused line counted")
    send(gw, 2)
    wait_until(lambda: log_errors(gw) == 3, 10, "the next batches' lines counted")
    err = gw.proc.stderr()
    said = [l for l in err.splitlines() if "/dev/full" in l and "request log" in l]
    eq(len(said), 1, "warnings naming the request log (stderr: %s)" % err[-1500:])
    contains(said[0], "No space left on device", "the warning says why")
    contains(said[0], "slogate_request_log_errors_total", "the warning says where to look")


# ---- OTLP ------------------------------------------------------------------------------------

def span_of(col, rid):
    """The request span of one request id, and its attempt spans in start order."""
    spans = col.spans()
    req = [s for s in spans if s["kind"] == 2 and attrs(s).get("slogate.request_id") == rid]
    eq(len(req), 1, "one request span for %s" % rid)
    kids = sorted((s for s in spans if s.get("parentSpanId") == req[0]["spanId"]),
                  key=lambda s: int(s["startTimeUnixNano"]))
    return req[0], kids


def otlp_gateway(fx, col, mocks=None, **params):
    mocks = mocks or [fx.mock()]
    cfg = fx.config(mocks, general={"disable_spend_logs": True}, **params)
    cfg["telemetry"] = {"otlp_endpoint": col.url}
    return mocks, fx.gateway(cfg)


def test_otlp_embeddings_span_is_an_embeddings_operation(fx):
    """GenAI conventions: an embeddings call is operation "embeddings", and its span is named
    "embeddings {model}" — not "chat"."""
    col = Collector()
    try:
        (m,), gw = otlp_gateway(fx, col, model="openai/text-embedding-3-small")
        r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/chat", "input": "hello"})
        eq(r.status, 200, "embeddings (%s)" % r.text[:200])
        rc = gw.chat(chat_body())
        eq(rc.status, 200, "chat")
        wait_until(lambda: len([s for s in col.spans() if s["kind"] == 2]) == 2, 10,
                   "two request spans")
        s, kids = span_of(col, r.header("x-request-id"))
        eq(s["name"], "embeddings app/chat", "span name")
        eq(attrs(s)["gen_ai.operation.name"], "embeddings", "gen_ai.operation.name")
        eq([k["name"] for k in kids], ["embeddings text-embedding-3-small"], "attempt span")
        eq(attrs(kids[0])["gen_ai.operation.name"], "embeddings", "attempt operation")
        s, kids = span_of(col, rc.header("x-request-id"))
        eq(s["name"], "chat app/chat", "a chat request stays chat")
        eq(attrs(s)["gen_ai.operation.name"], "chat", "chat operation")
    finally:
        col.close()


def test_traceparent_upstream_carries_only_known_flags(fx):
    """W3C trace context: a traceparent we send is version 00, and flags this version does not
    define are sent as zero (sampled 01, and random 02 of Level 2, are kept) — even when the
    caller's header was a later version with more flags set."""
    m = fx.mock()
    cfg = fx.config([m], general={"disable_spend_logs": True})
    gw = fx.gateway(cfg)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    for incoming, flags in (("01-%s-00f067aa0ba902b7-ff-future-field" % trace, "03"),
                            ("00-%s-00f067aa0ba902b7-fd" % trace, "01"),
                            ("00-%s-00f067aa0ba902b7-00" % trace, "00")):
        r = gw.chat(chat_body(), headers={"traceparent": incoming})
        eq(r.status, 200, "chat")
        sent = m.last()["headers"].get("traceparent", "").split("-")
        eq(len(sent), 4, "four fields upstream for %s: %r" % (incoming, sent))
        eq((sent[0], sent[1], sent[3]), ("00", trace, flags),
           "version, trace and flags sent upstream for %s" % incoming)


def test_tracestate_goes_upstream_with_the_callers_trace(fx):
    """W3C trace context: a participant that continues a caller's traceparent sends its
    tracestate on too, several header lines joined with ','. Without a traceparent it belongs
    to no trace we continue and stays behind; one over 512 bytes is dropped whole."""
    m = fx.mock()
    cfg = fx.config([m], general={"disable_spend_logs": True})
    gw = fx.gateway(cfg)
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    eq(gw.chat(chat_body(), headers={"traceparent": tp, "tracestate": state}).status, 200, "chat")
    eq(m.last()["headers"].get("tracestate"), state, "tracestate sent on")
    body = json.dumps(chat_body()).encode()
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
           b"Content-Type: application/json\r\ntraceparent: %s\r\ntracestate: a=1\r\n"
           b"tracestate: b=2\r\nContent-Length: %d\r\n\r\n%s"
           % (MASTER_KEY.encode(), tp.encode(), len(body), body))
    eq(c.read_response().status, 200, "chat with two tracestate lines")
    eq(m.last()["headers"].get("tracestate"), "a=1,b=2", "the lines joined with ','")
    eq(gw.chat(chat_body(), headers={"tracestate": state}).status, 200, "chat")
    check("tracestate" not in m.last()["headers"], "no traceparent from the caller: no tracestate")
    big = ",".join("k%03d=%s" % (i, "v" * 40) for i in range(12))  # 12 x 46 bytes > 512
    eq(gw.chat(chat_body(), headers={"traceparent": tp, "tracestate": big}).status, 200, "chat")
    check("tracestate" not in m.last()["headers"], "a tracestate over 512 bytes is dropped")
    eq(m.last()["headers"].get("traceparent", "")[:36], tp[:36], "its traceparent still goes")


@time_limit(40)
def test_otlp_collector_retry_after_is_honoured(fx):
    """OTLP/HTTP: a collector that answers 429 or 503 with Retry-After asks the exporter to wait
    that long before it tries again (the spec's SHOULD). The exporter waited its own 200 ms
    instead; the spans arrive once, after the wait."""
    col = Collector(script=[(429, {"Retry-After": "2"}), (503, {"Retry-After": "1"})])
    try:
        (m,), gw = otlp_gateway(fx, col)
        rid = gw.chat(chat_body()).header("x-request-id")
        wait_until(lambda: len(col.spans()) == 2, 20, "the spans after the waits")
        t = col.calls()
        eq(len(t), 3, "export calls: the 429, the 503, the accepted one")
        check(t[1] - t[0] >= 1.9, "waited %.2f s after a Retry-After of 2 s" % (t[1] - t[0]))
        check(t[2] - t[1] >= 0.9, "waited %.2f s after a Retry-After of 1 s" % (t[2] - t[1]))
        span_of(col, rid)
        # The collector has the spans before the exporter has read its 200 and counted them.
        wait_until(lambda: metric(metrics(gw), "slogate_otlp_spans_exported_total") == 2, 5,
                   "spans exported")
        eq(metric(metrics(gw), "slogate_otlp_export_retries_total"), 2, "retries counted")
    finally:
        col.close()


def test_otlp_unsampled_caller_gets_no_spans_but_context_flows_on(fx):
    """A caller whose traceparent says "not sampled" (flags 00) made a head-sampling decision:
    like OpenTelemetry's default ParentBased sampler, the gateway records no spans for it (they
    would hang off a parent that is never exported), and still passes the trace on upstream,
    unsampled. A sampled caller's request and one without traceparent are exported."""
    col = Collector()
    try:
        (m,), gw = otlp_gateway(fx, col)
        unsampled, sampled = "4bf92f3577b34da6a3ce929d0e0e4736", "5bf92f3577b34da6a3ce929d0e0e4736"
        r = gw.chat(chat_body(), headers={"traceparent": "00-%s-00f067aa0ba902b7-00" % unsampled})
        eq(r.status, 200, "chat")
        sent = m.last()["headers"].get("traceparent", "")
        check(sent.startswith("00-%s-" % unsampled) and sent.endswith("-00"),
              "the unsampled trace goes on upstream: %r" % sent)
        r2 = gw.chat(chat_body(), headers={"traceparent": "00-%s-00f067aa0ba902b7-01" % sampled})
        r3 = gw.chat(chat_body())
        wait_until(lambda: len(col.spans()) >= 4, 10, "the sampled requests' spans")
        span_of(col, r2.header("x-request-id"))
        span_of(col, r3.header("x-request-id"))
        eq([s["name"] for s in col.spans() if s["traceId"] == unsampled], [],
           "spans of the unsampled trace")
        eq(len(col.spans()), 4, "spans at the collector")
        eq(metric(metrics(gw), "slogate_otlp_spans_dropped_total", reason="queue_full"), 0,
           "not sampled is not dropped")
    finally:
        col.close()


# ---- Prometheus ------------------------------------------------------------------------------

def samples(text, name):
    """The label part of every sample of `name`."""
    return [l.rpartition(" ")[0][len(name):] for l in text.splitlines()
            if l.startswith(name + "{") or l.startswith(name + " ")]


@time_limit(30)
def test_metrics_state_of_a_deployment_a_reload_removed_or_moved(fx):
    """After a reload, the state gauges describe the deployments the gateway has now: one the
    reload removed is not reported (it said healthy 1 — or 0 while it had been cooling — for a
    deployment that no longer exists), and one moved to another alias is reported under the new
    alias only. The request counters of the removed one stay, as counters do."""
    a, b = fx.mock(name="provider-a"), fx.mock(name="provider-b")
    cfg = fx.config([a, b])
    gw = fx.gateway(cfg, workers=2)
    send(gw, 2)
    cfg2 = fx.config([a], alias="app/other")
    fx.write_config(cfg2, "gateway.yaml")
    r = http(gw.port, "POST", "/admin/reload", key=MASTER_KEY)
    eq(r.status, 200, "reload (%s)" % r.text[:200])
    eq(gw.chat(chat_body(model="app/other")).status, 200, "the moved deployment answers")
    text = metrics(gw)
    promtool_check(text)
    for fam in ("slogate_deployment_healthy", "slogate_deployment_cooldown_remaining_seconds",
                "slogate_deployment_attempt_failures_total"):
        eq(samples(text, fam), ['{alias="app/other",deployment="primary"}'],
           "%s after the reload" % fam)
    eq(metric(text, "slogate_requests_total", alias="app/chat", deployment="primary",
              status_class="2xx"), 2, "the counter of the old label set stays")
    eq(metric(text, "slogate_requests_total", alias="app/other", deployment="primary",
              status_class="2xx"), 1, "the moved deployment counts under its new alias")


def test_metrics_failures_name_the_gateways_own_error_types(fx):
    """slogate_request_failures_total{error_type} is a closed list, but every error type the
    gateway itself answers with is on it: an HTTP-layer refusal on the chat endpoint (414, 431,
    505) and a deadline were counted as error_type="other", though the answer and the stored row
    name them."""
    from harness import http_refused
    m = fx.mock(latency_ms=3000)
    cfg = fx.config([m], general={"disable_spend_logs": True}, timeout=1)
    cfg["router_settings"] = {"timeout": 1}
    gw = fx.gateway(cfg)
    auth = b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
    chat = b"POST /v1/chat/completions"
    http_refused(fx, gw, chat + b"?pad=" + b"a" * 17000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
                 None, "a long target")
    http_refused(fx, gw, chat + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"X-Big: " + b"b" * 20000
                 + b"\r\nContent-Length: 0\r\n\r\n", 431, None, "a huge header")
    http_refused(fx, gw, chat + b" HTTP/3.0\r\nHost: x\r\n\r\n", 505, None, "HTTP/3.0")
    r = gw.chat(chat_body())
    eq(r.status, 504, "a deadline (%s)" % r.text[:200])
    code = r.error()["code"]
    text = metrics(gw)
    fails = {}
    for l in text.splitlines():
        if l.startswith("slogate_request_failures_total{"):
            t = l.split('error_type="')[1].split('"')[0]
            fails[t] = fails.get(t, 0) + float(l.rpartition(" ")[2])
    eq(fails.get("other"), 0, "failures counted as other (%r)"
       % {k: v for k, v in fails.items() if v})
    for t in ("uri_too_long", "headers_too_large", "http_version_not_supported", code):
        eq(fails.get(t), 1, "failures with error_type=%s" % t)


def test_metrics_token_is_read_like_the_master_key(fx):
    """telemetry.metrics_token is taken in the same Authorization forms as the master key (the
    scheme in any case, spaces after it); a wrong, partial or empty token, or one in the query
    string, is refused."""
    m = fx.mock()
    cfg = fx.config([m], general={"disable_spend_logs": True})
    cfg["telemetry"] = {"metrics_token": "scrape-token"}
    gw = fx.gateway(cfg)

    def get(auth, path="/metrics"):
        return http(gw.port, "GET", path, key=None,
                    headers={"Authorization": auth} if auth is not None else None).status

    for auth in ("Bearer scrape-token", "bearer scrape-token", "Bearer  scrape-token",
                 "Bearer %s" % MASTER_KEY, "Bearer  %s" % MASTER_KEY):
        eq(get(auth), 200, "GET /metrics with %r" % auth)
    for auth in ("Bearer scrape-toke", "Bearer scrape-token2", "Bearer ", "Bearer", "scrape-token",
                 "Basic scrape-token", None):
        eq(get(auth), 401, "GET /metrics with %r" % auth)
    eq(get(None, "/metrics?token=scrape-token"), 401, "a token in the query string")
