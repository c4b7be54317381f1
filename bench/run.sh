#!/usr/bin/env bash
# polymur vs carbon-c-relay, one command (docs/PERFORMANCE.md):
#   bench/run.sh            full benchmark (about 2.5 minutes per repeat on 2 cores)
#   bench/run.sh --smoke    tiny counts, exits non-zero unless every metric was delivered (CI)
#   bench/run.sh --relays forwarder,forwarder-copy,polymur --only broadcast1,broadcast,hash --count 3000000 --repeat 3
#                           polymur as a share of a relay that does no work, and of one that only copies its
#                           bytes through user space (docs/PERFORMANCE.md)
# Any bench/compare.py option may follow (--count, --repeat, --only, --profile DIR, --json FILE ...).
# BUILD_DIR (default: build) is where polymur and the bench tools are built.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

PACKAGES=(cmake g++ make pkg-config libboost-dev libboost-program-options-dev libevent-dev libssl-dev zlib1g-dev
          libgtest-dev python3 carbon-c-relay)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "run.sh: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    # policy-rc.d 101: the package's service must not start (and take port 2003) while we install it.
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    [ "$made_policy" = 1 ] && $sudo rm -f "$policy"
    [ "$status" = 0 ] || exit "$status"
fi
# A packaged carbon-c-relay service (where systemd runs) is stopped so it holds no port or CPU.
if command -v systemctl >/dev/null && systemctl is-active --quiet carbon-c-relay 2>/dev/null; then
    echo "run.sh: stopping the carbon-c-relay service for the benchmark" >&2
    systemctl stop carbon-c-relay || true
fi

build_log=$(mktemp)
if ! { [ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo; } >"$build_log" 2>&1 ||
   ! cmake --build "$BUILD_DIR" -j"$(nproc)" --target polymur polymur-loadgen polymur-sink polymur-forwarder >>"$build_log" 2>&1; then
    tail -50 "$build_log" >&2
    echo "run.sh: build failed (full log: $build_log)" >&2
    exit 1
fi
rm -f "$build_log"

# 10,000 idle connections need that many descriptors in the relay and in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

exec python3 bench/compare.py --polymur-bin "$BUILD_DIR/polymur" --bench-dir "$BUILD_DIR" "$@"
