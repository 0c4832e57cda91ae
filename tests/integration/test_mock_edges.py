"""`slogate mock` at the edges of what it accepts: fault values out of range (control API, flags,
--faults), the pace of a stream inside the range, and paths under /_mock/ that do not exist."""

import json

from harness import (MOCK_KEY, Conn, TestFailure, chat_body, check, contains, eq, http, sse_data,
                     time_limit)

TPS_RANGE = "must be 0 (no pacing) or between 0.001 and 1000000"


def content_times(r):
    """Arrival times of the events of a stream that carry a token (non-empty content)."""
    out = []
    for t, d in r.chunks:
        for ev in sse_data(d):
            if ev == "[DONE]":
                continue
            choices = json.loads(ev).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                out.append(t)
    return out


def stream_chunks(mock, max_tokens, timeout=10):
    """A streamed chat to the mock; the response with each chunk's arrival time."""
    with Conn(mock.port, timeout=timeout) as c:
        c.request("POST", "/v1/chat/completions",
                  chat_body("gpt-4o-mini", stream=True, max_tokens=max_tokens), key=MOCK_KEY)
        r = c.read_response()
    eq(r.status, 200, "the stream's status (%s)" % r.text)
    check(r.complete, "the stream ended as its framing says")
    return r


@time_limit(20)
def test_absurd_tokens_per_s_is_refused_with_the_range(fx):
    m = fx.mock("edges")
    before = http(m.port, "GET", "/_mock/faults", key=None).json()
    for value in ("1e-300", "5e-324", "0.0009", "1000001", "-1"):
        r = http(m.port, "POST", "/_mock/faults", '{"tokens_per_s":%s}' % value, key=None)
        eq(r.status, 400, "POST /_mock/faults tokens_per_s=%s (%s)" % (value, r.text))
        e = r.error()
        contains(e["message"], "tokens_per_s: " + TPS_RANGE, "the message names field and range")
        eq(e["type"], "invalid_request_error", "the error type")
    eq(http(m.port, "GET", "/_mock/faults", key=None).json(), before, "no fault changed")
    # A stream is still served at once (no pacing), whole.
    r = stream_chunks(m, 4)
    eq(r.sse_events()[-1], "[DONE]", "the stream ends with [DONE]")


@time_limit(20)
def test_a_fault_of_the_wrong_type_is_refused_with_what_it_takes_and_what_was_sent(fx):
    # docs/mock.md: a wrong type is a 400 whose message names the field, its range and the
    # value sent (it said only "must be an integer", so "5" and 5.5 looked alike).
    m = fx.mock("types")
    before = http(m.port, "GET", "/_mock/faults", key=None).json()
    for body, want in (
            ('{"latency_ms":"5"}', 'latency_ms: must be an integer between 0 and 3600000, got "5"'),
            ('{"ttft_ms":1.5}', "ttft_ms: must be an integer between 0 and 3600000, got 1.5"),
            ('{"error_rate":"0.3"}', 'error_rate: must be a number between 0 and 1, got "0.3"'),
            ('{"tokens_per_s":null}', "tokens_per_s: must be a number, 0 (no pacing) or between "
                                      "0.001 and 1000000, got null"),
            ('{"hang":"yes"}', 'hang: must be a boolean (true or false), got "yes"'),
            ('{"reset":"later"}', 'reset: must be "none", "before" or "mid", got "later"')):
        r = http(m.port, "POST", "/_mock/faults", body, key=None)
        eq(r.status, 400, "POST /_mock/faults %s (%s)" % (body, r.text))
        eq(r.error()["message"], want, "the message for %s" % body)
    eq(http(m.port, "GET", "/_mock/faults", key=None).json(), before, "no fault changed")
    r = fx.cli(["mock", "--port", "0", "--faults", '{"latency_ms":"5"}'], timeout=5)
    eq(r.code, 2, "slogate mock --faults with a string latency (%s)" % r)
    contains(r.err, 'latency_ms: must be an integer between 0 and 3600000, got "5"',
             "--faults says the same")


def test_absurd_tps_on_the_command_line_exits_2(fx):
    for args in (["--tps", "1e-300"], ["--tps", "2e6"],
                 ["--faults", '{"tokens_per_s":1e-300}']):
        r = fx.cli(["mock", "--port", "0"] + args, timeout=5)
        eq(r.code, 2, "slogate mock %s exit code (%s)" % (" ".join(args), r))
        contains(r.err, TPS_RANGE if args[0] == "--faults" else "0.001..1000000",
                 "slogate mock %s names the range" % " ".join(args))


@time_limit(20)
def test_slow_pace_in_range_spaces_the_tokens(fx):
    m = fx.mock("paced")
    m.faults(tokens_per_s=4)  # a token every 250 ms after the first
    r = stream_chunks(m, 3)
    t = content_times(r)
    eq(len(t), 3, "three content events (%r)" % r.chunks)
    # Token k is due 250 ms * k after the first: allow scheduling slack one way only.
    check(t[1] - t[0] >= 0.2, "token 2 came %.3fs after token 1, want >= 0.25s" % (t[1] - t[0]))
    check(t[2] - t[0] >= 0.45, "token 3 came %.3fs after token 1, want >= 0.5s" % (t[2] - t[0]))
    check(t[2] - t[0] < 3, "token 3 came %.3fs after token 1, want about 0.5s" % (t[2] - t[0]))
    # The slowest accepted pace is taken, and the first token still goes out at once.
    m.faults(tokens_per_s=0.001)
    with Conn(m.port, timeout=5) as c:
        c.request("POST", "/v1/chat/completions", chat_body("gpt-4o-mini", stream=True,
                                                             max_tokens=2), key=MOCK_KEY)
        got = []
        ended = True
        try:
            c.read_response(timeout=1.0, on_chunk=got.append)
        except TestFailure as e:
            ended = False
            contains(str(e), "timed out", "reading the slow stream")
    check(not ended, "a stream at 0.001 tokens/s ended within a second: %r" % got)
    check(any(b'"content":"Mock' in d for d in got), "the first token came at once: %r" % got)


def test_unknown_control_path_is_a_404_listing_the_control_paths(fx):
    m = fx.mock("ctl")
    for method, path in (("POST", "/_mock/fault"), ("GET", "/_mock/"), ("GET", "/_mock/stats/x")):
        r = http(m.port, method, path, "{}" if method == "POST" else None, key=None)
        eq(r.status, 404, "%s %s status (%s)" % (method, path, r.text))
        eq(r.header("x-mock-name"), "ctl", "the answer names the mock")
        e = r.error()
        eq(e["code"], "not_found", "%s %s error code" % (method, path))
        eq(e["type"], "invalid_request_error", "%s %s error type" % (method, path))
        contains(e["message"], "Unknown control path %s" % path, "the message names the path")
        for p in ("/_mock/faults", "/_mock/stats", "/_mock/stats/reset", "/_mock/last",
                  "/_mock/health"):
            contains(e["message"], p, "the message lists the control paths")
    r = http(m.port, "POST", "/_mock/health", "{}", key=None)
    eq(r.status, 405, "POST /_mock/health (%s)" % r.text)
    eq(r.header("allow"), "GET, HEAD", "Allow on /_mock/health (HEAD is answered where GET is)")
    eq(http(m.port, "GET", "/_mock/health", key=None).json()["ok"], True, "GET /_mock/health")
