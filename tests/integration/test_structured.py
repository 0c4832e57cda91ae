"""Structured output across providers, through real processes: an OpenAI-format client's
response_format when the alias fails over from an OpenAI-compatible deployment to an Anthropic
one (slogate mock plays both). Anthropic has no response_format: the gateway asks for a forced
json_tool_call tool and hands the tool's input back as the message content."""

import json

from harness import MASTER_KEY, MOCK_KEY, chat_body, check, contains, eq
from test_providers import HAIKU_IN, HAIKU_OUT, anthropic_config, close, cost

TEXT = "Gr\u00fc\u00dfe \U0001F600"  # what the mock writes for a string property
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "population"],
          "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}}
JSON_SCHEMA = {"type": "json_schema",
               "json_schema": {"name": "city", "strict": True, "schema": SCHEMA}}
FORCED = {"type": "tool", "name": "json_tool_call", "disable_parallel_tool_use": True}


def failover_config(fx, gpt, claude):
    """app/chat: an OpenAI-compatible primary (order 1) and an Anthropic fallback (order 2)."""
    cfg = fx.config([gpt])
    claude_dep = anthropic_config(fx, claude)["model_list"][0]
    claude_dep["litellm_params"]["order"] = 2
    cfg["model_list"].append(claude_dep)
    return cfg


def stream_parts(r):
    """(content, tool call chunks, finish_reasons, usage chunk) assembled from an SSE answer."""
    ev = r.sse_events()
    eq(ev[-1], "[DONE]", "the stream ends with [DONE]")
    chunks = [json.loads(e) for e in ev[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    content = "".join(d.get("content") or "" for d in deltas)
    calls = [d["tool_calls"] for d in deltas if d.get("tool_calls")]
    finish = [c["choices"][0]["finish_reason"] for c in chunks
              if c["choices"] and c["choices"][0].get("finish_reason")]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    return content, calls, finish, usage


def test_response_format_survives_failover_to_anthropic(fx):
    gpt = fx.mock(name="gpt-mock", status=503)
    claude = fx.mock(name="claude-mock")
    gw = fx.gateway(failover_config(fx, gpt, claude))
    body = chat_body(content="Largest city of France, as JSON.", response_format=JSON_SCHEMA)
    r = gw.chat(body)
    eq(r.status, 200, "status (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "claude", "the Anthropic fallback answered")
    eq(r.header("x-slogate-attempts"), "2", "after the primary failed")
    j = r.json()
    msg = j["choices"][0]["message"]
    eq(json.loads(msg["content"]), {"city": TEXT, "population": 1},
       "the content is the JSON the schema asks for: %s" % msg)
    check("tool_calls" not in msg, "no tool call shown to the client: %s" % msg)
    eq(j["choices"][0]["finish_reason"], "stop", "finish_reason")
    sent = claude.last()["body"]
    check("response_format" not in sent, "response_format is not sent to Anthropic")
    eq([t["name"] for t in sent["tools"]], ["json_tool_call"], "the response_format tool")
    eq(sent["tools"][0]["input_schema"], SCHEMA, "its input_schema is the client's schema")
    eq(sent["tool_choice"], FORCED, "forced")
    # Usage and cost are Anthropic's count (the tool's definition is in its input tokens).
    u = j["usage"]
    eq(u["completion_tokens"], 6, "the mock's tool call: 6 stream events' worth")
    close(cost(r), u["prompt_tokens"] * HAIKU_IN + u["completion_tokens"] * HAIKU_OUT, "cost")

    # Streamed: the tool input arrives as content deltas, then finish_reason stop.
    body.update(stream=True, stream_options={"include_usage": True})
    r = gw.chat(body)
    eq(r.status, 200, "stream status (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "claude", "stream: the Anthropic fallback answered")
    content, calls, finish, usage = stream_parts(r)
    eq(json.loads(content), {"city": TEXT, "population": 1}, "assembled content")
    eq(calls, [], "no tool call chunk")
    eq(finish, ["stop"], "finish_reason")
    eq(len(usage), 1, "one usage chunk")
    eq(usage[0]["completion_tokens"], 6, "stream usage")


def test_response_format_json_object_and_tools(fx):
    claude = fx.mock(name="claude-mock")
    gw = fx.gateway(anthropic_config(fx, claude))
    # json_object: any object, through the same forced tool.
    r = gw.chat(chat_body(content="JSON please", response_format={"type": "json_object"}))
    eq(r.status, 200, "status (%s)" % r.text)
    doc = json.loads(r.json()["choices"][0]["message"]["content"])
    eq(doc, {"mock": "claude-mock", "call": 0, "text": TEXT}, "an object as content")
    sent = claude.last()["body"]
    eq(sent["tools"][0]["input_schema"],
       {"type": "object", "properties": {}, "additionalProperties": True}, "a generic schema")
    # {"type":"text"} is the default: a text answer, nothing added.
    r = gw.chat(chat_body(response_format={"type": "text"}, max_tokens=5))
    contains(r.json()["choices"][0]["message"]["content"], "Mock answer", "text answer")
    check("tools" not in claude.last()["body"], "no tool for type text")
    # Tools of the client's own: the model may call them or answer (tool_choice any); the mock
    # calls every tool, so the client sees its tool call and the JSON content beside it.
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {}}}}]
    r = gw.chat(chat_body(content="Paris?", tools=tools, response_format=JSON_SCHEMA))
    eq(r.status, 200, "status (%s)" % r.text)
    sent = claude.last()["body"]
    eq([t["name"] for t in sent["tools"]], ["lookup", "json_tool_call"], "both tools sent")
    eq(sent["tool_choice"], {"type": "any"}, "the model chooses")
    choice = r.json()["choices"][0]
    eq([c["function"]["name"] for c in choice["message"]["tool_calls"]], ["lookup"],
       "only the client's tool is a tool call")
    eq(json.loads(choice["message"]["content"])["call"], 1, "the answer tool's input is content")
    eq(choice["finish_reason"], "tool_calls", "finish_reason")


def test_response_format_malformed_is_400(fx):
    claude = fx.mock(name="claude-mock")
    gw = fx.gateway(anthropic_config(fx, claude))
    cases = [
        ("json", "response_format must be an object with a type"),
        ({"type": "xml"}, "response_format.type 'xml' is not supported"),
        ({"type": "json_schema", "json_schema": {"name": "x"}},
         "response_format.json_schema.schema is required"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}},
         "response_format.json_schema.schema must be a JSON Schema object"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
         "schema.type must be \"object\""),
    ]
    for rf, says in cases:
        for stream in (False, True):
            r = gw.chat(chat_body(response_format=rf, stream=stream))
            eq(r.status, 400, "%r: status (%s)" % (rf, r.text))
            e = r.json()["error"]
            eq(e["type"], "invalid_request_error", "OpenAI's error type")
            contains(e["message"], says, "the message names the field and what to send")
            contains(e["message"], "deployment claude", "and the deployment")
    r = gw.chat(chat_body(tools=[{"type": "function", "function": {"name": "json_tool_call"}}]))
    eq(r.status, 400, "a client tool named json_tool_call (%s)" % r.text)
    contains(r.error()["message"], "reserved", "the name is the gateway's")
    eq(claude.stats()["messages"], 0, "nothing reached the provider")
