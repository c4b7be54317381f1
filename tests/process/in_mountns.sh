#!/bin/sh
# Runs a command in a private mount namespace, so a test can mount a small tmpfs (a full disk)
# that nothing outside sees and that disappears with the namespace.
set -eu
if [ "${TEST_IN_MOUNTNS:-}" != 1 ]; then
    export TEST_IN_MOUNTNS=1
    exec unshare --map-root-user --mount "$0" "$@"
fi
exec "$@"
