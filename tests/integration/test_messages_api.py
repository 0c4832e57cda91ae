"""POST /v1/messages as an Anthropic client sees it, through an Anthropic deployment and an
OpenAI-compatible one behind the same gateway (slogate mock speaks both formats): the headers
Anthropic's SDK reads, what goes upstream (anthropic-beta, metadata, tool_choice), the event
sequence of a translated stream, POST /v1/messages/count_tokens, and the store's rows against
what the client was told."""

import json

from harness import MASTER_KEY, check, eq, http, time_limit, wait_until
from test_providers import anthropic_config, messages_req, sse_events
from test_telemetry import sqlite_rows

HELLO = [{"role": "user", "content": "Hello"}]


def both(fx, db=None):
    """A gateway with app/claude (Anthropic deployment) and app/gpt (OpenAI-compatible) in
    front of one mock."""
    m = fx.mock(name="both")
    cfg = fx.config([m], alias="app/gpt")
    cfg["model_list"] += anthropic_config(fx, m, alias="app/claude")["model_list"]
    if db:
        cfg["general_settings"]["database_url"] = "sqlite://" + db
    return m, fx.gateway(cfg)


def rows_by_id(db, n):
    cols = "request_id, status, error_type, input_tokens, output_tokens, feature, user_id"
    wait_until(lambda: len(sqlite_rows(db, "SELECT request_id FROM slogate_requests") or []) >= n,
               15, "%d rows in the store" % n)
    return {r[0]: r[1:] for r in sqlite_rows(db, "SELECT %s FROM slogate_requests" % cols)}


@time_limit(60)
def test_messages_answers_carry_anthropics_request_id_header(fx):
    # Anthropic's SDK reads `request-id` (message._request_id, APIError.requestID): every
    # Messages answer carries it, the same id as x-request-id and the store's row.
    db = fx.path("m.db")
    m, gw = both(fx, db)
    seen = []
    for model in ("app/claude", "app/gpt"):
        for stream in (False, True):
            r = messages_req(gw.port, {"model": model, "max_tokens": 4, "stream": stream,
                                       "messages": HELLO})
            eq(r.status, 200, "%s stream=%s (%s)" % (model, stream, r.text))
            seen.append((r, 200, None))
    r = messages_req(gw.port, {"model": "nope", "max_tokens": 4, "messages": HELLO})
    eq((r.status, r.json()["error"]["type"]), (404, "not_found_error"), "unknown model")
    seen.append((r, 404, "model_not_found"))
    r = messages_req(gw.port, {"model": "app/gpt", "messages": HELLO})
    eq((r.status, r.json()["error"]["type"]), (400, "invalid_request_error"), "no max_tokens")
    seen.append((r, 400, "invalid_request_error"))
    r = messages_req(gw.port, {"model": "app/gpt", "max_tokens": 4, "messages": HELLO},
                     key="wrong")
    eq((r.status, r.json()["error"]["type"]), (401, "authentication_error"), "wrong key")
    seen.append((r, 401, "invalid_api_key"))
    rows = rows_by_id(db, len(seen))
    for r, status, error_type in seen:
        rid = r.header("request-id")
        check(rid, "request-id on a %d answer: %r" % (status, r.headers))
        eq(rid, r.header("x-request-id"), "request-id is x-request-id")
        eq(rows[rid][:2], (status, error_type), "the store's row of request-id %s" % rid)
    # OpenAI clients are not given Anthropic's header.
    r = http(gw.port, "POST", "/v1/chat/completions", {"model": "app/gpt", "messages": HELLO})
    eq(r.status, 200, "chat (%s)" % r.text)
    eq(r.header("request-id"), None, "no request-id header on a chat.completions answer")


def test_messages_anthropic_beta_goes_to_anthropic_deployments(fx):
    # Claude's clients turn betas on with anthropic-beta (one header or several): an Anthropic
    # deployment must get them, or the request runs without the features it relies on.
    m, gw = both(fx)
    body = {"model": "app/claude", "max_tokens": 4, "messages": HELLO}
    r = messages_req(gw.port, body, headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    eq(r.status, 200, "status (%s)" % r.text)
    eq(m.last()["headers"].get("anthropic-beta"), "prompt-caching-2024-07-31", "one beta sent on")
    raw = ("POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nContent-Type: "
           "application/json\r\nanthropic-beta: a-2025-01-01\r\nanthropic-beta: b-2025-02-02\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n")
    data = json.dumps(dict(body, stream=True)).encode()
    with fx.conn(gw.port) as c:
        c.send((raw % (MASTER_KEY, len(data))).encode() + data)
        resp = c.read_response()
    eq(resp.status, 200, "a stream with two anthropic-beta lines")
    eq(m.last()["headers"].get("anthropic-beta"), "a-2025-01-01,b-2025-02-02",
       "two lines joined, in order")
    r = messages_req(gw.port, dict(body, model="app/gpt"), headers={"anthropic-beta": "x-1"})
    eq(r.status, 200, "status (%s)" % r.text)
    eq(m.last()["headers"].get("anthropic-beta"), None, "not sent to an OpenAI-compatible one")
    r = messages_req(gw.port, body)
    eq(m.last()["headers"].get("anthropic-beta"), None, "none when the client sent none")


@time_limit(60)
def test_messages_metadata_sent_to_anthropic_is_user_id_only(fx):
    # Anthropic refuses any metadata member but user_id ("Extra inputs are not permitted"):
    # metadata.feature, the gateway's attribution, attributes the request and stays here.
    db = fx.path("m.db")
    m = fx.mock(name="both")
    cfg = anthropic_config(fx, m, alias="app/claude")
    cfg["general_settings"]["database_url"] = "sqlite://" + db
    cfg["features"] = {"support": {}, "cached": {"prompt_caching": True}}
    gw = fx.gateway(cfg)
    sent = []
    for meta, want in (({"user_id": "u-1", "feature": "support"}, {"user_id": "u-1"}),
                       ({"feature": "support"}, None)):
        for stream in (False, True):
            r = messages_req(gw.port, {"model": "app/claude", "max_tokens": 3, "stream": stream,
                                       "metadata": meta, "messages": HELLO})
            eq(r.status, 200, "status (%s)" % r.text)
            eq(m.last()["body"].get("metadata"), want, "metadata sent for %r" % meta)
            sent.append((r.header("x-request-id"), meta.get("user_id")))
    # With prompt caching on (the other encoding path) too.
    r = messages_req(gw.port, {"model": "app/claude", "max_tokens": 3, "system": "Be brief.",
                               "metadata": {"user_id": "u-2", "feature": "support"},
                               "messages": HELLO},
                     headers={"x-slogate-feature": "cached"})
    eq(r.status, 200, "status (%s)" % r.text)
    eq(m.last()["body"]["metadata"], {"user_id": "u-2"}, "metadata with prompt caching")
    # A body with only user_id goes as the client wrote it.
    body = {"model": "app/claude", "max_tokens": 3, "metadata": {"user_id": "u-3"},
            "messages": HELLO}
    r = messages_req(gw.port, body)
    eq(m.last()["body"], dict(body, model="claude-3-5-haiku-latest"), "relayed unchanged")
    rows = rows_by_id(db, len(sent))
    for rid, user in sent:
        eq(rows[rid][4:], ("support", user), "the row is attributed by metadata")


def test_messages_translated_stream_is_anthropics_event_sequence(fx):
    # An OpenAI-compatible deployment's stream, as a Messages client gets it: Anthropic's events
    # in Anthropic's order, a ping after the first block starts, and message_start's usage with
    # the fields Anthropic's has.
    m, gw = both(fx)
    for model in ("app/claude", "app/gpt"):
        r = messages_req(gw.port, {"model": model, "max_tokens": 3, "stream": True,
                                   "messages": HELLO})
        eq(r.status, 200, "status (%s)" % r.text)
        ev = sse_events(r.body)
        names = [n for n, _ in ev]
        eq(names, ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 3
           + ["content_block_stop", "message_delta", "message_stop"], "%s: events" % model)
        for n, d in ev:
            eq(d["type"], n, "%s: data type is the event name" % model)
        usage = ev[0][1]["message"]["usage"]
        eq(sorted(usage), ["cache_creation_input_tokens", "cache_read_input_tokens",
                           "input_tokens", "output_tokens"], "%s: message_start usage" % model)
        eq(ev[-2][1]["usage"]["output_tokens"], 3, "%s: message_delta output" % model)


def test_messages_tool_choice_without_tools_is_not_sent_to_openai(fx):
    # OpenAI refuses a tool_choice without tools; Anthropic's clients send "auto" (or "none")
    # with an empty or no tool list, which has nothing to choose from.
    m, gw = both(fx)
    for tc in ({"type": "auto"}, {"type": "none"}):
        for tools in (None, []):
            body = {"model": "app/gpt", "max_tokens": 3, "tool_choice": tc, "messages": HELLO}
            if tools is not None:
                body["tools"] = tools
            r = messages_req(gw.port, body)
            eq(r.status, 200, "status (%s)" % r.text)
            sent = m.last()["body"]
            check("tool_choice" not in sent and "tools" not in sent,
                  "%r with tools=%r: sent %r" % (tc, tools, sent))
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    r = messages_req(gw.port, {"model": "app/gpt", "max_tokens": 3, "tools": tools,
                               "tool_choice": {"type": "none"}, "messages": HELLO})
    eq(m.last()["body"].get("tool_choice"), "none", "with tools, the choice is sent")


@time_limit(60)
def test_count_tokens(fx):
    # The Anthropic SDK's messages.countTokens (LiteLLM serves it): the gateway's own input
    # estimate, the one a translated stream's message_start carries, for any alias; no provider
    # is called and nothing is recorded.
    db = fx.path("m.db")
    m, gw = both(fx, db)
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": "How many tokens?"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    r = messages_req(gw.port, dict(body, model="app/gpt", max_tokens=3, stream=True))
    start = sse_events(r.body)[0][1]["message"]["usage"]["input_tokens"]
    check(start > 0, "message_start has the estimate: %r" % start)
    m.reset_stats()
    wait_until(lambda: len(sqlite_rows(db, "SELECT 1 FROM slogate_requests") or []) == 1, 15,
               "the stream's row")
    for model in ("app/claude", "app/gpt"):
        for key_header in ({"x-api-key": MASTER_KEY}, {"Authorization": "Bearer " + MASTER_KEY}):
            r = http(gw.port, "POST", "/v1/messages/count_tokens", dict(body, model=model),
                     headers=key_header, key=None)
            eq(r.status, 200, "%s (%s)" % (model, r.text))
            eq(r.json(), {"input_tokens": start}, "%s: the gateway's input estimate" % model)
    cases = (({"model": "nope", "messages": HELLO}, MASTER_KEY, 404, "not_found_error"),
             ({"model": "app/gpt"}, MASTER_KEY, 400, "invalid_request_error"),
             ({"model": "app/gpt", "messages": HELLO}, "wrong", 401, "authentication_error"))
    for b, key, status, typ in cases:
        r = http(gw.port, "POST", "/v1/messages/count_tokens", b, headers={"x-api-key": key},
                 key=None)
        eq(r.status, status, "%r (%s)" % (b, r.text))
        eq(r.json(), {"type": "error", "error": {"type": typ,
                                                 "message": r.json()["error"]["message"]}},
           "Anthropic's error shape")
    r = http(gw.port, "GET", "/v1/messages/count_tokens")
    eq(r.status, 405, "POST only")
    eq(m.stats()["messages"], 0, "no provider was called")
    eq(len(sqlite_rows(db, "SELECT 1 FROM slogate_requests")), 1, "nothing recorded")


@time_limit(60)
def test_anthropic_stream_cut_is_charged_the_deltas_it_relayed(fx):
    # An Anthropic stream cut after some text: message_start said 1 output token, but the client
    # got more; the row counts at least one token per delta relayed, as for OpenAI chunks.
    db = fx.path("m.db")
    m = fx.mock(name="both", tps=200, reset="mid")
    cfg = anthropic_config(fx, m, alias="app/claude")
    cfg["general_settings"]["database_url"] = "sqlite://" + db
    gw = fx.gateway(cfg)
    r = messages_req(gw.port, {"model": "app/claude", "max_tokens": 10, "stream": True,
                               "messages": HELLO})
    ev = sse_events(r.body)
    eq(ev[-1][0], "error", "the stream ends with Anthropic's error event")
    eq(ev[-1][1]["type"], "error", "its data")
    deltas = sum(1 for n, _ in ev if n == "content_block_delta")
    check(deltas > 1, "some text came before the cut: %d deltas" % deltas)
    r2 = http(gw.port, "POST", "/v1/chat/completions",
              {"model": "app/claude", "max_tokens": 10, "stream": True, "messages": HELLO})
    chunks = [e for e in r2.sse_events() if '"content":"' in e and '"content":""' not in e]
    rows = rows_by_id(db, 2)
    row = rows[r.header("x-request-id")]
    eq(row[1], "stream_interrupted", "recorded as cut")
    check(row[3] >= deltas, "output tokens %d >= %d deltas relayed" % (row[3], deltas))
    row2 = rows[r2.header("x-request-id")]
    eq(row2[1], "stream_interrupted", "chat client: recorded as cut")
    check(row2[3] >= len(chunks) > 1,
          "chat client: output tokens %d >= %d text chunks" % (row2[3], len(chunks)))
