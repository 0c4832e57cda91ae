#!/usr/bin/env python3
"""bench/streams.py — hold N streaming chat completions open at once and measure a process.

Used by bench/budget. Opens N connections to HOST:PORT, sends one `"stream": true` chat
completion on each, waits until every stream has received its first SSE event (all N are then
held open at once, unless one already ended), reads VmRSS and VmHWM of the process --pid from
/proc (and its open descriptors), then reads every stream to its end and counts the ones that
ended with `data: [DONE]`. Prints one JSON object on stdout.

Python 3 standard library only. One asyncio loop with a Protocol per connection (no coroutine
per stream, no line splitting): each chunk costs a few microseconds, and the streams are slow
(bench/budget sends a token every second or so), so one thread keeps up with 10,000 of them.

  streams.py --port P --pid PID --streams N --body JSON [--key K] [--connect-parallel 256]
             [--ramp-timeout S] [--timeout S] [--watch PID ...]
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time

DONE = b"data: [DONE]"


class Stats:
    def __init__(self, n):
        self.n = n
        self.connected = 0
        self.first = 0        # streams that received their first event
        self.done = 0         # streams that ended with data: [DONE]
        self.closed = 0       # connections over, for any reason
        self.errors = {}      # kind -> count
        self.statuses = {}    # HTTP status -> count
        self.all_first = asyncio.Event()
        self.all_closed = asyncio.Event()

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Stream(asyncio.Protocol):
    __slots__ = ("st", "req", "tr", "head", "buf", "tail", "first", "done")

    def __init__(self, st, req):
        self.st, self.req = st, req
        self.tr = None
        self.head = False
        self.buf = b""
        self.tail = b""
        self.first = self.done = False

    def connection_made(self, tr):
        self.tr = tr
        self.st.connected += 1
        tr.write(self.req)

    def data_received(self, data):
        if not self.head:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = True
            status = self.buf[9:12].decode("ascii", "replace")
            self.st.statuses[status] = self.st.statuses.get(status, 0) + 1
            if status != "200":
                self.st.error("status " + status)
                self.tr.close()
                return
            data = self.buf[end + 4:]
            self.buf = b""
        if not self.first and b"data:" in data:
            self.first = True
            self.st.first += 1
            if self.st.first == self.st.n:
                self.st.all_first.set()
        seen = self.tail + data
        if DONE in seen:
            self.done = True
            self.st.done += 1
            self.tr.close()
            return
        self.tail = seen[-len(DONE):]

    def connection_lost(self, exc):
        st = self.st
        if not self.done:
            st.error("closed before [DONE]" if exc is None else "reset: %s" % type(exc).__name__)
        st.closed += 1
        if st.closed == st.n:
            st.all_closed.set()


def proc_status(pid):
    """VmRSS and VmHWM in KiB and the number of open descriptors of pid (None when gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None
    return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="the process whose memory is read")
    ap.add_argument("--watch", type=int, nargs="*", default=[], help="other processes to read")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--body", required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--connect-parallel", type=int, default=256,
                    help="connections being set up at once (the listen backlog is 1024)")
    ap.add_argument("--ramp-timeout", type=float, default=60, help="seconds to get every first event")
    ap.add_argument("--timeout", type=float, default=120, help="seconds for the whole run")
    a = ap.parse_args()

    # This process holds one descriptor per stream.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < a.streams + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    body = a.body.encode()
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n" % (a.host.encode(), a.port, len(body)))
    if a.key:
        req += b"Authorization: Bearer %s\r\n" % a.key.encode()
    req += b"\r\n" + body

    loop = asyncio.get_running_loop()
    st = Stats(a.streams)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    gate = asyncio.Semaphore(a.connect_parallel)
    streams = []

    async def open_one():
        async with gate:
            try:
                _, p = await loop.create_connection(lambda: Stream(st, req), a.host, a.port)
                streams.append(p)
            except OSError as e:
                st.error("connect: %s" % (e.strerror or type(e).__name__))
                st.closed += 1
                if st.closed == st.n:
                    st.all_closed.set()

    opening = asyncio.gather(*(open_one() for _ in range(a.streams)))
    res = {"streams": a.streams}
    try:
        await asyncio.wait_for(opening, timeout=a.ramp_timeout)
        res["connect_s"] = round(time.monotonic() - t0, 2)
        left = a.ramp_timeout - (time.monotonic() - t0)
        await asyncio.wait_for(st.all_first.wait(), timeout=max(left, 0.1))
    except asyncio.TimeoutError:
        pass
    res["first_s"] = round(time.monotonic() - t0, 2)
    res["first_events"] = st.first
    # Held: past their first event and still open, all at this moment.
    res["held_at_measure"] = sum(1 for p in streams if p.first and not p.done and not p.tr.is_closing())
    res["open_at_measure"] = st.connected - st.closed
    res["done_at_measure"] = st.done
    res["measured"] = proc_status(a.pid)
    res["watched"] = {str(p): proc_status(p) for p in a.watch}
    try:
        await asyncio.wait_for(st.all_closed.wait(), timeout=max(deadline - time.monotonic(), 0.1))
    except asyncio.TimeoutError:
        pass
    opening.cancel()
    res["end_s"] = round(time.monotonic() - t0, 2)
    res["done"] = st.done
    res["unfinished"] = st.n - st.closed
    for p in streams:  # whatever the deadline cut off
        if p.tr and not p.tr.is_closing():
            p.tr.abort()
    res["statuses"] = st.statuses
    res["errors"] = st.errors
    res["after"] = proc_status(a.pid)
    print(json.dumps(res))


if __name__ == "__main__":
    asyncio.run(main())
