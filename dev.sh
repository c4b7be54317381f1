#!/usr/bin/env bash
# Quick start: `./dev.sh run` installs what is missing, builds and runs polymur in the foreground;
# `./dev.sh test` builds and runs every test: the normal build with every test, then a clang build with
# ASan + UBSan running the unit and process tests, then every fuzz target for a bounded time (README,
# Tests). `./dev.sh test <ctest options>` runs only the normal build's ctest with those options.
set -euo pipefail
cd "$(dirname "$0")"

BUILD_PACKAGES=(cmake g++ make pkg-config libboost-dev libboost-program-options-dev libevent-dev libssl-dev
                zlib1g-dev libgtest-dev libre2-dev)
# The sanitizer and fuzz build: clang with its runtimes (libFuzzer, ASan, UBSan) and llvm-symbolizer for
# readable reports.
SANITIZE_PACKAGES=(clang libclang-rt-dev llvm)
TEST_PACKAGES=(python3 netcat-openbsd openssl curl iproute2 util-linux graphite-carbon python3-whisper systemd prometheus lintian man-db collectd-core
               carbon-c-relay strace dpkg-dev clang-format clang-tidy)

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
    local directory=$1
    shift
    # -Werror for developers and CI only (a plain `cmake` build leaves it off).
    cmake -S . -B "$directory" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOLYMUR_WERROR=ON "$@" >/dev/null
    cmake --build "$directory" -j"$(nproc)"
}

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
        stage "normal build, every test"
        build build
        if [ $# -gt 0 ]; then
            cd build
            exec ctest --output-on-failure -j2 "$@"
        fi
        (cd build && ctest --output-on-failure -j2)
        # One clang build serves the sanitizer tests and the fuzz targets (POLYMUR_FUZZ implies
        # POLYMUR_SANITIZE=address,undefined).
        stage "sanitizer build (clang, ASan + UBSan): unit and process tests"
        build build-sanitize -DCMAKE_CXX_COMPILER=clang++ -DPOLYMUR_FUZZ=ON
        (cd build-sanitize && ctest --output-on-failure -j2 -L 'unit|process')
        stage "fuzz targets"
        (cd build-sanitize && ctest --output-on-failure -j2 -L fuzz)
        stage "all passed"
        ;;
    *)
        echo "usage: ./dev.sh run [polymur options] | ./dev.sh test [ctest options]" >&2
        exit 2
        ;;
esac
