"""LiteLLM's wildcard routes (a '*' in model_name), served as LiteLLM's proxy serves them: a
name no exact model_name takes goes to the most specific route that matches it, and what each
'*' matched fills the '*' of litellm_params.model. Each test asserts what the client sees
(status, the answer's model, x-slogate-* headers), what the mock provider was asked for, and the
request's row in the store."""

import json

from harness import MASTER_KEY, MOCK_KEY, chat, chat_body, check, contains, eq, wait_until
from test_litellm_configs import models, root
from test_telemetry import sqlite_rows

NO_PROVIDER_ENV = {k: None for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}


def entry(name, model, base, dep_id, extra=""):
    return ("  - model_name: \"%s\"\n"
            "    litellm_params: { model: \"%s\", api_key: %s, api_base: \"%s\"%s }\n"
            "    model_info: { id: %s }\n" % (name, model, MOCK_KEY, base, extra, dep_id))


def row_of(db, request_id):
    """The store row of one request: alias, provider, model, deployment, status, cost_usd."""
    sql = ("SELECT alias, provider, model, deployment, status, cost_usd FROM slogate_requests "
           "WHERE request_id = '%s'" % request_id)
    r = wait_until(lambda: sqlite_rows(db, sql), 10, "the row of request %s" % request_id)
    return list(r[0])


def test_wildcard_routes_serve_the_names_they_match(fx):
    # LiteLLM's docs ("Provider specific wildcard routing", the proxy configs page): a catch-all
    # "*" on openai/*, a route per provider, a team prefix; an exact name beside them, and a
    # Bedrock route LiteLLM serves but slogate cannot (left out, as before).
    a = fx.mock(name="openai-mock")
    b = fx.mock(name="anthropic-mock")
    db = fx.path("w.db")
    text = ("model_list:\n" +
            entry("*", "openai/*", a.url, "wild-any") +
            entry("anthropic/*", "anthropic/*", root(b), "wild-claude") +
            entry("my-team/*", "openai/*", a.url, "wild-team") +
            entry("gpt-4o", "openai/gpt-4o-2024-08-06", a.url, "exact") +
            "  - model_name: \"bedrock/*\"\n"
            "    litellm_params: { model: \"bedrock/*\" }\n"
            "general_settings:\n"
            "  master_key: %s\n"
            "  database_url: sqlite://%s\n" % (MASTER_KEY, db))
    path = fx.write("w.yaml", text)
    r = fx.cli(["check", "-c", path], env=NO_PROVIDER_ENV)
    eq(r.code, 0, "check (%s)" % r)
    eq([ln.replace(fx.dir + "/", "") for ln in r.err.splitlines()], [
        "w.yaml:15: warning: model_list[4] (bedrock/*) is not routed: slogate has no bedrock "
        "adapter (it speaks the OpenAI and Anthropic APIs); to reach * through an "
        "OpenAI-compatible endpoint, write model: openai/* with that endpoint as api_base",
    ], "check's diagnostics: the wildcard routes load, priced per request")
    contains(r.out, "ok \u2014 4 deployments in 4 groups, 1 warning", "check's summary")
    gw = fx.gateway(text)

    # "*" asked as gpt-4o-mini calls openai's gpt-4o-mini, priced as gpt-4o-mini.
    r = chat(gw.port, chat_body(model="gpt-4o-mini"))
    eq(r.status, 200, "gpt-4o-mini through * (%s)" % r.text)
    eq(r.json()["model"], "gpt-4o-mini", "the answer's model: what the provider called it")
    eq(r.header("x-slogate-deployment"), "wild-any", "x-slogate-deployment")
    eq(r.header("x-slogate-provider"), "openai", "x-slogate-provider")
    eq(a.last()["model"], "gpt-4o-mini", "the model the provider was asked for")
    check(float(r.header("x-slogate-cost-usd")) > 0, "priced as gpt-4o-mini: %s"
          % r.header("x-slogate-cost-usd"))
    eq(row_of(db, r.header("x-request-id"))[:5],
       ["gpt-4o-mini", "openai", "gpt-4o-mini", "wild-any", 200], "its row")

    # "anthropic/*" asked as anthropic/<model>: the Messages API called with <model>, the
    # answer translated back (its model is Anthropic's name for it, as LiteLLM returns).
    r = chat(gw.port, chat_body(model="anthropic/claude-3-5-haiku-latest"))
    eq(r.status, 200, "through anthropic/* (%s)" % r.text)
    eq(r.json()["model"], "claude-3-5-haiku-latest", "the answer's model")
    eq(r.header("x-slogate-deployment"), "wild-claude", "x-slogate-deployment")
    eq(r.header("x-slogate-provider"), "anthropic", "x-slogate-provider")
    eq(b.last()["path"], "/v1/messages", "called on the Messages API")
    eq(b.last()["model"], "claude-3-5-haiku-latest", "the model Anthropic was asked for")
    row = row_of(db, r.header("x-request-id"))
    eq(row[:5], ["anthropic/claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest",
                 "wild-claude", 200], "its row: the name asked, the model called")
    check(row[5] > 0, "priced as claude-3-5-haiku (cost %r)" % row[5])

    # The team prefix: my-team/o3-mini calls o3-mini.
    r = chat(gw.port, chat_body(model="my-team/o3-mini"))
    eq(r.status, 200, "through my-team/* (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "wild-team", "the more specific route over *")
    eq(a.last()["model"], "o3-mini", "the model asked for")

    # An exact model_name wins over every route.
    r = chat(gw.port, chat_body(model="gpt-4o"))
    eq(r.status, 200, "gpt-4o (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "exact", "the exact name's deployment")
    eq(a.last()["model"], "gpt-4o-2024-08-06", "its own model")

    # A name the price table does not know: served, and costs 0 (docs/pricing.md: unpriced).
    r = chat(gw.port, chat_body(model="ft:my-finetune"))
    eq(r.status, 200, "an unknown model (%s)" % r.text)
    eq(r.header("x-slogate-cost-usd"), "0.00000000", "an unpriced model's cost")
    eq(a.last()["model"], "ft:my-finetune", "the model asked for")
    eq(row_of(db, r.header("x-request-id"))[2:], ["ft:my-finetune", "wild-any", 200, 0.0],
       "its row")

    # Bedrock's route is left out; "*" takes what it would have: LiteLLM's proxy, which drops
    # the deployment it cannot set up, does the same.
    r = chat(gw.port, chat_body(model="bedrock/claude-v2"))
    eq(r.status, 200, "bedrock/claude-v2 through * (%s)" % r.text)
    eq(a.last()["model"], "bedrock/claude-v2", "the whole name, as * took it")

    # Streams: the chunks are the provider's, with its model.
    r = chat(gw.port, chat_body(model="gpt-4.1-mini", stream=True))
    eq(r.status, 200, "a stream through * (%s)" % r.text)
    contains(r.header("content-type"), "text/event-stream", "an event stream")
    events = r.sse_events()
    eq(events[-1], "[DONE]", "the stream ends with [DONE]")
    eq({json.loads(e)["model"] for e in events[:-1]}, {"gpt-4.1-mini"}, "the chunks' model")
    eq(a.last()["model"], "gpt-4.1-mini", "the model the stream asked for")
    eq(row_of(db, r.header("x-request-id"))[:4],
       ["gpt-4.1-mini", "openai", "gpt-4.1-mini", "wild-any"], "the stream's row")

    # /v1/models: each route's own name, then the known models it serves (LiteLLM lists its
    # model list's; slogate its price table's), each once; a name an exact model_name or a more
    # specific route takes is listed there, not under "*".
    ids = models(gw)
    for want in ("*", "anthropic/*", "my-team/*", "gpt-4o", "gpt-4o-mini", "o3-mini",
                 "anthropic/claude-3-5-haiku", "my-team/gpt-4o-mini"):
        check(want in ids, "/v1/models lists %s: %r" % (want, ids))
    eq(len(ids), len(set(ids)), "no name listed twice")
    eq(ids[:2], ["*", "gpt-5"], "a route, then its models")
    check("bedrock/*" not in ids, "the route left out is not listed")
    check("anthropic/gpt-4o" not in ids, "a route lists its own provider's models")


def test_a_bare_name_reaches_its_providers_route(fx):
    # LiteLLM's pattern router tries "<provider>/<name>" after the name, with the provider it
    # knows for the name: an OpenAI SDK asking for gpt-4o reaches "openai/*".
    a = fx.mock()
    text = ("model_list:\n" + entry("openai/*", "openai/*", a.url, "wild-openai") +
            "general_settings:\n  master_key: %s\n" % MASTER_KEY)
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="gpt-4o"))
    eq(r.status, 200, "gpt-4o (%s)" % r.text)
    eq(a.last()["model"], "gpt-4o", "the model asked for")
    eq(r.header("x-slogate-deployment"), "wild-openai", "x-slogate-deployment")
    r = chat(gw.port, chat_body(model="openai/gpt-4o-mini"))
    eq(r.status, 200, "openai/gpt-4o-mini (%s)" % r.text)
    eq(a.last()["model"], "gpt-4o-mini", "the model asked for")
    r = chat(gw.port, chat_body(model="llama3"))
    eq(r.status, 404, "a name with no provider LiteLLM knows (%s)" % r.text)
    contains(r.error()["message"], "does not exist", "the usual message")


def test_retries_cooldowns_and_fallbacks_are_the_routes(fx):
    # A route's deployments fail over, cool down and fall back as any group's do. Their state
    # is per deployment, shared by every name the route serves: gpt-4o-mini's failure cools the
    # deployment for o3-mini too.
    down = fx.mock(name="down", status=500)
    up = fx.mock(name="up")
    spare = fx.mock(name="spare")
    text = ("model_list:\n" +
            entry("*", "openai/*", down.url, "first", ", order: 1") +
            entry("*", "openai/*", up.url, "second", ", order: 2") +
            entry("spare", "openai/spare-model", spare.url, "spare") +
            "router_settings:\n"
            "  num_retries: 0\n"
            "  allowed_fails: 1\n"
            "  cooldown_time: 60\n"
            "  fallbacks: [{o1: [spare]}]\n"
            "general_settings:\n  master_key: %s\n" % MASTER_KEY)
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="gpt-4o-mini"))
    eq(r.status, 200, "failed over (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "second", "the next tier answered")
    eq(r.header("x-slogate-attempts"), "2", "two attempts")
    eq(r.header("x-slogate-failover-hops"), "1", "one hop")
    eq(down.last()["model"], "gpt-4o-mini", "the failed attempt's model")
    eq(up.last()["model"], "gpt-4o-mini", "the answering attempt's model")
    eq(down.stats()["requests"], 1, "one request to the failing deployment")

    r = chat(gw.port, chat_body(model="o3-mini", stream=True))
    eq(r.status, 200, "another name, streamed (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "second", "the cooling deployment is skipped")
    eq(r.header("x-slogate-attempts"), "1", "no attempt on the cooling deployment")
    eq(down.stats()["requests"], 1, "the failing deployment was not called again")
    eq(up.last()["model"], "o3-mini", "the model asked for")

    # Fallbacks are keyed by the name the client sent, as LiteLLM keys them.
    up.faults(status=503)
    r = chat(gw.port, chat_body(model="o1"))
    eq(r.status, 200, "o1 falls back (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "spare", "o1's fallback answered")
    eq(spare.last()["model"], "spare-model", "the fallback's own model")
    r = chat(gw.port, chat_body(model="o3"))
    eq(r.status, 503, "o3 has no fallback: every deployment is cooling (%s)" % r.text)
    contains(r.error()["message"], "no healthy deployment for *", "the route's name in the 503")


def test_a_failed_attempt_names_the_model_it_called(fx):
    # The 502's list of failed attempts names each deployment's model as the route filled it
    # for this request, not the '*' of the config.
    down = fx.mock(name="down", status=500)
    text = ("model_list:\n" + entry("*", "openai/*", down.url, "only") +
            "router_settings:\n  num_retries: 0\n"
            "general_settings:\n  master_key: %s\n" % MASTER_KEY)
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="gpt-4o-mini"))
    eq(r.status, 502, "status (%s)" % r.text)
    msg = r.error()["message"]
    contains(msg, "1 attempt failed: only (openai/gpt-4o-mini at %s)" % down.url, "the message")
    check("*" not in msg, "no '*' in the message: %s" % msg)


def test_patterns_slogate_cannot_fill_are_left_out_saying_what_to_write(fx):
    # What LiteLLM loads but would send a literal '*' (or the whole name) upstream for: check
    # says what to write, on the model's line; the client asking is told the same.
    a = fx.mock()
    text = ("model_list:\n" +
            entry("team", "openai/*", a.url, "t") +
            entry("pair/*", "openai/*-*", a.url, "p") +
            entry("chat", "openai/gpt-4o-mini", a.url, "chat") +
            "general_settings:\n  master_key: %s\n" % MASTER_KEY)
    path = fx.write("bad.yaml", text)
    r = fx.cli(["check", "-c", path])
    eq(r.code, 0, "check (%s)" % r)
    eq([ln.replace(fx.dir + "/", "") for ln in r.err.splitlines()], [
        "bad.yaml:3: warning: model_list[0] (team) is not routed: litellm_params.model "
        "'openai/*' has a '*' but model_name 'team' has none to fill it (LiteLLM would send "
        "the '*' itself as the model): write model_name: \"team/*\" so that team/<model> calls "
        "<model>, or name the model (model: openai/gpt-4o)",
        "bad.yaml:6: warning: model_list[1] (pair/*) is not routed: litellm_params.model "
        "'openai/*-*' has 2 '*' but model_name 'pair/*' has 1: the i-th '*' of the model takes "
        "what the i-th '*' of model_name matched, so write as many in model_name (or fewer in "
        "the model)",
    ], "check's diagnostics")
    gw = fx.gateway(text)
    r = chat(gw.port, chat_body(model="pair/gpt-4o"))
    eq(r.status, 404, "a name only the left-out route matches (%s)" % r.text)
    eq(r.error()["code"], "model_not_found", "the code")
    contains(r.error()["message"], "The model `pair/gpt-4o` is in this gateway's config but not "
             "routed: litellm_params.model 'openai/*-*' has 2 '*'", "the client is told why")
    r = chat(gw.port, chat_body(model="team"))
    eq(r.status, 404, "the name of the entry left out (%s)" % r.text)
    contains(r.error()["message"], "has a '*' but model_name 'team' has none", "why")
    eq(models(gw), ["chat"], "/v1/models")
    eq(a.stats()["requests"], 0, "nothing reached the provider")


def test_background_health_checks_ask_for_a_routes_health_check_model(fx):
    # A wildcard route has no model of its own to ask for ('*'): its background health check asks
    # for model_info.health_check_model (LiteLLM's key, provider/model), and a route without one
    # is not probed — it used to be probed with '*' as the model.
    a = fx.mock(name="checked")
    b = fx.mock(name="unchecked")
    text = ("model_list:\n"
            "  - model_name: \"team-a/*\"\n"
            "    litellm_params: { model: \"openai/*\", api_key: %s, api_base: \"%s\" }\n"
            "    model_info: { id: wild-a, health_check_model: openai/gpt-4o-mini }\n"
            "  - model_name: \"team-b/*\"\n"
            "    litellm_params: { model: \"openai/*\", api_key: %s, api_base: \"%s\" }\n"
            "    model_info: { id: wild-b }\n"
            "general_settings:\n"
            "  master_key: %s\n"
            "  background_health_checks: true\n"
            "  health_check_interval: 1\n" % (MOCK_KEY, a.url, MOCK_KEY, b.url, MASTER_KEY))
    fx.gateway(text)
    wait_until(lambda: a.stats()["requests"] >= 2, 10, "two health checks at the checked route")
    eq(a.last()["model"], "gpt-4o-mini", "the model the health check asked for")
    eq(b.stats()["requests"], 0, "no health check at a route without health_check_model")
