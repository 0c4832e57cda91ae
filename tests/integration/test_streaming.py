"""Streaming: SSE relayed event by event, chunked, not buffered; a stream cut mid-way."""

import json
import socket
import struct
import time

from harness import (MOCK_KEY, TestFailure, chat_body, check, contains, eq, http, time_limit,
                     wait_until)
from test_errors import canned_upstream


def stream(fx, gw, body=None, timeout=10):
    c = fx.conn(gw.port, timeout=timeout)
    c.request("POST", "/v1/chat/completions", body or chat_body(stream=True))
    return c, c.read_response(timeout=timeout)


def chunks_of(events):
    """Parsed chat.completion.chunk objects of the data events (without [DONE])."""
    out = []
    for e in events:
        if e == "[DONE]":
            continue
        try:
            out.append(json.loads(e))
        except ValueError:
            raise TestFailure("SSE data is not JSON: %r" % e)
    return out


def assembled(chunks):
    return "".join((ch["choices"][0]["delta"].get("content") or "")
                   for ch in chunks if ch.get("choices"))


def test_stream_relays_events_and_ends_with_done(fx):
    m, gw = fx.mock_and_gateway()
    c, r = stream(fx, gw)
    eq(r.status, 200, "status (%s)" % r.text)
    contains(r.header("content-type", ""), "text/event-stream", "content-type")
    check(r.chunked, "the stream is sent with Transfer-Encoding: chunked, headers %r" % r.headers)
    check(r.complete, "the chunked body ends with its last chunk")
    eq(r.header("x-slogate-deployment"), "primary", "x-slogate-deployment on a stream")
    check(r.header("x-request-id"), "x-request-id on a stream")
    events = r.sse_events()
    check(len(events) >= 5, "several data events, got %d" % len(events))
    eq(events[-1], "[DONE]", "the last event")
    eq(events.count("[DONE]"), 1, "one [DONE]")
    chunks = chunks_of(events)
    for ch in chunks:
        eq(ch.get("object"), "chat.completion.chunk", "object of every event")
    text = assembled(chunks)
    contains(text, "Mock answer from provider-a", "assembled text")
    eq(chunks[-1]["choices"][0]["finish_reason"], "stop", "finish_reason of the last chunk")
    last = m.last()
    eq(last["body"].get("stream"), True, "the provider was asked to stream")
    eq(last["model"], "gpt-4o-mini", "provider model id")
    eq(m.stats()["streams"], 1, "streams the provider counted")
    # The same prompt without streaming gives the same text (the mock is deterministic).
    eq(gw.chat(chat_body()).json()["choices"][0]["message"]["content"], text,
       "streamed text equals the non-streamed answer")
    # The connection stays usable after a complete stream.
    c.request("GET", "/health/liveliness", key=None)
    eq(c.read_response().status, 200, "next request on the same connection")


def test_stream_include_usage_is_relayed(fx):
    m, gw = fx.mock_and_gateway()
    c, r = stream(fx, gw, chat_body(stream=True, stream_options={"include_usage": True}))
    eq(r.status, 200, "status")
    chunks = chunks_of(r.sse_events())
    usage = [ch["usage"] for ch in chunks if ch.get("usage")]
    eq(len(usage), 1, "one usage chunk")
    check(usage[0]["completion_tokens"] > 0, "usage numbers: %r" % usage[0])


def check_usage_members(chunks, asked, who):
    """What OpenAI sends (stream_options.include_usage): to a client that asked, a usage member
    on every chunk, null but on the last, the usage chunk (choices: []); to one that did not,
    no usage member on any chunk."""
    if not asked:
        bad = [c for c in chunks if "usage" in c]
        check(not bad, "%s: a client that did not ask sees no usage member, got %d chunks "
                       "with one: %r" % (who, len(bad), bad[:2]))
        check(all(c["choices"] for c in chunks), "%s: and no usage chunk" % who)
        return
    check(all("usage" in c for c in chunks), "%s: usage on every chunk of a client that asked: "
                                              "%r" % (who, [c for c in chunks if "usage" not in c][:2]))
    eq([i for i, c in enumerate(chunks) if c["usage"] is not None], [len(chunks) - 1],
       "%s: usage null on every chunk but the last" % who)
    eq(chunks[-1]["choices"], [], "%s: the last is the usage chunk" % who)
    check(chunks[-1]["usage"]["completion_tokens"] > 0, "%s: its numbers: %r"
          % (who, chunks[-1]["usage"]))


@time_limit(30)
def test_stream_usage_member_only_for_clients_that_asked(fx):
    m, gw = fx.mock_and_gateway()
    # The deployment, asked for usage as the gateway always asks, puts "usage":null on every
    # chunk (OpenAI's wire format): what the gateway must take out for a client that did not ask.
    direct = http(m.port, "POST", "/v1/chat/completions",
                  chat_body(model="gpt-4o-mini", stream=True,
                            stream_options={"include_usage": True}), key=MOCK_KEY)
    raw = [e for e in direct.sse_events()[:-1] if json.loads(e)["choices"]]
    check(raw and all(e.endswith(',"usage":null}') for e in raw),
          "the mock sends usage:null on every chunk when asked: %r" % raw[:1])
    texts = []
    for asked in (False, True):
        body = chat_body(stream=True)
        if asked:
            body["stream_options"] = {"include_usage": True}
        c, r = stream(fx, gw, body)
        eq(r.status, 200, "status")
        eq(m.last()["body"]["stream_options"], {"include_usage": True},
           "the deployment is asked for usage either way")
        chunks = chunks_of(r.sse_events())
        check_usage_members(chunks, asked, "include_usage=%s" % asked)
        eq(r.sse_events()[-1], "[DONE]", "the stream ends with [DONE]")
        # Nothing else is touched: the same chunks, bar the usage member.
        texts.append([{k: v for k, v in ch.items() if k not in ("usage", "id", "created")}
                      for ch in chunks if ch["choices"]])
    eq(texts[0], texts[1], "the chunks are the same with and without usage")


@time_limit(30)
def test_stream_usage_member_from_an_anthropic_deployment(fx):
    """Chunks translated from an Anthropic stream: the same rule both ways."""
    from test_providers import anthropic_config
    m = fx.mock(name="claude-mock")
    gw = fx.gateway(anthropic_config(fx, m))
    c, r = stream(fx, gw)
    eq(r.status, 200, "status (%s)" % r.text[:200])
    check_usage_members(chunks_of(r.sse_events()), False, "from Anthropic")
    c, r = stream(fx, gw, chat_body(stream=True, stream_options={"include_usage": True}))
    check_usage_members(chunks_of(r.sse_events()), True, "from Anthropic, asked")


@time_limit(20)
def test_stream_is_relayed_as_it_arrives_not_buffered(fx):
    # --tps 20: the mock sends the first token at once, then one token every 50 ms (~1.2 s).
    m, gw = fx.mock_and_gateway(mock_args={"tps": 20})
    t0 = time.monotonic()
    c, r = stream(fx, gw)
    eq(r.status, 200, "status")
    check(r.complete, "stream complete")
    events = r.sse_events()
    eq(events[-1], "[DONE]", "the last event")
    t_first = r.chunks[0][0] - t0
    t_last = r.chunks[-1][0] - t0
    check(t_last >= 0.8, "the paced stream lasts about 1.2 s (took %.2fs)" % t_last)
    check(t_first <= 0.35 * t_last,
          "the first event reached the client at %.2fs of a %.2fs stream: buffered, not relayed"
          % (t_first, t_last))
    # Events arrive spread over the stream, not in one burst at the end.
    times = [t - t0 for t, _ in r.chunks]
    early = [t for t in times if t < t_last / 2]
    check(len(early) >= 5, "at least 5 chunks arrived in the first half; arrival times %r"
          % [round(t, 2) for t in times])
    # Each chunk holds whole SSE events (relayed event by event).
    for _, d in r.chunks:
        check(d.endswith(b"\n\n"), "a chunk ends in the middle of an event: %r" % d[-80:])


@time_limit(20)
def test_stream_time_to_first_token(fx):
    m, gw = fx.mock_and_gateway(mock_args={"ttft_ms": 400})
    t0 = time.monotonic()
    c, r = stream(fx, gw)
    eq(r.status, 200, "status")
    ttfb = r.t_head - t0
    check(0.35 <= ttfb <= 1.5, "the head comes with the first token after ~0.4 s, got %.2fs"
          % ttfb)


@time_limit(20)
def test_stream_cut_midway_ends_with_error_event_and_gateway_keeps_serving(fx):
    m, gw = fx.mock_and_gateway()
    # Paced (one token per 20 ms) so the first half of the stream reaches the gateway before the
    # reset: a TCP reset discards data the receiver has not read yet.
    m.faults(reset="mid", tokens_per_s=50)
    c, r = stream(fx, gw)
    eq(r.status, 200, "the stream started before the cut")
    check(r.chunked, "chunked")
    check(r.complete, "the chunked body is properly terminated (0-size chunk) after the cut, "
                      "not left hanging or cut; got %d bytes" % len(r.body))
    events = r.sse_events()
    check("[DONE]" not in events, "no [DONE] after a broken stream: %r" % events[-2:])
    content = events[:-1]
    check(len(content) >= 2, "some content events came before the cut (%d)" % len(content))
    err = json.loads(events[-1])
    check("error" in err, "the last event is an error event: %r" % events[-1])
    for k in ("message", "type", "code"):
        check(k in err["error"], "the error event has %r: %r" % (k, err))
    contains(err["error"]["message"], "primary", "the error event names the deployment")
    eq(m.stats()["resets"], 1, "the mock reset one stream")
    # The client connection survives a properly terminated stream (or is closed cleanly).
    m.clear_faults()
    try:
        c.request("GET", "/health/liveliness", key=None)
        eq(c.read_response(timeout=5).status, 200, "next request on the same connection")
    except Exception:
        check(c.closed_by_peer(1), "the connection is either usable or cleanly closed")
    # And the gateway keeps serving, streams included.
    c2, r2 = stream(fx, gw)
    eq(r2.status, 200, "a new stream after the cut")
    eq(r2.sse_events()[-1], "[DONE]", "the new stream completes")
    eq(gw.chat().status, 200, "a non-streaming request after the cut")


@time_limit(20)
def test_nonstream_reset_is_502_and_next_ok(fx):
    m, gw = fx.mock_and_gateway()
    m.faults(reset="before")
    r = gw.chat()
    eq(r.status, 502, "provider resets the connection (%s)" % r.text)
    contains(r.error()["message"], "primary", "the message names the deployment")
    m.clear_faults()
    eq(gw.chat().status, 200, "after the provider recovers")


@time_limit(20)
def test_client_disconnect_mid_stream_releases_upstream(fx):
    m, gw = fx.mock_and_gateway(mock_args={"tps": 10})
    # Four clients hang up after the stream started: two with a FIN, two with a reset.
    for i, how in enumerate(("fin", "rst", "fin", "rst")):
        c = fx.conn(gw.port)
        c.request("POST", "/v1/chat/completions", chat_body(stream=True, content="bye %d" % i))
        c._line(time.monotonic() + 5)  # the status line: the stream has started
        if how == "rst":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        time.sleep(0.4)
        check(gw.proc.alive(), "the gateway is still running after client %d hung up (%s)"
              % (i, how))
        # The paced stream would run 2.4 s; the gateway must have hung up on the provider too
        # (tokens nobody reads still cost money).
        s = m.stats()
        eq(s["in_flight"], 0, "provider requests still running after client %d left" % i)
        eq(s["aborted"], i + 1, "abandoned streams the provider saw aborted")
    eq(gw.chat().status, 200, "the gateway serves after clients hung up mid-stream")


@time_limit(40)
def test_slow_reader_pauses_the_provider_instead_of_buffering_its_answer(fx):
    # A long, fast stream (about 10 MB) and a client that does not read for a while: the gateway
    # must stop reading the provider (back-pressure) rather than hold the whole answer. The mock
    # itself only finishes once what it wrote was taken, so `completed` shows who waits for whom.
    m, gw = fx.mock_and_gateway(mock_args={"tokens": 40000})
    c = fx.conn(gw.port)
    # A small receive buffer that the kernel does not grow: with autotuning the client's buffer
    # alone can take several MB, and on a busy machine the buffers on the way took all 10 MB.
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    c.request("POST", "/v1/chat/completions", chat_body(stream=True))
    time.sleep(1.5)
    s = m.stats()
    eq(s["completed"], 0, "the provider is held back while the client does not read (%r)" % s)
    eq(s["in_flight"], 1, "the provider's stream is still open")
    # Now read it all (raw: the answer is large) and check it is whole.
    data = bytearray(c.buf)
    c.sock.settimeout(20)
    while not data.endswith(b"\r\n0\r\n\r\n"):
        d = c.sock.recv(1 << 20)
        check(d, "the stream ended before its last chunk (%d bytes)" % len(data))
        data += d
    check(data.startswith(b"HTTP/1.1 200"), "status 200")
    events = data.count(b"data: ")
    check(events > 40000, "every token arrived (%d events)" % events)
    check(b"data: [DONE]" in data[-200:], "it ends with [DONE]")
    wait_until(lambda: m.stats()["completed"] == 1, 5, "the provider to finish")


def test_an_openai_error_event_ends_the_stream_or_fails_over(fx):
    # OpenAI ends a stream it cannot finish with one `data: {"error":...}` event. Before any
    # event reached the client that is a failed attempt (the next deployment answers); after,
    # the stream ends there with one error event that says so, whatever the provider sends on.
    chunk = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
             b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n')
    error = (b'data: {"error":{"message":"The server had an error while processing your '
             b'request.","type":"server_error","param":null,"code":null}}\n\n')
    bodies = {"/first/v1/chat/completions": error + b"data: [DONE]\n\n",
              "/later/v1/chat/completions": chunk + error + chunk + b"data: [DONE]\n\n"}

    with canned_upstream(200, "text/event-stream", lambda path: bodies[path]) as base:
        m = fx.mock()
        gw = fx.gateway(fx.config([base + "/first/v1", m]))
        c, r = stream(fx, gw)
        eq(r.status, 200, "error first: status (%s)" % r.text[:300])
        eq(r.header("x-slogate-deployment"), "secondary", "error first: the next deployment")
        events = r.sse_events()
        eq(events[-1], "[DONE]", "error first: the next deployment's whole stream")
        check(all("error" not in json.loads(d) for d in events[:-1]), "error first: no error")
        eq(m.stats()["chat"], 1, "error first: the mock answered")

        gw2 = fx.gateway(fx.config([base + "/later/v1", m]), name="gateway2")
        c, r = stream(fx, gw2)
        eq(r.status, 200, "error later: status")
        events = r.sse_events()
        eq(len(events), 2, "error later: the chunk, then one error event (%r)" % events)
        eq(json.loads(events[0])["choices"][0]["delta"]["content"], "Hi", "the chunk before")
        e = json.loads(events[1])["error"]
        eq(e["code"], "upstream_stream_error", "error later: code")
        contains(e["message"], "The server had an error", "error later: the provider's message")
        contains(e["message"], "primary", "error later: the deployment")
        # The answer was incomplete: a failure of the deployment, as a stream that broke off.
        d = {d["id"]: d for d in http(gw2.port, "GET", "/admin/deployments").json()["deployments"]}
        eq(d["primary"]["fails_in_window"], 1, "error later: the primary's failures")
        eq(d["secondary"]["fails_in_window"], 0, "error later: the secondary's failures")
