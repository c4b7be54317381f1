#!/usr/bin/env bash
# Reformats every C++ file of the source tree as .clang-format says, in place (check_format.sh checks it).
# One step before clang-format: a C struct declared with the `struct` keyword and a braced initialiser
# (`struct timeval t {1, 0};`) is written `struct timeval t = {1, 0};`, which clang-format 14 keeps on one
# line (it breaks the first form over three). Run it again after merging: it changes nothing twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
clang_format=${CLANG_FORMAT:-clang-format}
mapfile -t files < <(find admin bench common fuzz protocol route shm supervisor tests worker \
                          -name '*.cpp' -o -name '*.hpp' | sort)
python3 - "${files[@]}" <<'PY'
import re, sys
declaration = re.compile(r"^(\s*(?:static )?(?:const )?struct [a-z_0-9]+ )(.*;.*)$")
for path in sys.argv[1:]:
    with open(path) as f:
        lines = f.read().split("\n")
    changed = False
    for i, line in enumerate(lines):
        m = declaration.match(line)
        if m and " {" in m.group(2) and not m.group(2).lstrip().startswith("{"):
            rest = re.sub(r"(\b[a-z_0-9]+(?:\[[^\]]*\])?) \{", r"\1 = {", m.group(2))
            if rest != m.group(2):
                lines[i] = m.group(1) + rest
                changed = True
    if changed:
        with open(path, "w") as f:
            f.write("\n".join(lines))
PY
"$clang_format" -i --style=file "${files[@]}"
