#!/bin/sh
# Runs one libFuzzer target for a bounded time: first every seed in the seed directories (the
# regression cases), then new inputs. Any crash, sanitizer report, leak or slow input (over 10 s) fails,
# and the input that did it is kept in <work>/artifacts/ (reproduce: <fuzzer> <that file>).
# usage: run_fuzzer.sh <fuzzer> <work dir> <seconds> <max input length> <seed dir>...
set -eu
fuzzer=$1 work=$2 seconds=$3 max_len=$4
shift 4
rm -rf "$work/corpus"
mkdir -p "$work/corpus" "$work/artifacts"
# The parsers' own error messages (config errors on stderr) are not interesting: -close_fd_mask=3
# silences the target's stdout and stderr; libFuzzer and the sanitizers still report on a kept stderr.
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$@"
