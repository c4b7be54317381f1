#!/usr/bin/python3
"""Routing vectors for carbon_ch and fnv1a_ch as carbon-c-relay 3.7.3 places them (polymur's
--hash-compat=carbon-c-relay), taken from carbon-c-relay's own test mode.

Usage: gen_compat_vectors.py METRICS_FILE OUT_DIR

For each cluster below it writes a one-cluster config, asks `carbon-c-relay -d -t` for the ring
(to pick adversarial names that hash exactly onto shared, first and last ring positions), then
pipes the names through `carbon-c-relay -t -f CONF` and records the destinations it prints.
Writes OUT_DIR/compat_<cluster>.tsv: a `# cluster: ...` line in carbon-c-relay's syntax
(host:port=instance), `#metric<TAB>destinations`, then metric<TAB>host:port|... rows.
The answers are carbon-c-relay's; this script only chooses the questions.
"""
import hashlib
import os
import re
import subprocess
import sys

V4 = ["10.0.0.%d" % k for k in range(1, 9)]


def members(hosts, ports=None, instances=None):
    out = []
    for k, h in enumerate(hosts):
        port = ports[k] if ports else 2003
        host = "[%s]" % h if ":" in h else h
        out.append("%s:%d%s" % (host, port, "=" + instances[k] if instances else ""))
    return " ".join(out)


CLUSTERS = {}
for hash_type in ("carbon_ch", "fnv1a_ch"):
    for n in (1, 2, 3, 5, 8):
        CLUSTERS["%s_%dn_noinst" % (hash_type, n)] = "%s %s" % (hash_type, members(V4[:n]))
    CLUSTERS["%s_4n_inst" % hash_type] = "%s %s" % (hash_type, members(V4[:4], instances="abcd"))
    CLUSTERS["%s_5n_numeric_inst" % hash_type] = "%s %s" % (
        hash_type, members(V4[:5], instances=["10", "2", "33", "4", "5"]))
    CLUSTERS["%s_3n_noinst_rf2" % hash_type] = "%s replication 2 %s" % (hash_type, members(V4[:3]))
    CLUSTERS["%s_8n_inst_rf3" % hash_type] = "%s replication 3 %s" % (
        hash_type, members(V4, instances=["n%d" % k for k in range(1, 9)]))
    CLUSTERS["%s_6n_mixed_rf2" % hash_type] = "%s replication 2 %s" % (
        hash_type, "10.0.0.1:2003 10.0.0.2:2103=a 10.0.0.3:2003 10.0.0.4:2203=7 10.0.0.5:2003 10.0.0.6:2003=b")
    CLUSTERS["%s_4n_ports" % hash_type] = "%s %s" % (
        hash_type, members(V4[:4], ports=[2003, 2004, 2103, 12003]))
    CLUSTERS["%s_3n_samehost" % hash_type] = "%s %s" % (
        hash_type, members(["127.0.0.1"] * 3, ports=[2103, 2003, 2203]))
    if hash_type == "fnv1a_ch":
        # carbon_ch keys ignore the port, so one member takes every position and carbon-c-relay
        # 3.7.3 loops forever looking for a second one.
        CLUSTERS["%s_3n_samehost_rf2" % hash_type] = "%s replication 2 %s" % (
            hash_type, members(["127.0.0.1"] * 3, ports=[2103, 2003, 2203]))
    CLUSTERS["%s_4n_samehost_inst" % hash_type] = "%s %s" % (
        hash_type, members(["127.0.0.1"] * 4, ports=[2003, 2004, 2005, 2006], instances=["x", "b", "aa", "c"]))
    CLUSTERS["%s_3n_ipv6" % hash_type] = "%s %s" % (hash_type, members(["::1", "2001:db8::1", "10.0.0.1"]))
    CLUSTERS["%s_3n_ipv6_inst_rf2" % hash_type] = "%s replication 2 %s" % (
        hash_type, members(["::1", "2001:db8::1", "2001:db8::2"], instances=["a", "b", "c"]))
    # Instances whose fnv1a_ch keys share ring positions (a collision on every pair).
    CLUSTERS["%s_3n_colliding_inst_rf3" % hash_type] = "%s replication 3 %s" % (
        hash_type, members(["10.0.0.2", "10.0.0.10", "10.0.0.1"], instances=["b2", "aa", "b11"]))
    # Hosts where comparing "host" and "host:port" would disagree, all colliding (same keys).
    CLUSTERS["%s_8n_prefix_hosts_rf2" % hash_type] = "%s replication 2 %s" % (
        hash_type, members(["10.0.0.10", "10.0.0.1", "10.0.0.100", "10.0.0.1", "10.0.0.11", "10.0.0.10",
                            "10.0.0.2", "10.0.0.20"],
                           ports=[2003, 2004, 2003, 2003, 2003, 2004, 2003, 2003]))
    CLUSTERS["%s_8n_reversed_inst_rf2" % hash_type] = "%s replication 2 %s" % (
        hash_type, members(V4[::-1], instances=["r%d" % k for k in range(8)]))
# Shared positions between members on one host: carbon_ch decides by instance (none loses),
# fnv1a_ch by port. The instances were picked because their keys collide.
CLUSTERS["carbon_ch_4n_samehost_tiebreak"] = (
    "carbon_ch 127.0.0.1:2003 127.0.0.1:2004=x6 127.0.0.1:2005=y5 127.0.0.1:2006=x0")
CLUSTERS["fnv1a_ch_4n_samehost_tiebreak"] = (
    "fnv1a_ch 127.0.0.1:2004 127.0.0.1:2003=z5 127.0.0.2:2004=x0 127.0.0.2:2003=a0")


def md5_position(name):
    d = hashlib.md5(name.encode("utf-8", "surrogateescape")).digest()
    return d[0] << 8 | d[1]


def fnv_position_signed(name):
    h = 0x811c9dc5
    for c in name.encode("utf-8", "surrogateescape"):
        h ^= (c - 256 if c >= 128 else c) & 0xffffffff
        h = (h * 0x01000193) & 0xffffffff
    return (h >> 16) ^ (h & 0xffff)


def name_at_position(position_of):
    """position -> a short name hashing there, for about every 16-bit position."""
    table = {}
    for k in range(400000):
        name = "adv.p%d" % k
        table.setdefault(position_of(name), name)
    return table


def run(conf, args, stdin):
    return subprocess.run(["carbon-c-relay"] + args + ["-f", conf], input=stdin.encode("utf-8", "surrogateescape"),
                          capture_output=True, check=False, timeout=120).stdout.decode("utf-8", "surrogateescape")


def main():
    metrics_file, out = sys.argv[1], sys.argv[2]
    with open(metrics_file, encoding="utf-8", newline="\n") as f:
        base = [l for l in f.read().split("\n") if l and not re.search(r"\s", l)]
    adversarial = ["x" * 55, "y" * 56, "z" * 64, "w" * 119, "v" * 1000, "é" * 40, "\u6e29\u5ea6.\u2603",
                   "a.b;tag=\u00fcml", "\x7f", "~", "!", "#", "a" * 3 + "\u00ff", "-1", "0"]
    tables = {"carbon_ch": name_at_position(md5_position), "fnv1a_ch": name_at_position(fnv_position_signed)}
    conf = os.path.join(out, ".compat.conf")
    for tag, spec in CLUSTERS.items():
        with open(conf, "w") as f:
            f.write("cluster c %s;\nmatch * send to c stop;\n" % spec)
        ring_text = run(conf, ["-d", "-t"], "")
        if "# hash ring for c follows" not in ring_text:
            sys.exit("%s: carbon-c-relay refused the cluster: %s" % (tag, spec))
        ring = [int(p) for p in re.findall(r"(\d+)@\S+", ring_text.split("# hash ring for c follows")[1])]
        table = tables[spec.split()[0]]
        shared = sorted({p for p in ring if ring.count(p) > 1})
        targets = shared[:40] + [min(ring), max(ring), max(ring) + 1, 65535, 0]
        extra = [table[p] for p in targets if p in table] + [table[p + 1] for p in shared[:20] if p + 1 in table]
        names = list(dict.fromkeys(base + adversarial + extra))
        text = run(conf, ["-t"], "".join(n + "\n" for n in names))
        rows, cur = [], None
        for line in text.split("\n"):
            m = re.match(r"^    \* -> (.*)$", line)
            if m:
                cur = [m.group(1), []]
                rows.append(cur)
            elif cur is not None and re.match(r"^        \S+:\d+$", line):
                cur[1].append(line.strip())
        printed = [r[0] for r in rows]
        if printed != names:
            sys.exit("%s: carbon-c-relay printed other names than it was given" % tag)
        with open(os.path.join(out, "compat_%s.tsv" % tag), "w", encoding="utf-8", errors="surrogateescape",
                  newline="\n") as f:
            f.write("# cluster: %s\n#metric\tdestinations\n" % spec)
            for metric, dests in rows:
                f.write("%s\t%s\n" % (metric, "|".join(dests)))
        print(tag, len(rows), "rows,", len(shared), "shared positions", flush=True)
    os.unlink(conf)


if __name__ == "__main__":
    main()
