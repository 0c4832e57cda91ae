"""The OpenAI API's long tail as the official SDKs and real apps use it: embeddings inputs and their
typed parameters (OpenAI's 400 wording), chat parameters checked the same whichever provider
answers, the gateway's own members (metadata.feature, LiteLLM's cache controls) kept from OpenAI,
what an Anthropic deployment refuses or drops, embeddings failover priced and recorded once."""

import os
import sqlite3

from harness import MOCK_KEY, chat_body, check, eq, http, wait_until

EMBED_INVALID = ("'$.input' is invalid. Please check the API reference: "
                 "https://platform.openai.com/docs/api-reference.")


def both(fx, m, db=None):
    """A gateway with an OpenAI deployment (app/chat), an Anthropic one (app/claude) and an
    embeddings one (app/embed), all on mock `m`."""
    root = "http://127.0.0.1:%d" % m.port
    cfg = {"model_list": [
        {"model_name": "app/chat", "model_info": {"id": "gpt"},
         "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": MOCK_KEY,
                            "api_base": root + "/v1"}},
        {"model_name": "app/claude", "model_info": {"id": "claude"},
         "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest", "api_key": MOCK_KEY,
                            "api_base": root}},
        {"model_name": "app/embed", "model_info": {"id": "emb"},
         "litellm_params": {"model": "openai/text-embedding-3-small", "api_key": MOCK_KEY,
                            "api_base": root + "/v1"}},
    ], "general_settings": {"master_key": "sk-test"}}
    if db:
        cfg["general_settings"]["database_url"] = "sqlite://" + db
    return fx.gateway(cfg)


def rows(path, sql):
    if not os.path.exists(path):
        return []
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        con.close()



def test_metadata_and_cache_controls_are_not_sent_to_openai(fx):
    """OpenAI answers 400 "The 'metadata' parameter is only allowed when 'store' is enabled." to a
    body with metadata and no store, and "Unrecognized request argument" to LiteLLM's `cache`:
    metadata.feature (the gateway's attribution) and cache controls stay in the gateway. With
    "store": true the client's metadata is OpenAI's and goes through unchanged."""
    m = fx.mock()
    db = fx.path("gw.db")
    gw = both(fx, m, db)
    cases = [
        # (body members around the messages, stream)
        ({"metadata": {"feature": "summarize"}}, False),
        ({"metadata": {"feature": "summarize"}, "cache": {"no-cache": True}, "temperature": 0},
         True),
        ({"cache": {"ttl": 60}}, False),
    ]
    for extra, stream in cases:
        # The gateway's members first, last and in the middle of the object.
        for order in ("first", "last"):
            body = chat_body(stream=stream)
            body = dict(list(extra.items()) + list(body.items())) if order == "first" \
                else dict(list(body.items()) + list(extra.items()))
            r = http(gw.port, "POST", "/v1/chat/completions", body)
            eq(r.status, 200, "%s (%s)" % (body, r.text[:300]))
            up = m.last()["body"]
            eq(sorted(k for k in up if k in ("metadata", "cache")), [],
               "what OpenAI would refuse is left out of %s" % body)
            eq(up["messages"], body["messages"], "the rest as the client sent it")
            if "temperature" in extra:
                eq(up["temperature"], 0, "other members kept")
            if stream:
                eq(up["stream_options"], {"include_usage": True}, "streams still ask for usage")
    # The feature still came from metadata.
    wait_until(lambda: len(rows(db, "SELECT feature FROM slogate_requests")) >= 6, 10, "rows")
    feats = [f for (f,) in rows(db, "SELECT feature FROM slogate_requests")]
    eq(feats.count("summarize"), 4, "metadata.feature attributes the requests: %r" % feats)
    # Stored completions: metadata is OpenAI's then.
    r = http(gw.port, "POST", "/v1/chat/completions",
             chat_body(store=True, metadata={"feature": "summarize", "run": "7"}))
    eq(r.status, 200, "stored (%s)" % r.text[:300])
    up = m.last()["body"]
    eq((up.get("store"), up.get("metadata")), (True, {"feature": "summarize", "run": "7"}),
       "metadata with store: true is forwarded")


def test_embeddings_inputs_as_openai_checks_them(fx):
    """The four input forms OpenAI embeds are proxied; an empty string, an empty list, a list with
    an empty string, mixed kinds or another type are OpenAI's 400, before any provider call."""
    m = fx.mock()
    db = fx.path("gw.db")
    gw = both(fx, m, db)
    good = ["hello", ["a", "bb"], [1, 2, 3], [[1, 2], [3]]]
    for inp in good:
        r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/embed", "input": inp})
        eq(r.status, 200, "input %r (%s)" % (inp, r.text[:300]))
        n = len(inp) if isinstance(inp, list) else 1
        eq(len(r.json()["data"]), n, "one vector per input of %r" % (inp,))
        eq(m.last()["body"]["input"], inp, "input forwarded as sent")
    before = m.stats()["requests"]
    bad = ["", [], [""], ["a", ""], [[]], ["a", 1], [1.5], 5, {"a": 1}, [[1], ["x"]], True]
    for inp in bad:
        r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/embed", "input": inp})
        eq(r.status, 400, "input %r (%s)" % (inp, r.text[:300]))
        eq(r.json(), {"error": {"message": EMBED_INVALID, "type": "invalid_request_error",
                                "param": None, "code": None}}, "OpenAI's error for %r" % (inp,))
        check(r.header("x-request-id"), "x-request-id on the refusal")
    eq(m.stats()["requests"], before, "nothing was sent to the provider")
    wait_until(lambda: len(rows(db, "SELECT 1 FROM slogate_requests WHERE status = 400"))
               == len(bad), 10, "one row per refusal")


def test_embeddings_typed_parameters(fx):
    m = fx.mock()
    gw = both(fx, m)
    cases = [
        ({"encoding_format": "hex"}, None, None,
         "Invalid value for 'encoding_format' = hex. Supported values: ['float', 'base64']."),
        ({"dimensions": "3"}, "dimensions", "invalid_type",
         "Invalid type for 'dimensions': expected an integer, but got a string instead."),
        ({"dimensions": 0}, "dimensions", "integer_below_min_value",
         "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got 0 "
         "instead."),
        ({"user": 7}, "user", "invalid_type",
         "Invalid type for 'user': expected a string, but got an integer instead."),
    ]
    for extra, param, code, msg in cases:
        body = dict({"model": "app/embed", "input": "x"}, **extra)
        r = http(gw.port, "POST", "/v1/embeddings", body)
        eq(r.status, 400, "%s (%s)" % (extra, r.text[:300]))
        eq(r.error(), {"message": msg, "type": "invalid_request_error", "param": param,
                       "code": code}, "error for %s" % extra)
    body = {"model": "app/embed", "input": "x", "encoding_format": "base64", "dimensions": 4,
            "user": "u-1"}
    r = http(gw.port, "POST", "/v1/embeddings", body)
    eq(r.status, 200, "valid parameters (%s)" % r.text[:300])
    up = m.last()["body"]
    eq({k: up.get(k) for k in ("encoding_format", "dimensions", "user")},
       {"encoding_format": "base64", "dimensions": 4, "user": "u-1"}, "forwarded unchanged")
    check(isinstance(r.json()["data"][0]["embedding"], str), "base64 vector relayed as a string")


def test_chat_parameters_are_checked_the_same_for_every_provider(fx):
    """OpenAI refuses an out-of-range or mistyped sampling parameter; an Anthropic deployment
    would drop or clamp it. The gateway answers OpenAI's 400 for both, before any call."""
    m = fx.mock()
    gw = both(fx, m)
    cases = [
        ({"frequency_penalty": 5}, "decimal_above_max_value",
         "Invalid 'frequency_penalty': decimal above maximum value. Expected a value <= 2, but "
         "got 5 instead."),
        ({"presence_penalty": -2.5}, "decimal_below_min_value",
         "Invalid 'presence_penalty': decimal below minimum value. Expected a value >= -2, but "
         "got -2.5 instead."),
        ({"temperature": 3}, "decimal_above_max_value",
         "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 "
         "instead."),
        ({"top_p": "1"}, "invalid_type",
         "Invalid type for 'top_p': expected a decimal, but got a string instead."),
        ({"n": 0}, "integer_below_min_value",
         "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."),
        ({"top_logprobs": 21}, "integer_above_max_value",
         "Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, but got "
         "21 instead."),
        ({"max_completion_tokens": 0}, "integer_below_min_value",
         "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, "
         "but got 0 instead."),
        ({"seed": 1.5}, "invalid_type",
         "Invalid type for 'seed': expected an integer, but got a decimal instead."),
        ({"logprobs": "yes"}, "invalid_type",
         "Invalid type for 'logprobs': expected a boolean, but got a string instead."),
        ({"user": 42}, "invalid_type",
         "Invalid type for 'user': expected a string, but got an integer instead."),
    ]
    before = m.stats()["requests"]
    for extra, code, msg in cases:
        param = list(extra)[0]
        for alias in ("app/chat", "app/claude"):
            r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model=alias, **extra))
            eq(r.status, 400, "%s to %s (%s)" % (extra, alias, r.text[:300]))
            eq(r.error(), {"message": msg, "type": "invalid_request_error", "param": param,
                           "code": code}, "%s to %s" % (extra, alias))
    eq(m.stats()["requests"], before, "nothing was sent to a provider")
    # In range, and null (OpenAI's parameters are nullable): answered by both.
    ok = {"frequency_penalty": 2, "presence_penalty": -2, "temperature": None, "top_p": 1, "n": 1,
          "seed": 7, "logprobs": False, "max_tokens": 5}
    for alias in ("app/chat", "app/claude"):
        r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model=alias, **ok))
        eq(r.status, 200, "in range to %s (%s)" % (alias, r.text[:300]))
    up = m.last()["body"]
    eq(up["max_tokens"], 5, "max_tokens reached Anthropic")


def test_anthropic_deployment_refuses_what_it_would_silently_change(fx):
    """Legacy functions and audio output cannot be said to Claude: dropped, the client would get a
    text answer where its code waits for a function call or audio, so they are a 400 naming the
    deployment. Whitespace-only stop sequences ("\\n", common with OpenAI), which Anthropic
    refuses, are dropped as LiteLLM drops them; the others are sent."""
    m = fx.mock()
    gw = both(fx, m)
    before = m.stats()["messages"]
    fn = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
    for extra, says in [
        ({"functions": [fn]}, "'functions' and 'function_call'"),
        ({"functions": [fn], "function_call": {"name": "lookup"}}, "send 'tools'"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
         "audio output"),
    ]:
        r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model="app/claude", **extra))
        eq(r.status, 400, "%s (%s)" % (extra, r.text[:300]))
        msg = r.error()["message"]
        check(says in msg and "claude" in msg, "the message says what and where: %r" % msg)
        eq(r.header("x-slogate-deployment"), "claude", "the deployment that refused")
        # The same body reaches an OpenAI deployment unchanged.
        r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model="app/chat", **extra))
        eq(r.status, 200, "%s to OpenAI (%s)" % (extra, r.text[:300]))
        up = m.last()["body"]
        eq({k: up.get(k) for k in extra}, extra, "forwarded to OpenAI unchanged")
    eq(m.stats()["messages"], before, "nothing refused reached Anthropic")
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model="app/claude", modalities=["text"]))
    eq(r.status, 200, "text-only modalities are fine (%s)" % r.text[:300])
    for stop, want in [("\n", None), ([" ", "END", "\t\n"], ["END"]), (["END", "STOP"], ["END", "STOP"]),
                       ("###", ["###"])]:
        r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model="app/claude", stop=stop))
        eq(r.status, 200, "stop %r (%s)" % (stop, r.text[:300]))
        eq(m.last()["body"].get("stop_sequences"), want, "stop_sequences for stop %r" % (stop,))


def test_embeddings_fail_over_and_are_priced_once(fx):
    """Two embeddings deployments: the first cannot be reached (drill fault block_egress), the
    second answers; the answer's cost header, the row's cost and tokens agree, one row."""
    a, b = fx.mock(name="emb-a"), fx.mock(name="emb-b")
    db = fx.path("gw.db")
    cfg = fx.config([a, b], alias="app/embed", model="openai/text-embedding-3-small",
                    general={"database_url": "sqlite://" + db})
    gw = fx.gateway(cfg)
    r = http(gw.port, "POST", "/admin/faults", {"deployment": "primary", "block_egress": True})
    eq(r.status, 200, "fault on (%s)" % r.text)
    r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/embed", "input": ["hello", "world"]})
    eq(r.status, 200, "failed over (%s)" % r.text[:300])
    eq((r.header("x-slogate-deployment"), r.header("x-slogate-attempts"),
        r.header("x-slogate-failover-hops")), ("secondary", "2", "1"), "served by the second")
    tokens = r.json()["usage"]["prompt_tokens"]
    cost = float(r.header("x-slogate-cost-usd"))
    check(abs(cost - tokens * 0.02e-6) < 1e-9, "cost %r for %d tokens at $0.02/M" % (cost, tokens))
    rid = r.header("x-request-id")
    got = wait_until(lambda: rows(db, "SELECT deployment, status, input_tokens, output_tokens, "
                                      "cost_usd, failover_hops FROM slogate_requests WHERE "
                                      "request_id = '%s'" % rid), 10, "the row")
    eq(len(got), 1, "one row")
    d, st, it, ot, c, hops = got[0]
    eq((d, st, it, ot, hops), ("secondary", 200, tokens, 0, 1), "the row")
    check(abs(c - cost) < 1e-9, "row cost %r = header cost %r" % (c, cost))
