#!/usr/bin/python3
"""Runs `polymur lookup` as a process against the routing vectors in tests/data/vectors.

Usage: lookup_vectors.py POLYMUR_BINARY VECTORS_DIR

For every ring in graphite-carbon/rings.txt it checks get_node (replication 1), the full
get_nodes walk (replication above the node count, no diverse replicas), carbon-relay's
REPLICATION_FACTOR=2 router table, and every carbon-c-relay jump cluster. Names are fed once
as bare names and once as plaintext lines "name 1 1700000000". Also checks that bad
configurations exit with status 2 and one line on stderr. Standard library only.
"""
import ast
import os
import subprocess
import sys

POLYMUR, VECTORS = sys.argv[1], sys.argv[2]
CARBON = os.path.join(VECTORS, "graphite-carbon")
RELAY = os.path.join(VECTORS, "carbon-c-relay")
failures = 0
checks = 0


def fail(message):
    global failures
    failures += 1
    if failures <= 20:
        print("FAIL: " + message)


def lookup(args, stdin_text):
    proc = subprocess.run([POLYMUR, "lookup"] + args, input=stdin_text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return f.read().split("\n")[:-1]


def parse_destination(text):
    """(host, port, instance) as carbon parses the simple forms used in the vectors."""
    if text.startswith("["):
        host, rest = text[1:].split("]:", 1)
    else:
        host, rest = text.split(":", 1)
    port, _, instance = rest.partition(":")
    return host, int(port), (instance if ":" in rest else None)


def compare(label, args, names, expected_by_name):
    """Runs lookup over names (bare and as plaintext lines) and compares per-name answers."""
    global checks
    want = "".join("%s\t%s\n" % (n, expected_by_name[n]) for n in names if n)
    for style, text in (("names", "".join(n + "\n" for n in names)),
                        ("plaintext", "".join("%s 1 1700000000\r\n" % n if n else "\n" for n in names))):
        code, out, err = lookup(args, text)
        checks += 1
        if code != 0:
            fail("%s [%s]: exit %d: %s" % (label, style, code, err.strip()))
        elif out != want:
            got, exp = out.split("\n"), want.split("\n")
            first = next((i for i in range(min(len(got), len(exp))) if got[i] != exp[i]), None)
            fail("%s [%s]: output differs%s" % (label, style, "" if first is None else
                                                ": got %r, want %r" % (got[first], exp[first])))


metrics = read_lines(os.path.join(CARBON, "metrics.txt"))
assert len(metrics) == 1000, len(metrics)

# --- carbon rings: get_node and get_nodes -------------------------------------------------------
rings = []
for line in read_lines(os.path.join(CARBON, "rings.txt")):
    if line.startswith("### "):
        tag = line.split()[1]
        dests = ast.literal_eval(line[line.index("destinations=") + len("destinations="):line.index(" nodes(")])
        rings.append((tag, dests))
assert len(rings) == 14, rings

for tag, dests in rings:
    hash_type = "carbon_ch" if tag.startswith("carbon_ch") else "fnv1a_ch"
    by_node = {}
    for d in dests:
        host, _, instance = parse_destination(d)
        by_node["%s:%s" % (host, instance)] = d
    ring_args = ["--hash-type", hash_type, "--destinations", ",".join(dests)]

    rows = [r.split("\t") for r in read_lines(os.path.join(CARBON, "vectors_%s.tsv" % tag))[1:]]
    expected = {r[0]: by_node["%s:%s" % (r[2], r[3])] for r in rows}
    compare("%s get_node" % tag, ring_args, metrics, expected)

    walks = [r.split("\t") for r in read_lines(os.path.join(CARBON, "getnodes_%s.tsv" % tag))]
    expected = {m: "|".join(by_node[n] for n in walk.split("|")) for m, walk in walks}
    compare("%s get_nodes" % tag,
            ring_args + ["--replication-factor=%d" % (len(dests) + 1), "--diverse-replicas=false"],
            metrics, expected)

# --- carbon-relay router with REPLICATION_FACTOR=2 -----------------------------------------------
section = None
sections = []
for line in read_lines(os.path.join(CARBON, "router_rf2.tsv")):
    if line.startswith("### "):
        fields = dict(f.split("=", 1) for f in line[4:].split(" dests=")[0].split())
        dests = ast.literal_eval(line.split(" dests=", 1)[1])
        section = (fields["hash"], fields["DIVERSE_REPLICAS"], dests, {})
        sections.append(section)
    else:
        metric, answer = line.split("\t")
        section[3][metric] = answer
assert len(sections) == 4
for hash_type, diverse, dests, answers in sections:
    by_triple = {}
    for d in dests:
        host, port, instance = parse_destination(d)
        by_triple["%s:%d:%s" % (host, port, instance)] = d
    expected = {m: "|".join(by_triple[t] for t in a.split("|")) for m, a in answers.items()}
    # single-dash long options and "--opt value" must work too
    args = ["-hash-type", hash_type, "--replication-factor", "2",
            "-diverse-replicas=" + diverse.lower(), "--destinations=" + ",".join(dests)]
    compare("router_rf2 %s diverse=%s" % (hash_type, diverse), args, list(answers), expected)

# --- carbon-c-relay: jump clusters, and carbon_ch / fnv1a_ch under --hash-compat=carbon-c-relay -----
def relay_cluster(path):
    """(hash type, replication, destinations as ours, {metric: expected answer}) of one file."""
    lines = read_lines(path)
    words = lines[0].split(":", 1)[1].split()
    replication, dests = 1, []
    i = 1
    while i < len(words):
        if words[i] == "replication":
            replication = int(words[i + 1])
            i += 2
            continue
        dests.append(words[i].replace("=", ":"))  # host:port=instance -> host:port:instance
        i += 1
    by_address = {}
    for d in dests:
        host, port, _ = parse_destination(d)
        by_address[("[%s]:%d" if ":" in host else "%s:%d") % (host, port)] = d
    rows = [r.split("\t") for r in lines[2:]]
    return words[0], replication, dests, {m: "|".join(by_address[a] for a in answer.split("|")) for m, answer in rows}


for prefix, count, compat in (("jump_", 4, "graphite"), ("compat_", 39, "carbon-c-relay")):
    files = sorted(f for f in os.listdir(RELAY) if f.startswith(prefix) and f.endswith(".tsv"))
    assert len(files) == count, files
    for name in files:
        hash_type, replication, dests, expected = relay_cluster(os.path.join(RELAY, name))
        assert hash_type == "jump_fnv1a_ch" if prefix == "jump_" else hash_type in ("carbon_ch", "fnv1a_ch")
        # --diverse-replicas has no effect on carbon-c-relay's placement
        compare(name, ["--hash-compat=" + compat, "--hash-type=" + hash_type, "--replication-factor=%d" % replication,
                       "--diverse-replicas=true", "--destinations=" + ",".join(dests)], list(expected), expected)

# The default stays Graphite's placement, which disagrees there (fnv1a_ch without instances).
lines = read_lines(os.path.join(RELAY, "compat_fnv1a_ch_5n_noinst.tsv"))
code, out, _ = lookup(["--hash-type=fnv1a_ch", "--destinations=" + ",".join("10.0.0.%d:2003" % k for k in range(1, 6))],
                      "".join(r.split("\t")[0] + "\n" for r in lines[2:]))
agree = sum(1 for got, row in zip(out.split("\n"), lines[2:]) if got == row)
checks += 1
if code != 0 or agree > 0.5 * len(lines[2:]):
    fail("--hash-compat=graphite should differ from carbon-c-relay for fnv1a_ch without instances: %d agree" % agree)

# --- broadcast --------------------------------------------------------------------------------------
dests = ["10.0.0.1:2003", "[::1]:2004:x", "host:2005:"]
compare("broadcast", ["--distribution=broadcast", "--destinations", ",".join(dests)], metrics,
        {m: "|".join(dests) for m in metrics})

# --- configuration errors: exit 2, one line on stderr --------------------------------------------------
for label, args in (("bad destination", ["--destinations", "10.0.0.1:2004,10.0.0.2"]),
                    ("duplicate ring node", ["--destinations", "10.0.0.1:2004:a,10.0.0.1:2104:a"]),
                    ("unknown hash type", ["--hash-type", "mmh3_ch", "--destinations", "a:1"]),
                    ("unknown hash compat", ["--hash-compat", "carbon", "--destinations", "a:1"]),
                    ("same server twice, carbon-c-relay", ["--hash-compat=carbon-c-relay", "--destinations", "a:1:x,a:1:y"]),
                    ("unknown distribution", ["--distribution", "random", "--destinations", "a:1"]),
                    ("bad replication", ["--replication-factor", "0", "--destinations", "a:1"]),
                    ("no destinations", []),
                    ("unknown option", ["--frobnicate", "--destinations", "a:1"])):
    code, out, err = lookup(args, "foo\n")
    checks += 1
    if code != 2 or out or err.count("\n") != 1:
        fail("%s: want exit 2, no stdout, one stderr line; got %d, %r, %r" % (label, code, out, err))
code, out, err = lookup(["--destinations", "10.0.0.1:2004,10.0.0.1:2104"], "")
if "'10.0.0.1:2004'" not in err or "'10.0.0.1:2104'" not in err:
    fail("duplicate error should name both destinations: %r" % err)
code, out, _ = lookup(["--help"], "")
checks += 1
if code != 0 or "--destinations" not in out:
    fail("--help: exit %d, %r" % (code, out))

print("%d checks, %d failures" % (checks, failures))
sys.exit(1 if failures else 0)
