#!/usr/bin/env python3
"""Writes the metric names the differential rules test routes (deterministic: seeded)."""
import random
import sys

rng = random.Random(14)
apps = ["web", "db", "cache", "queue", "auth", "search", "mail", "api", "batch", "edge"]
words = ["cpu", "user", "system", "load", "mem", "load12", "mem123", "latency", "p50", "p99", "requests", "errors",
         "count", "bar", "MixedCase", "x", "xx", "word", "end", "dot", "star", "q", "z", "yz", "a", "ab", "bcd", "d"]
prefixes = ["servers", "sys", "app", "apps", "foo", "new", "never", "hosts", "legacy", "stats.timers", "tmp",
            "a", "b", "c", "d", "e", "f", "inc", "zz", "yy", "Abc", "123", "q", "x", "xy", ""]
alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-]\\"


def segment():
    r = rng.random()
    if r < 0.5:
        return rng.choice(words)
    if r < 0.7:
        return rng.choice(apps) + str(rng.randint(0, 30))
    if r < 0.9:
        return rng.choice(apps)
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))


def name():
    parts = [p for p in [rng.choice(prefixes)] if p]
    parts += [segment() for _ in range(rng.randint(0, 6))]
    text = ".".join(parts) or "x"
    r = rng.random()
    if r < 0.05:
        text = "." + text
    elif r < 0.1:
        text = text + "."
    elif r < 0.15:
        text = text.replace(".", "..", 1)
    return text


def data():
    r = rng.random()
    if r < 0.6:
        return " %d %d" % (rng.randint(0, 1000), 1700000000 + rng.randint(0, 1000))
    if r < 0.7:
        return " %.3f %d" % (rng.random() * 100, 1700000000)
    if r < 0.8:
        return " x 12"
    return ""


fixed = ["foo.A.b.bar", "foo.x.y.bar", "abcd", "acd", "with space", "qword", "q_w ", "a.word.b", "swordfish",
         "servers.web1.cpu.user", "servers.WEB2.cpu.system", "legacy.web.hits", "ab", "abab", "never.x",
         "never.after", "inc.x", "1234.abc", "a-b-c", "--", "]]a", "bx", "b]x", "xyz", "x", "xy", "xyyz",
         "zz.middle.end", "yy.abc", "yy.abe", "dot.star.x", "Hello", "hello", "..", ".a", "a.", "a.\\x",
         "abcdefghijklmnop", "servers.db3.cpu.user", "hosts.h.cpu.idle", "c.x", "e.f", "d.e", "MixedCase.x",
         "x.MixedCase.y", "ad", "a1", "bx_1", "b."]

if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    out = [f + (" 1 2" if i % 2 else "") for i, f in enumerate(fixed)]
    while len(out) < count:
        out.append(name() + data())
    sys.stdout.write("\n".join(out) + "\n")
