#!/usr/bin/env python3
"""Turns `carbon-c-relay -t -f FILE` output into `polymur test -f FILE`'s layout.

Only presentation changes: the configuration echo and log lines are dropped, and the optimiser's
annotations ("(regex)", "[strncmp: x]" / "[strstr: x]" with the "-> name" continuation line) are folded
into polymur's "EXPRESSION -> NAME" line. Every decision line (rewrites, matches, clusters, members,
validate results, blackholed, stop) is kept as carbon-c-relay printed it.
"""
import re
import sys


def normalise(text):
    marker = "parsed configuration follows:\n"
    if marker in text:
        text = text[text.index(marker) + len(marker):]
        end = text.rfind("\n    ;\n\n")
        text = text[end + len("\n    ;\n\n"):] if end >= 0 else ""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("["):  # a log line
            i += 1
            continue
        m = re.match(r"^(\s+)(.*) \[(?:strncmp|strstr|regex)[^\]]*\]$", line)
        if m and i + 1 < len(lines) and re.match(r"^\s+-> ", lines[i + 1]):
            out.append(m.group(1) + m.group(2) + " " + lines[i + 1].strip())
            i += 2
            continue
        out.append(re.sub(r" \(regex\) -> ", " -> ", line))
        i += 1
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(normalise(sys.stdin.read()))
