#!/bin/sh
# Runs a command in a private network and mount namespace where the reference vectors' hosts
# exist: 10.0.0.0/8, 192.168.10.0/24, 2001:db8::1 and ::2 are local addresses, and the vectors' host names resolve
# to loopback addresses. Nothing outside the namespace is touched or reachable.
set -eu
if [ "${POLYMUR_IN_NETNS:-}" != 1 ]; then
    export POLYMUR_IN_NETNS=1
    exec unshare --map-root-user --net --mount "$0" "$@"
fi
ip link set lo up
ip route add local 10.0.0.0/8 dev lo
ip route add local 192.168.10.0/24 dev lo
ip -6 addr add 2001:db8::1/128 dev lo
ip -6 addr add 2001:db8::2/128 dev lo
hosts=$(mktemp)
cat > "$hosts" <<HOSTS
127.0.0.1 localhost
127.1.0.1 cache1
127.1.0.2 cache2
127.2.0.1 host1.example.com
127.2.0.2 host2.example.com
127.2.0.3 host3.example.com
127.2.0.4 host4.example.com
127.2.0.5 host5.example.com
HOSTS
mount --bind "$hosts" /etc/hosts
exec "$@"
