"""Reasoning across both APIs (docs/api.md, "Reasoning"): reasoning_effort and LiteLLM's
`thinking` on chat.completions become Anthropic's thinking; Claude's thinking comes back as
reasoning_content and thinking_blocks (streams too) and goes back to Claude in the next turn of a
tool call; a Messages client's thinking becomes reasoning_effort at an OpenAI-format deployment,
whose reasoning_content comes back as thinking blocks. slogate mock answers with reasoning when
asked, and refuses the thinking requests Anthropic refuses (docs/mock.md), so what the gateway
sends is checked too."""

import json

from harness import chat_body, check, contains, eq, time_limit
from test_messages_api import both, rows_by_id
from test_providers import HAIKU_IN, HAIKU_OUT, anthropic_config, close, cost, messages_req, \
    sse_events

TRIGGER = "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"
FULL = 24 + 6   # the mock's answer: 24 text tokens and 6 thinking tokens


def claude(fx, db=None):
    m = fx.mock(name="claude-mock")
    cfg = anthropic_config(fx, m)
    if db:
        cfg["general_settings"]["database_url"] = "sqlite://" + db
    return m, fx.gateway(cfg)


@time_limit(60)
def test_reasoning_effort_becomes_anthropic_thinking(fx):
    db = fx.path("r.db")
    m, gw = claude(fx, db)
    # LiteLLM's budgets; "none" asks for no thinking; no max_tokens: the model's default
    # (8192 for claude-3-5-haiku) when it is above the budget.
    for effort, budget in (("minimal", 1024), ("low", 1024), ("medium", 2048), ("high", 4096),
                           ("xhigh", 8192), ("none", None)):
        r = gw.chat(chat_body(reasoning_effort=effort))
        eq(r.status, 200, "%s (%s)" % (effort, r.text))
        sent = m.last()["body"]
        eq(sent.get("thinking"), budget and {"type": "enabled", "budget_tokens": budget},
           "reasoning_effort %s -> thinking" % effort)
        eq(sent["max_tokens"], 8192 if budget != 8192 else 8192 + 4096,
           "max_tokens above the budget (%s)" % effort)
        check("reasoning_effort" not in sent, "reasoning_effort is not sent to Anthropic")
    r = gw.chat(chat_body(reasoning_effort="medium"))
    j = r.json()
    msg = j["choices"][0]["message"]
    contains(msg["content"], "Mock answer from claude-mock", "the text is the content")
    contains(msg["reasoning_content"], "Thinking it over for claude-mock", "reasoning_content")
    eq(len(msg["thinking_blocks"]), 1, "one thinking block")
    tb = msg["thinking_blocks"][0]
    eq((tb["type"], tb["thinking"]), ("thinking", msg["reasoning_content"]), "the block")
    check(tb["signature"].startswith("mocksig-"), "the signature is kept: %r" % tb)
    u = j["usage"]
    eq(u["completion_tokens"], FULL, "thinking tokens are output tokens")
    rt = u["completion_tokens_details"]["reasoning_tokens"]
    check(0 < rt <= FULL, "reasoning_tokens is the thinking's estimate: %r" % u)
    close(cost(r), u["prompt_tokens"] * HAIKU_IN + FULL * HAIKU_OUT, "x-slogate-cost-usd")
    rows = rows_by_id(db, 7)
    eq(rows[r.header("x-request-id")][3], FULL, "the row's output tokens are Anthropic's count")
    # Without reasoning nothing changes: no reasoning members.
    msg = gw.chat(chat_body()).json()["choices"][0]["message"]
    check("reasoning_content" not in msg and "thinking_blocks" not in msg, "no reasoning: %r" % msg)


@time_limit(60)
def test_thinking_parameter_and_anthropics_constraints(fx):
    m, gw = claude(fx)
    # LiteLLM's `thinking` goes as written and wins over reasoning_effort.
    th = {"type": "enabled", "budget_tokens": 3000}
    r = gw.chat(chat_body(thinking=th, reasoning_effort="low", max_tokens=5000))
    eq(r.status, 200, "thinking (%s)" % r.text)
    eq((m.last()["body"]["thinking"], m.last()["body"]["max_tokens"]), (th, 5000), "as written")
    # A reasoning_effort budget shrinks to fit the client's max_completion_tokens (which counts
    # reasoning at OpenAI too).
    r = gw.chat(chat_body(reasoning_effort="high", max_completion_tokens=1500))
    eq(r.status, 200, "shrunk budget (%s)" % r.text)
    eq(m.last()["body"]["thinking"], {"type": "enabled", "budget_tokens": 1499}, "budget < max")
    # Temperature other than 1 and top_p below 0.95 only tune the answer: not sent with thinking.
    r = gw.chat(chat_body(reasoning_effort="low", temperature=0.3, top_p=0.5))
    eq(r.status, 200, "temperature dropped (%s)" % r.text)
    sent = m.last()["body"]
    check("temperature" not in sent and "top_p" not in sent, "not sent: %r" % sent)
    r = gw.chat(chat_body(reasoning_effort="low", temperature=1, top_p=0.97))
    eq((m.last()["body"]["temperature"], m.last()["body"]["top_p"]), (1, 0.97), "allowed values")
    # response_format with reasoning: the json tool is offered, not forced.
    rf = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    r = gw.chat(chat_body(reasoning_effort="low", response_format=rf))
    eq(r.status, 200, "response_format with thinking (%s)" % r.text)
    sent = m.last()["body"]
    eq([t["name"] for t in sent["tools"]], ["json_tool_call"], "the tool is offered")
    check("tool_choice" not in sent, "and not forced: %r" % sent.get("tool_choice"))
    # What cannot be sent is a 400 naming the field, and no provider is called.
    before = m.stats()["requests"]
    tools = [{"type": "function", "function": {"name": "f"}}]
    for body, says in (
            (chat_body(thinking=th, max_tokens=3000), "must be greater than thinking.budget_tokens"),
            (chat_body(reasoning_effort="low", max_tokens=1000), "above 1024"),
            (chat_body(reasoning_effort="extreme"), "reasoning_effort must be one of"),
            (chat_body(thinking={"type": "enabled"}), "thinking.budget_tokens"),
            (chat_body(thinking={"type": "on"}), "thinking must be"),
            (chat_body(reasoning_effort="low", tools=tools, tool_choice="required"),
             "forced tool use")):
        r = gw.chat(body)
        eq(r.status, 400, "%s (%s)" % (says, r.text))
        contains(r.json()["error"]["message"], says, "the message")
    eq(m.stats()["requests"], before, "nothing reached the provider")


@time_limit(60)
def test_anthropic_thinking_streams_as_reasoning_content(fx):
    db = fx.path("s.db")
    m, gw = claude(fx, db)
    r = gw.chat(chat_body(stream=True, reasoning_effort="low",
                          stream_options={"include_usage": True}))
    eq(r.status, 200, "status (%s)" % r.text)
    chunks = [json.loads(e) for e in r.sse_events()[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    text = "".join(d.get("content") or "" for d in deltas)
    contains(reasoning, "Thinking it over for claude-mock", "reasoning_content deltas")
    contains(text, "Mock answer from claude-mock", "content deltas")
    first_text = next(i for i, d in enumerate(deltas) if d.get("content"))
    check(all(not d.get("reasoning_content") for d in deltas[first_text:]), "thinking first")
    sigs = [b["signature"] for d in deltas for b in d.get("thinking_blocks") or []
            if b.get("signature")]
    eq(len(sigs), 1, "one signature delta")
    check(sigs[0].startswith("mocksig-"), "the signature: %r" % sigs)
    u = chunks[-1]["usage"]
    eq(u["completion_tokens"], FULL, "usage chunk: thinking counted")
    check(0 < u["completion_tokens_details"]["reasoning_tokens"] <= FULL, "reasoning_tokens %r" % u)
    rows = rows_by_id(db, 1)
    eq(rows[r.header("x-request-id")][3], FULL, "the row's output tokens")


@time_limit(60)
def test_redacted_thinking_is_kept(fx):
    m, gw = claude(fx)
    r = gw.chat(chat_body(content=TRIGGER, reasoning_effort="low"))
    msg = r.json()["choices"][0]["message"]
    eq(msg["reasoning_content"], "", "a redacted block has no readable text")
    eq([b["type"] for b in msg["thinking_blocks"]], ["redacted_thinking"], "the block is kept")
    check(msg["thinking_blocks"][0]["data"].startswith("mockredacted-"), "its data")
    r = gw.chat(chat_body(content=TRIGGER, reasoning_effort="low", stream=True))
    blocks = [b for e in r.sse_events()[:-1] for b in
              (json.loads(e)["choices"][0]["delta"].get("thinking_blocks") or [])]
    eq([b["type"] for b in blocks], ["redacted_thinking"], "streamed whole")
    # Sent back, it reaches Claude first in the assistant turn.
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = chat_body(reasoning_effort="low", tools=tools, messages=[
        {"role": "user", "content": TRIGGER},
        {"role": "assistant", "content": None, "thinking_blocks": blocks,
         "tool_calls": [{"id": "toolu_1", "type": "function",
                         "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"}])
    r = gw.chat(body)
    eq(r.status, 200, "status (%s)" % r.text)
    eq(m.last()["body"]["messages"][1]["content"][0], blocks[0], "redacted block first")


@time_limit(60)
def test_thinking_blocks_go_back_in_multi_turn_tool_use(fx):
    m, gw = claude(fx)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    first = gw.chat(chat_body(content="Weather in Paris?", reasoning_effort="low", tools=tools))
    eq(first.status, 200, "first turn (%s)" % first.text)
    blocks = first.json()["choices"][0]["message"]["thinking_blocks"]

    def turn(thinking_blocks):
        a = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}
        if thinking_blocks is not None:
            a["thinking_blocks"] = thinking_blocks
        return gw.chat(chat_body(reasoning_effort="low", tools=tools, messages=[
            {"role": "user", "content": "Weather in Paris?"}, a,
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"}]))

    r = turn(blocks)
    eq(r.status, 200, "the tool result turn with the thinking sent back (%s)" % r.text)
    sent = m.last()["body"]["messages"][1]["content"]
    eq([b["type"] for b in sent], ["thinking", "tool_use"], "thinking first in the turn")
    eq(sent[0], {"type": "thinking", "thinking": blocks[0]["thinking"],
                 "signature": blocks[0]["signature"]}, "the block as the answer gave it")
    # Without it Claude (and the mock) refuses the turn; a changed signature too.
    r = turn(None)
    eq(r.status, 400, "no thinking block (%s)" % r.text)
    contains(r.json()["error"]["message"], "must start with a thinking block", "Claude's message")
    r = turn([dict(blocks[0], signature="forged")])
    eq(r.status, 400, "a bad signature (%s)" % r.text)
    # A block without its signature cannot be sent: the gateway says so.
    r = turn([{"type": "thinking", "thinking": "x"}])
    eq(r.status, 400, "unsigned (%s)" % r.text)
    contains(r.json()["error"]["message"], "messages[1].thinking_blocks[0]", "names the block")


@time_limit(60)
def test_messages_thinking_at_openai_deployment(fx):
    db = fx.path("m.db")
    m, gw = both(fx, db)
    for budget, effort in ((1024, "low"), (2048, "medium"), (5000, "high"), (None, None)):
        th = {"type": "enabled", "budget_tokens": budget} if budget else {"type": "disabled"}
        r = messages_req(gw.port, {"model": "app/gpt", "max_tokens": 8000, "thinking": th,
                                   "messages": [{"role": "user", "content": "Hi"}]})
        eq(r.status, 200, "status (%s)" % r.text)
        eq(m.last()["body"].get("reasoning_effort"), effort, "thinking %r -> effort" % budget)
        check("thinking" not in m.last()["body"], "thinking is not sent to OpenAI")
    r = messages_req(gw.port, {"model": "app/gpt", "max_tokens": 8000,
                               "thinking": {"type": "enabled", "budget_tokens": 2048},
                               "messages": [{"role": "user", "content": "Hi"}]})
    j = r.json()
    eq([b["type"] for b in j["content"]], ["thinking", "text"], "thinking block first")
    contains(j["content"][0]["thinking"], "Thinking it over for both", "the reasoning_content")
    eq(j["content"][0]["signature"], "", "unsigned: OpenAI-format reasoning has no signature")
    eq(j["usage"]["output_tokens"], FULL, "output tokens count the reasoning")
    rows = rows_by_id(db, 5)
    eq(rows[r.header("x-request-id")][3], FULL, "the row's output tokens")
    # Streamed, in Anthropic's event order.
    r = messages_req(gw.port, {"model": "app/gpt", "max_tokens": 8000, "stream": True,
                               "thinking": {"type": "enabled", "budget_tokens": 2048},
                               "messages": [{"role": "user", "content": "Hi"}]})
    ev = sse_events(r.body)
    kinds = []
    for name, d in ev:
        k = name
        if name == "content_block_start":
            k += ":" + d["content_block"]["type"]
        elif name == "content_block_delta":
            k += ":" + d["delta"]["type"]
        if not kinds or kinds[-1] != k:
            kinds.append(k)
    eq(kinds, ["message_start", "content_block_start:thinking", "ping",
               "content_block_delta:thinking_delta", "content_block_stop",
               "content_block_start:text", "content_block_delta:text_delta",
               "content_block_stop", "message_delta", "message_stop"], "event order")
    thinking = "".join(d["delta"]["thinking"] for n, d in ev
                       if n == "content_block_delta" and d["delta"]["type"] == "thinking_delta")
    contains(thinking, "Thinking it over for both", "thinking deltas")
    eq(ev[-2][1]["usage"]["output_tokens"], FULL, "message_delta's output tokens")
    # A thinking that is none of Anthropic's shapes is refused before any call.
    r = messages_req(gw.port, {"model": "app/gpt", "max_tokens": 8000, "thinking": {"type": "x"},
                               "messages": [{"role": "user", "content": "Hi"}]})
    eq(r.status, 400, "bad thinking (%s)" % r.text)
    contains(r.json()["error"]["message"], "thinking", "names the field")


@time_limit(60)
def test_messages_thinking_passes_through_to_anthropic(fx):
    m, gw = both(fx)
    th = {"type": "enabled", "budget_tokens": 2048}
    r = messages_req(gw.port, {"model": "app/claude", "max_tokens": 8000, "thinking": th,
                               "messages": [{"role": "user", "content": "Hi"}]})
    eq(r.status, 200, "status (%s)" % r.text)
    eq(m.last()["body"]["thinking"], th, "thinking as the client wrote it")
    j = r.json()
    eq([b["type"] for b in j["content"]], ["thinking", "text"], "Claude's blocks as they came")
    check(j["content"][0]["signature"].startswith("mocksig-"), "signed")
    eq(j["usage"]["output_tokens"], FULL, "output tokens")
    # Anthropic's own refusal comes back as it is.
    r = messages_req(gw.port, {"model": "app/claude", "max_tokens": 8000, "thinking": th,
                               "temperature": 0.2,
                               "messages": [{"role": "user", "content": "Hi"}]})
    eq(r.status, 400, "Claude refuses (%s)" % r.text)
    contains(r.json()["error"]["message"], "temperature", "Claude's message")
