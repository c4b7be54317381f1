#!/usr/bin/env bash
# Quick start: `./dev.sh run` installs what is missing, builds and runs polymur in the foreground;
# `./dev.sh test` builds and runs every test: the normal build with every test, then a clang build with
# ASan + UBSan running the unit tests and the process tests labelled sanitize, with every fuzz target for a
# bounded time beside them (README, Tests). `./dev.sh test <ctest options>` runs only the normal build's ctest with those options.
set -euo pipefail
cd "$(dirname "$0")"

BUILD_PACKAGES=(cmake g++ make pkg-config libboost-dev libboost-program-options-dev libevent-dev libssl-dev
                zlib1g-dev liblz4-dev libgtest-dev libre2-dev)
# The sanitizer and fuzz build: clang with its runtimes (libFuzzer, ASan, UBSan) and llvm-symbolizer for
# readable reports.
SANITIZE_PACKAGES=(clang libclang-rt-dev llvm)
TEST_PACKAGES=(python3 netcat-openbsd openssl curl iproute2 util-linux graphite-carbon python3-whisper systemd prometheus lintian man-db collectd-core
               carbon-c-relay strace dpkg-dev clang-format clang-tidy lz4)

install_missing() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "dev.sh: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The tests start their own carbon-cache instances; one started by the package would hold
    # port 2003, which polymur's quick start uses.
    if [[ " ${missing[*]} " == *" graphite-carbon "* ]] && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now carbon-cache.service >/dev/null 2>&1 || true
    fi
    # The tests start a private prometheus of their own; the packaged service is not needed.
    if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now prometheus.service prometheus-node-exporter.service >/dev/null 2>&1 || true
    fi
}

# build <directory> [cmake options]
build() {
    configure "$@"
    cmake --build "$1" -j"$(nproc)"
}

# configure <directory> [cmake options]
configure() {
    local directory=$1
    shift
    # -Werror for developers and CI only (a plain `cmake` build leaves it off).
    cmake -S . -B "$directory" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOLYMUR_WERROR=ON "$@" >/dev/null
}

# background <log> <command...>: runs the command at the lowest CPU priority in a process group of its own
# (so that exit can end all of it), its output in <log>; sets background_pid. The tests in the foreground
# mostly wait on sockets, timers and child processes; nice 19 gives the command only the CPU they leave.
background_pids=()
background() {
    local log=$1
    shift
    setsid -w nice -n 19 "$@" >"$log" 2>&1 </dev/null &
    background_pid=$!
    background_pids+=("$background_pid")
}
# finish <pid> <log> <what>: waits for a background command; on failure shows its log and fails.
finish() {
    local status=0
    wait "$1" || status=$?
    local pid kept=()
    for pid in "${background_pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    background_pids=("${kept[@]}")
    if [ "$status" != 0 ]; then
        cat "$2" >&2
        echo "dev.sh: $3 failed (log above: $2)" >&2
        exit 1
    fi
}
end_background() {
    local pid
    for pid in "${background_pids[@]}"; do kill -- "-$pid" 2>/dev/null; done
    return 0
}
trap end_background EXIT

stage() { echo "dev.sh: === $* ($(date -u +%H:%M:%S))" >&2; }

command=${1:-run}
[ $# -gt 0 ] && shift
case "$command" in
    run)
        install_missing "${BUILD_PACKAGES[@]}"
        build build
        mkdir -p state
        # Embedded defaults (metrics on :2003, admin on localhost:2030), plus console output, a
        # state folder inside the checkout and Prometheus' /metrics as the shipped config has it;
        # any polymur option may follow.
        exec build/polymur --console-out --state-dir="$PWD/state" --metrics-addr=127.0.0.1:2040 "$@"
        ;;
    test)
        install_missing "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}" "${SANITIZE_PACKAGES[@]}"
        stage "normal build"
        build build
        if [ $# -gt 0 ]; then
            cd build
            exec ctest --output-on-failure -j2 "$@"
        fi
        # One clang build serves the sanitizer tests and the fuzz targets (POLYMUR_FUZZ implies
        # POLYMUR_SANITIZE=address,undefined). It builds in the background while the normal build's tests run.
        configure build-sanitize -DCMAKE_CXX_COMPILER=clang++ -DPOLYMUR_FUZZ=ON
        background build-sanitize/build.log cmake --build build-sanitize -j"$(nproc)"
        sanitize_build=$background_pid
        stage "normal build: every test (the sanitizer build in the background: build-sanitize/build.log)"
        (cd build && ctest --output-on-failure -j2)
        stage "sanitizer build (clang, ASan + UBSan): waiting for it to finish"
        finish "$sanitize_build" build-sanitize/build.log "the sanitizer build"
        # The fuzz targets (CPU-bound, each for a fixed time) run in the background beside the sanitized
        # unit tests and the process tests labelled sanitize (tests/process/CMakeLists.txt), which mostly
        # wait. From build-sanitize/fuzz, ctest runs the fuzz targets alone and keeps its own Testing/.
        background build-sanitize/fuzz.log sh -c 'cd build-sanitize/fuzz && ctest --output-on-failure -j2'
        fuzz=$background_pid
        stage "sanitizer build: unit tests and the process tests labelled sanitize (fuzz targets in the background)"
        (cd build-sanitize && ctest --output-on-failure -j2 -L 'unit|sanitize')
        stage "fuzz targets: waiting for them to finish"
        finish "$fuzz" build-sanitize/fuzz.log "the fuzz targets"
        cat build-sanitize/fuzz.log
        stage "all passed"
        ;;
    *)
        echo "usage: ./dev.sh run [polymur options] | ./dev.sh test [ctest options]" >&2
        exit 2
        ;;
esac
