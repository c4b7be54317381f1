#!/usr/bin/env bash
# Lint: every C++ file of the source tree is formatted as .clang-format says (ctest -L lint).
# To reformat: tests/lint/reformat.sh
set -euo pipefail
source_dir=${1:?usage: check_format.sh <source dir> [clang-format]}
clang_format=${2:-clang-format}
cd "$source_dir"
mapfile -t files < <(find admin bench common fuzz protocol route shm supervisor tests worker \
                          -name '*.cpp' -o -name '*.hpp' | sort)
"$clang_format" --dry-run --Werror --style=file "${files[@]}"
echo "check_format: ${#files[@]} files formatted as .clang-format says"
