"""Providers and cost through real processes: an Anthropic deployment (slogate mock speaks the
Messages API on /v1/messages), Anthropic-format clients on POST /v1/messages, embeddings, usage
in every stream, x-slogate-cost-usd, errors in the client's own shape."""

import json

from harness import MASTER_KEY, MOCK_KEY, chat, chat_body, check, contains, eq, http, time_limit

HAIKU_IN, HAIKU_OUT = 0.8e-6, 4e-6          # claude-3-5-haiku, USD per token (built-in table)
HAIKU_READ, HAIKU_WRITE = 0.08e-6, 1.0e-6
MINI_IN, MINI_OUT = 0.15e-6, 0.6e-6         # gpt-4o-mini


def anthropic_config(fx, m, alias="app/chat", **params):
    lp = {"model": "anthropic/claude-3-5-haiku-latest", "api_key": MOCK_KEY,
          "api_base": "http://127.0.0.1:%d" % m.port}
    lp.update(params)
    return {"model_list": [{"model_name": alias, "litellm_params": lp,
                            "model_info": {"id": "claude"}}],
            "general_settings": {"master_key": MASTER_KEY}}


def cost(r):
    v = r.header("x-slogate-cost-usd")
    check(v is not None, "x-slogate-cost-usd is missing: %r" % r.headers)
    return float(v)


def close(a, b, what):
    check(abs(a - b) <= 1e-9 + 1e-6 * abs(b), "%s: expected %.10f, got %.10f" % (what, b, a))


def messages_req(port, body, key=MASTER_KEY, headers=None):
    h = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    h.update(headers or {})
    return http(port, "POST", "/v1/messages", body, headers=h, key=None)


def sse_events(raw):
    """[(event name, parsed data)] of an SSE body."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, []
        for ln in block.split(b"\n"):
            if ln.startswith(b"event:"):
                name = ln[6:].strip().decode()
            elif ln.startswith(b"data:"):
                data.append(ln[5:].strip())
        if data:
            d = b"\n".join(data)
            out.append((name, d.decode() if d == b"[DONE]" else json.loads(d)))
    return out


def test_anthropic_deployment_non_streaming(fx):
    m = fx.mock(name="claude-mock")
    gw = fx.gateway(anthropic_config(fx, m))
    body = chat_body(content="Hello", temperature=1.5, stop="END", max_tokens=10, user="u-1")
    body["messages"].insert(0, {"role": "system", "content": "Be brief."})
    r = gw.chat(body)
    eq(r.status, 200, "status (%s)" % r.text)
    j = r.json()
    eq(j["object"], "chat.completion", "an OpenAI client gets a chat.completion")
    contains(j["choices"][0]["message"]["content"], "Mock answer from claude-mock", "answer")
    eq(j["choices"][0]["finish_reason"], "length", "max_tokens -> length")
    eq(r.header("x-slogate-provider"), "anthropic", "provider header")
    last = m.last()
    eq(last["path"], "/v1/messages", "Anthropic's endpoint")
    eq(last["x_api_key"], MOCK_KEY, "the deployment's key in x-api-key")
    eq(last["authorization"], None, "no Authorization header to Anthropic")
    eq(last["headers"].get("anthropic-version"), "2023-06-01", "anthropic-version")
    sent = last["body"]
    eq(sent["model"], "claude-3-5-haiku-latest", "provider model id")
    eq(sent["system"], [{"type": "text", "text": "Be brief."}], "system prompt moved to system")
    eq(sent["messages"], [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
       "messages")
    eq(sent["max_tokens"], 10, "max_tokens")
    eq(sent["temperature"], 1.0, "temperature clamped to Anthropic's range")
    eq(sent["stop_sequences"], ["END"], "stop -> stop_sequences")
    eq(sent["metadata"], {"user_id": "u-1"}, "user -> metadata.user_id")
    u = j["usage"]
    eq(u["completion_tokens"], 10, "usage.completion_tokens")
    close(cost(r), u["prompt_tokens"] * HAIKU_IN + 10 * HAIKU_OUT, "x-slogate-cost-usd")
    # No max_tokens: Anthropic requires one, the gateway supplies the model's default.
    gw.chat(chat_body())
    eq(m.last()["body"]["max_tokens"], 8192, "default max_tokens for claude-3-5-haiku")


def test_anthropic_deployment_streaming(fx):
    m = fx.mock(name="claude-mock", tps=200)
    gw = fx.gateway(anthropic_config(fx, m))
    r = gw.chat(chat_body(stream=True, max_tokens=6, stream_options={"include_usage": True}))
    eq(r.status, 200, "status (%s)" % r.text)
    eq(r.header("content-type"), "text/event-stream", "SSE")
    ev = r.sse_events()
    eq(ev[-1], "[DONE]", "ends with [DONE]")
    chunks = [json.loads(e) for e in ev[:-1]]
    check(all(c["object"] == "chat.completion.chunk" for c in chunks), "chunk objects")
    eq(chunks[0]["choices"][0]["delta"], {"role": "assistant", "content": ""}, "role first")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    contains(text, "Mock answer from claude-mock", "assembled text")
    eq(chunks[-2]["choices"][0]["finish_reason"], "length", "finish_reason")
    eq(chunks[-1]["choices"], [], "usage chunk")
    eq(chunks[-1]["usage"]["completion_tokens"], 6, "usage chunk tokens")
    eq(m.last()["body"]["stream"], True, "stream asked of Anthropic")
    check(cost(r) > 0, "a stream's x-slogate-cost-usd carries the estimate: %r" % r.headers)
    # Without include_usage: no usage chunk reaches the client.
    r = gw.chat(chat_body(stream=True, max_tokens=4))
    chunks = [json.loads(e) for e in r.sse_events()[:-1]]
    check(all(c["choices"] for c in chunks), "no usage chunk when the client did not ask")


def test_anthropic_tool_call_round_trip(fx):
    m = fx.mock(name="claude-mock")
    gw = fx.gateway(anthropic_config(fx, m))
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": {"type": "object", "properties": {
                                                   "city": {"type": "string"}}}}}]
    body = {"model": "app/chat", "tools": tools, "tool_choice": "required", "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C and sunny"}]}
    r = gw.chat(body)
    eq(r.status, 200, "status (%s)" % r.text)
    sent = m.last()["body"]
    eq(sent["tools"], [{"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}], "tools")
    eq(sent["tool_choice"], {"type": "any"}, "required -> any")
    eq(sent["messages"][1], {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
         "input": {"city": "Paris"}}]}, "the tool call as tool_use")
    eq(sent["messages"][2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"}]},
       "the tool result in a user turn")


def test_prompt_caching_markers_and_cache_tokens_priced(fx):
    m = fx.mock(name="claude-mock")
    cfg = anthropic_config(fx, m)
    cfg["features"] = {"support": {"prompt_caching": True}}
    gw = fx.gateway(cfg)
    system = "You are the support agent for Acme. " * 40
    body = chat_body(content="Where is my order?", max_tokens=5)
    body["messages"].insert(0, {"role": "system", "content": system})
    hdr = {"x-slogate-feature": "support"}
    r1 = chat(gw.port, body, headers=hdr)
    eq(r1.status, 200, "status (%s)" % r1.text)
    eq(m.last()["body"]["system"][0]["cache_control"], {"type": "ephemeral"},
       "the stable system block is marked for caching")
    u1 = r1.json()["usage"]
    check(u1["cache_creation_input_tokens"] > 0, "first call writes the cache: %r" % u1)
    close(cost(r1), (u1["prompt_tokens"] - u1["cache_creation_input_tokens"]) * HAIKU_IN
          + u1["cache_creation_input_tokens"] * HAIKU_WRITE + 5 * HAIKU_OUT, "cost with a write")
    r2 = chat(gw.port, body, headers=hdr)
    u2 = r2.json()["usage"]
    cached = u2["prompt_tokens_details"]["cached_tokens"]
    check(cached > 0, "second call reads the cache: %r" % u2)
    eq(u2["cache_read_input_tokens"], cached, "Anthropic's field kept beside OpenAI's")
    close(cost(r2), (u2["prompt_tokens"] - cached) * HAIKU_IN + cached * HAIKU_READ
          + 5 * HAIKU_OUT, "cache reads priced at the cached price")
    check(cost(r2) < cost(r1), "a cache hit costs less")
    # Without the feature: no markers.
    chat(gw.port, body)
    check("cache_control" not in json.dumps(m.last()["body"]), "no markers without the feature")


def test_openai_stream_always_asks_for_usage(fx):
    m, gw = fx.mock_and_gateway()
    r = gw.chat(chat_body(stream=True))
    eq(r.status, 200, "status")
    eq(m.last()["body"]["stream_options"], {"include_usage": True},
       "the provider is asked for usage")
    chunks = [json.loads(e) for e in r.sse_events()[:-1]]
    check(all(c["choices"] for c in chunks), "the usage chunk is not passed to a client that did "
                                             "not ask: %r" % chunks[-1])
    r = gw.chat(chat_body(stream=True, stream_options={"include_usage": True}))
    chunks = [json.loads(e) for e in r.sse_events()[:-1]]
    eq(chunks[-1]["choices"], [], "a client that asked gets the usage chunk")
    r = gw.chat(chat_body(max_tokens=7))
    u = r.json()["usage"]
    close(cost(r), u["prompt_tokens"] * MINI_IN + 7 * MINI_OUT, "gpt-4o-mini cost")


def test_messages_endpoint_to_openai_and_anthropic(fx):
    mo = fx.mock(name="openai-mock")
    ma = fx.mock(name="claude-mock")
    cfg = fx.config([mo], alias="app/gpt")
    cfg["model_list"] += anthropic_config(fx, ma, alias="app/claude")["model_list"]
    gw = fx.gateway(cfg)
    body = {"model": "app/gpt", "max_tokens": 8, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hello"}]}
    r = messages_req(gw.port, body)
    eq(r.status, 200, "status (%s)" % r.text)
    j = r.json()
    eq(j["type"], "message", "a Messages answer")
    contains(j["content"][0]["text"], "Mock answer from openai-mock", "text")
    eq(j["stop_reason"], "max_tokens", "stop_reason")
    eq(j["usage"]["output_tokens"], 8, "usage")
    sent = mo.last()["body"]
    eq(sent["messages"][0], {"role": "system", "content": "Be brief."}, "system -> system message")
    eq(mo.last()["path"], "/v1/chat/completions", "translated to chat.completions")
    check(cost(r) > 0, "cost header")
    # Streaming to the OpenAI deployment: Messages events.
    body["stream"] = True
    r = messages_req(gw.port, body)
    names = [n for n, _ in sse_events(r.body)]
    eq(names[0], "message_start", "first event")
    eq(names[-2:], ["message_delta", "message_stop"], "last events")
    delta = [d for n, d in sse_events(r.body) if n == "message_delta"][0]
    eq(delta["usage"]["output_tokens"], 8, "usage in message_delta")
    # The same client against the Anthropic deployment: the body goes as it is, model spliced.
    body = {"model": "app/claude", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    r = messages_req(gw.port, body)
    eq(r.status, 200, "status (%s)" % r.text)
    eq(r.json()["type"], "message", "answer")
    eq(ma.last()["body"], dict(body, model="claude-3-5-haiku-latest"), "relayed unchanged")
    body["stream"] = True
    r = messages_req(gw.port, body)
    names = [n for n, _ in sse_events(r.body)]
    eq((names[0], names[-1]), ("message_start", "message_stop"), "Anthropic events relayed")
    # Bearer works too; a wrong key is an Anthropic-shaped 401.
    r = http(gw.port, "POST", "/v1/messages", dict(body, stream=False))
    eq(r.status, 200, "Authorization: Bearer also accepted (%s)" % r.text)
    r = messages_req(gw.port, body, key="wrong")
    eq(r.status, 401, "wrong key")
    eq(r.json()["type"], "error", "Anthropic error shape")
    eq(r.json()["error"]["type"], "authentication_error", "error type")
    r = messages_req(gw.port, {"model": "app/claude", "messages": [{"role": "user", "content": "x"}]})
    eq(r.status, 400, "max_tokens is required, as Anthropic requires it")
    eq(r.json()["error"]["type"], "invalid_request_error", "error type")
    r = messages_req(gw.port, {"model": "nope", "max_tokens": 1,
                               "messages": [{"role": "user", "content": "x"}]})
    eq(r.status, 404, "unknown alias")
    eq(r.json()["error"]["type"], "not_found_error", "Anthropic's 404 type")


def test_provider_errors_in_the_clients_shape(fx):
    m = fx.mock(name="claude-mock")
    gw = fx.gateway(anthropic_config(fx, m))
    # An invalid request the provider rejects (a role Anthropic has no place for is caught by us;
    # an empty messages list after translation is the provider's 400 here).
    m.faults(status=400)
    r = gw.chat(chat_body())
    eq(r.status, 400, "the provider's 400 is the client's")
    e = r.error()  # OpenAI shape, not Anthropic's
    contains(e["message"], "injected 400", "the provider's message")
    m.clear_faults()
    m.reset_stats()
    r = gw.chat(chat_body(n=2))
    eq(r.status, 400, "n > 1 cannot be sent to Anthropic")
    contains(r.error()["message"], "n other than 1", "message")
    eq(m.stats()["messages"], 0, "nothing reached the provider")


def test_embeddings(fx):
    m = fx.mock(name="emb")
    cfg = fx.config([m], alias="app/embed", model="openai/text-embedding-3-small")
    gw = fx.gateway(cfg)
    r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/embed", "input": ["hello", "world"]})
    eq(r.status, 200, "status (%s)" % r.text)
    j = r.json()
    eq(len(j["data"]), 2, "two vectors")
    eq(m.last()["body"]["model"], "text-embedding-3-small", "provider model id")
    eq(m.last()["path"], "/v1/embeddings", "embeddings endpoint")
    close(cost(r), j["usage"]["prompt_tokens"] * 0.02e-6, "embedding cost")
    r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/embed"})
    eq(r.status, 400, "input required")
    ma = fx.mock(name="claude-mock")
    gw2 = fx.gateway(anthropic_config(fx, ma, alias="app/embed"), name="gw2")
    r = http(gw2.port, "POST", "/v1/embeddings", {"model": "app/embed", "input": "x"})
    eq(r.status, 400, "no embeddings at Anthropic")
    contains(r.error()["message"], "Anthropic has no embeddings API", "message")


def test_unpriced_model_costs_zero_and_check_warns(fx):
    m = fx.mock()
    cfg = fx.config([m], model="hosted_vllm/llama-3.1-8b")
    gw = fx.gateway(cfg)
    r = gw.chat(chat_body())
    eq(r.status, 200, "status")
    eq(cost(r), 0.0, "unknown price: cost 0")
    res = fx.cli(["check", "-c", fx.write_config(cfg, "unpriced.yaml")])
    eq(res.code, 0, "warnings do not fail check (%s)" % res.err)
    contains(res.err, "no price known for hosted_vllm/llama-3.1-8b", "check warns")
    cfg = fx.config([m], model="hosted_vllm/llama-3.1-8b", input_cost_per_token=0.000001,
                    output_cost_per_token=0.000002)
    gw2 = fx.gateway(cfg, name="gw2")
    r = gw2.chat(chat_body(max_tokens=3))
    u = r.json()["usage"]
    close(cost(r), u["prompt_tokens"] * 1e-6 + 3 * 2e-6, "configured prices")
