#!/usr/bin/env bash
# The Debian package and the systemd units, as a new user would meet them.
#   test_package.sh BUILD_DIR SOURCE_DIR
# Always: builds the .deb with CPack, checks its contents and maintainer scripts, and runs
# `systemd-analyze verify` on the units. On CI (CI=true) or with POLYMUR_TEST_INSTALL=1, as root:
# installs it with apt, runs the installed programs, and purges it again.
set -euo pipefail
build=$1 source=$2
failures=0 passes=0
check() {  # check NAME COMMAND...
    local name=$1; shift
    if "$@" >/tmp/polymur-package-check.log 2>&1; then
        echo "ok: $name"; passes=$((passes + 1))
    else
        echo "FAILED: $name"; sed 's/^/    /' /tmp/polymur-package-check.log; failures=$((failures + 1))
    fi
}

cd "$build"
rm -f polymur_*_amd64.deb polymur-dbgsym_*_amd64.ddeb
cpack -G DEB >/tmp/polymur-cpack.log 2>&1 || { cat /tmp/polymur-cpack.log; exit 1; }
deb=$(ls polymur_*_amd64.deb)
echo "built $deb"
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/polymur ./usr/bin/polymur-proxy ./usr/bin/polymur-gateway ./usr/lib/systemd/system/polymur.service \
            ./usr/lib/systemd/system/polymur-proxy.service ./usr/lib/systemd/system/polymur-gateway.service \
            ./etc/polymur/polymur.conf ./usr/share/doc/polymur/README.md; do
    check "package holds $path" grep -q " $path" <<<"$contents"
done
check "polymur-proxy is a link to polymur" grep -q "./usr/bin/polymur-proxy -> polymur" <<<"$contents"
check "config files are conffiles" sh -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/polymur/polymur.conf"
check "postinst creates the polymur user" sh -c "dpkg-deb -I '$deb' postinst | grep -q 'adduser --system'"
check "package name and architecture" sh -c "dpkg-deb -f '$deb' Package Architecture | tr '\n' ' ' | grep -q 'Package: polymur Architecture: amd64'"
for path in ./usr/share/doc/polymur/copyright ./usr/share/doc/polymur/changelog.gz ./usr/share/man/man8/polymur.8.gz \
            ./usr/share/man/man8/polymur-proxy.8.gz ./usr/share/man/man8/polymur-gateway.8.gz ./usr/share/man/man5/polymur.conf.5.gz; do
    check "package holds $path" grep -q " $path\$" <<<"$contents"
done
unpacked=$(mktemp -d)
dpkg-deb -x "$deb" "$unpacked"
check "copyright is DEP-5 with the repository's LICENSE" bash -c "
    head -1 '$unpacked/usr/share/doc/polymur/copyright' | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' &&
    awk '/^License: Expat\$/ { stanza++; next } stanza == 2' '$unpacked/usr/share/doc/polymur/copyright' | sed 's/^ //; s/^\.\$//' |
        diff - <(tail -n +3 '$source/LICENSE')"
check "changelog.gz is a Debian changelog for this version" sh -c "
    zcat '$unpacked/usr/share/doc/polymur/changelog.gz' | head -1 | grep -q '^polymur ($(dpkg-deb -f "$deb" Version)) '"
check "the extended description says what it is" sh -c "[ \$(dpkg-deb -f '$deb' Description | tail -n +2 | wc -l) -ge 5 ]"
check "the packaged binary is stripped" sh -c "! readelf -S '$unpacked/usr/bin/polymur' | grep -qE '\.(debug_info|symtab)'"
dbgsym=$(ls polymur-dbgsym_*_amd64.ddeb 2>/dev/null || true)
build_id=$(readelf -n "$unpacked/usr/bin/polymur" | sed -n 's/.*Build ID: //p')
check "the -dbgsym package holds the debug info for this build id" sh -c "
    [ -n '$dbgsym' ] && [ -n '$build_id' ] && dpkg-deb -f '$dbgsym' Build-Ids | grep -qx '$build_id' &&
    dpkg-deb -c '$dbgsym' | grep -q ' ./usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug\$'"
rm -rf "$unpacked"
if command -v lintian >/dev/null; then
    # Errors fail the test; warnings are shown so they are seen.
    check "lintian: no errors in $deb" sh -c "lintian --fail-on error '$deb' 2>&1 | grep -v 'root privileges' | tee /dev/stderr | { ! grep -q '^E: '; }"
    # lintian wants a .deb name for the .ddeb.
    ddeb_copy=$(mktemp -d)/polymur-dbgsym.deb
    check "lintian: no errors in $dbgsym" sh -c "cp '$dbgsym' '$ddeb_copy' && lintian --fail-on error '$ddeb_copy' 2>&1 | grep -v 'root privileges' | tee /dev/stderr | { ! grep -q '^E: '; }"
    rm -rf "$(dirname "$ddeb_copy")"
else
    echo "skipped: lintian is not installed (./dev.sh test installs it)"
fi

# The units as shipped, pointing at this build's binary (verify wants the executables to exist).
units=$(mktemp -d)
for unit in "$source"/systemd/*.service; do
    sed -e "s|/usr/bin/polymur-proxy|$build/polymur|g; s|/usr/bin/polymur-gateway|$build/polymur|g; s|/usr/bin/polymur|$build/polymur|g" \
        "$unit" >"$units/$(basename "$unit")"
done
check "systemd-analyze verify (all units)" sh -c "systemd-analyze verify $units/*.service 2>&1 | { ! grep -i polymur; }"
# systemd-analyze security: each unit's exposure at 2.0 or lower (offline: the units need not be installed).
exposure_at_most() {  # exposure_at_most UNIT MAX
    local score
    score=$(systemd-analyze security --offline=yes "$1" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p')
    echo "$(basename "$1"): exposure ${score:-unknown} (at most $2)"
    awk -v s="$score" -v max="$2" 'BEGIN { exit !(s != "" && s + 0 <= max + 0) }'
}
for unit in "$units"/*.service; do
    check "$(basename "$unit") exposure 2.0 or lower" exposure_at_most "$unit" 2.0
    # sock_diag (the admin's peer lookup) and getifaddrs (the putdest loop check) use netlink.
    check "$(basename "$unit") allows AF_NETLINK" grep -q '^RestrictAddressFamilies=.*AF_NETLINK' "$unit"
done
check "relay and proxy have an empty capability bounding set" sh -c "grep -qx 'CapabilityBoundingSet=' '$source/systemd/polymur.service' && grep -qx 'CapabilityBoundingSet=' '$source/systemd/polymur-proxy.service'"
check "the gateway keeps CAP_NET_BIND_SERVICE only" grep -qx 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' "$source/systemd/polymur-gateway.service"
if command -v strace >/dev/null; then
    check "every system call of a relay run passes the unit's SystemCallFilter" \
        python3 "$source/tests/package/syscall_filter_check.py" "$build/polymur" "$source/systemd/polymur.service"
else
    echo "skipped: system call filter check (needs strace)"
fi
check "units are Type=notify with a watchdog" sh -c "grep -q '^Type=notify' '$source/systemd/polymur.service' && grep -q '^WatchdogSec=' '$source/systemd/polymur.service'"
check "shipped config passes --check-config" "$build/polymur" --check-config --config="$source/systemd/polymur.conf"
check "shipped proxy config passes --check-config" "$build/polymur" --mode=proxy --check-config --config="$source/systemd/polymur-proxy.conf" --client-cert=/dev/null --client-key=/dev/null --ca-cert=/dev/null
check "shipped gateway config passes --check-config" "$build/polymur" --mode=gateway --check-config --config="$source/systemd/polymur-gateway.conf" --cert=/dev/null --key=/dev/null --ca-cert=/dev/null
rm -rf "$units"

if [ "${CI:-}" = true ] || [ "${POLYMUR_TEST_INSTALL:-}" = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "skipped: installing the package needs root"
    elif dpkg -s polymur >/dev/null 2>&1; then
        echo "skipped: a polymur package is already installed here; not touching it"
    else
        apt_get() { env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 "$@"; }
        check "apt install ./$deb" apt_get install -y -qq "./$deb"
        check "installed polymur runs" sh -c "polymur --version | grep -q '^polymur '"
        check "installed polymur-gateway is the gateway" sh -c "polymur-gateway --check-config 2>&1 | grep -q 'the gateway needs'"
        check "the polymur system user exists" id polymur
        check "installed units verify" sh -c "systemd-analyze verify /usr/lib/systemd/system/polymur.service 2>&1 | { ! grep -i polymur; }"
        check "installed config checks" polymur --check-config --config=/etc/polymur/polymur.conf
        state=$(mktemp -d) && chown polymur:polymur "$state"
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        api=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        check "installed polymur serves as the polymur user" sh -c "
            runuser -u polymur -- polymur --listen-addr=127.0.0.1:$port --api-addr=127.0.0.1:$api --state-dir=$state --workers=1 2>/dev/null &
            pid=\$!; for i in \$(seq 600); do echo getdest | nc -q1 127.0.0.1 $api 2>/dev/null | grep -q registered && break; sleep 0.1; done
            echo getdest | nc -q1 127.0.0.1 $api | grep -q registered; rc=\$?; kill \$pid; wait \$pid; exit \$rc"
        rm -rf "$state"
        check "/etc/polymur/tls: root:polymur 0750" sh -c "[ \"\$(stat -c '%U:%G %a' /etc/polymur/tls)\" = 'root:polymur 750' ]"
        check "the service user reads /etc/polymur/tls, others do not" sh -c "
            runuser -u polymur -- ls /etc/polymur/tls >/dev/null && ! runuser -u nobody -- ls /etc/polymur/tls 2>/dev/null"
        if grep -qs 'path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
            echo "skipped: this system's dpkg excludes /usr/share/man"
        else
            check "man -w polymur finds the installed page" sh -c "man -w polymur | grep -qx /usr/share/man/man8/polymur.8.gz"
        fi
        check "apt purge polymur (without warnings)" sh -c "
            out=\$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 purge -y -qq polymur 2>&1)
            rc=\$?; echo \"\$out\"; [ \$rc = 0 ] && ! echo \"\$out\" | grep -iE 'crontab|warning'"
        check "purge removed the user" sh -c "! id polymur"
        check "purge removed the group and the empty /etc/polymur" sh -c "! getent group polymur && [ ! -e /etc/polymur ]"
    fi
else
    echo "skipped: apt install of the package (runs on CI, or with POLYMUR_TEST_INSTALL=1)"
fi
echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
