#!/usr/bin/env bash
# Lint: clang-tidy with the checks of .clang-tidy over every source file of polymur (not the tests, whose
# GoogleTest macros are not ours), from the build's compile_commands.json (ctest -L lint).
set -euo pipefail
source_dir=${1:?usage: run_clang_tidy.sh <source dir> <build dir> [clang-tidy]}
build_dir=${2:?usage: run_clang_tidy.sh <source dir> <build dir> [clang-tidy]}
clang_tidy=${3:-clang-tidy}
cd "$source_dir"
mapfile -t files < <(find admin common protocol route shm supervisor worker -name '*.cpp' | sort)
jobs=$(nproc)
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -n 4 "$clang_tidy" -p "$build_dir" --quiet
echo "run_clang_tidy: ${#files[@]} files without findings"
