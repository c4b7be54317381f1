// Who is on the other end of an admin connection: the kernel's word for it, never the client's.
// Unix socket: SO_PEERCRED. Loopback TCP: the peer's socket is on this host, so its owner is found
// with a NETLINK_SOCK_DIAG query for the exact 4-tuple, or in /proc/net/tcp(6) when netlink is not
// available. Any other TCP peer is remote and has no known user.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace polymur::admin {

struct Peer {
    enum class Kind { unix_socket, loopback, remote };
    Kind kind = Kind::remote;
    std::optional<uid_t> uid;  // known for unix_socket and (when the kernel says) loopback
    std::optional<gid_t> gid;  // the primary group: SO_PEERCRED's, or the user's from the password database
    std::string address;       // "127.0.0.1:43210", "unix"
};

// Identifies the peer of a connected socket.
Peer identify_peer(int fd);

// The owner of the TCP socket on this host whose local end is `peer` and remote end is `local`
// (both struct sockaddr_in or sockaddr_in6), while a process still holds it: a closed client's
// socket (orphaned, or a time-wait minisocket that reads as uid 0) has no owner. Exposed for tests.
std::optional<uid_t> tcp_peer_uid_sock_diag(const struct sockaddr* peer, const struct sockaddr* local);
std::optional<uid_t> tcp_peer_uid_proc(const struct sockaddr* peer, const struct sockaddr* local);

// Who may change the configuration (putdest, deldest) without a token: root, the uid polymur runs
// as, and the users and groups named in --admin-users / --admin-groups.
struct AdminPolicy {
    std::vector<uid_t> users;
    std::vector<gid_t> groups;
    std::string token;  // from --admin-token-file; empty: no token accepted

    // Resolves names or numbers; returns false with `error` naming the unknown one.
    static bool build(const std::vector<std::string>& users, const std::vector<std::string>& groups, AdminPolicy& out,
                      std::string& error);
    // Root, the service's own uid, a listed user, or a member of a listed group.
    bool may_change(const Peer& peer) const;
    bool token_matches(const std::string& given) const;
};

// Reads the token file: the first line, which must not be empty; the file must not be readable by
// group or others. Returns false with `error` set.
bool read_admin_token(const std::string& path, std::string& token, std::string& error);

}  // namespace polymur::admin
