"""The soak's chaos: a seeded plan of faults, each with its undo.

The plan is drawn from the seed before the run starts (the same seed gives the same sequence of
actions with the same parameters); the times are "not before": an action that waits (a kill waits
for its checkpoint) delays the ones after it.
"""

import random

# Mock faults (POST /_mock/faults bodies): what providers do.
FAULTS = [
    ("5xx burst", {"status": 500}),
    ("503 + Retry-After", {"status": 503, "retry_after_s": 1}),
    ("half fail", {"error_rate": 0.5}),
    ("429", {"status": 429, "retry_after_s": 2}),
    ("hang", {"hang": True}),
    ("slow", {"latency_ms": 1500}),
    ("slow first token", {"ttft_ms": 1500}),
    ("slow stream", {"tokens_per_s": 40}),
    ("reset mid-stream", {"reset": "mid", "tokens_per_s": 200}),
    ("reset before", {"reset": "before"}),
    ("no usage", {"no_usage": True}),
    ("cut answers", {"malformed": "cut"}),
]

VARIANTS = 4  # configs a reload moves between (soak.config)


class Action:
    def __init__(self, t, kind, **params):
        self.t, self.kind, self.params = t, kind, params

    def __repr__(self):
        return "%6.1fs %s %s" % (self.t, self.kind, self.params)


def plan(seed, duration, store, kills=None, restarts=None):
    """[Action] sorted by time over `duration` seconds."""
    rnd = random.Random(seed)
    warm = min(10.0, duration * 0.15)
    # The last lifetime keeps at least a third of the run (and 35 s): the RSS check compares its
    # warm-up with its end.
    last = max(35.0, duration / 3)
    n_kills = kills if kills is not None else max(1, round(duration / 150))
    n_restarts = restarts if restarts is not None else max(1, round(duration / 300))
    # SIGKILLs and graceful restarts (SIGTERM, drain, start again) take turns, kills first.
    ends = []
    for i in range(max(n_kills, n_restarts)):
        ends += (["kill"] if i < n_kills else []) + (["restart"] if i < n_restarts else [])
    span = max(0.0, duration - last - warm - 5)
    out = []
    for i, what in enumerate(ends):
        t = warm + 5 + (i + rnd.uniform(0.2, 0.8)) * span / len(ends)
        out.append(Action(t, what, after_s=round(rnd.uniform(0.3, 2.5), 2)))
    variant = 0
    t = warm
    while True:
        t += rnd.uniform(1.5, 4.5)
        if t > duration - 8:  # the end runs clean: every fault undone, readiness checked
            break
        what = rnd.choices(["fault", "store", "reload", "none"], [60, 14, 16, 10])[0]
        if what == "fault":
            name, f = rnd.choice(FAULTS)
            out.append(Action(t, "fault", mock=rnd.choice(["a", "a", "b", "both"]), name=name,
                              faults=f, for_s=round(rnd.uniform(1.0, 6.0), 1)))
        elif what == "store":
            if store == "postgres":
                out.append(Action(t, "pg-down", mode=rnd.choice(["fast", "immediate"]),
                                  for_s=round(rnd.uniform(2.0, 8.0), 1)))
            else:
                out.append(Action(t, "sqlite-lock", for_s=round(rnd.uniform(1.0, 4.0), 1)))
        elif what == "reload":
            variant = (variant + 1 + rnd.randrange(VARIANTS - 1)) % VARIANTS
            out.append(Action(t, "reload", variant=variant))
    out.sort(key=lambda a: a.t)
    return out
