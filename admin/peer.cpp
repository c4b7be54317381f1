#include "admin/peer.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/net.hpp"
#include "common/unique_fd.hpp"

namespace polymur::admin {
namespace {

// An IPv4-mapped IPv6 address (a dual-stack listener) as the IPv4 address the peer's socket has.
struct sockaddr_storage unmapped(const struct sockaddr* sa) {
    struct sockaddr_storage out = {};
    if (sa->sa_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            auto* sin = reinterpret_cast<struct sockaddr_in*>(&out);
            sin->sin_family = AF_INET;
            sin->sin_port = sin6->sin6_port;
            std::memcpy(&sin->sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
            return out;
        }
        std::memcpy(&out, sa, sizeof(struct sockaddr_in6));
        return out;
    }
    std::memcpy(&out, sa, sizeof(struct sockaddr_in));
    return out;
}

bool is_loopback_address(const struct sockaddr* sa) {
    struct sockaddr_storage plain = unmapped(sa);
    if (plain.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<struct sockaddr_in*>(&plain)->sin_addr.s_addr) >> 24) == 127;
    if (plain.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<struct sockaddr_in6*>(&plain)->sin6_addr);
    return false;
}

uint16_t port_of(const struct sockaddr* sa) {
    return sa->sa_family == AF_INET ? reinterpret_cast<const struct sockaddr_in*>(sa)->sin_port
                                    : reinterpret_cast<const struct sockaddr_in6*>(sa)->sin6_port;
}

void copy_address(const struct sockaddr* sa, __be32 out[4]) {
    if (sa->sa_family == AF_INET) std::memcpy(out, &reinterpret_cast<const struct sockaddr_in*>(sa)->sin_addr, 4);
    else std::memcpy(out, &reinterpret_cast<const struct sockaddr_in6*>(sa)->sin6_addr, 16);
}

// /proc/net/tcp prints addresses as the raw 32-bit words in host order, ports in host order.
std::string proc_net_address(const struct sockaddr* sa) {
    __be32 words[4] {};
    copy_address(sa, words);
    char text[64];
    if (sa->sa_family == AF_INET) std::snprintf(text, sizeof text, "%08X:%04X", words[0], ntohs(port_of(sa)));
    else
        std::snprintf(text, sizeof text, "%08X%08X%08X%08X:%04X", words[0], words[1], words[2], words[3],
                      ntohs(port_of(sa)));
    return text;
}

std::optional<gid_t> primary_group(uid_t uid) {
    struct passwd pw = {};
    struct passwd* found = nullptr;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || !found) return std::nullopt;
    return pw.pw_gid;
}

bool parse_id(const std::string& text, unsigned& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::optional<uid_t> tcp_peer_uid_sock_diag(const struct sockaddr* peer_sa, const struct sockaddr* local_sa) {
    struct sockaddr_storage peer = unmapped(peer_sa), local = unmapped(local_sa);
    if (peer.ss_family != local.ss_family) return std::nullopt;
    UniqueFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!nl) return std::nullopt;
    struct timeval timeout = {1, 0};
    setsockopt(nl.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
    } message {};
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;  // an exact lookup, not a dump
    message.header.nlmsg_seq = 1;
    message.request.sdiag_family = peer.ss_family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = ~0u;
    // The peer's socket: its source is the peer's address, its destination ours.
    auto* p = reinterpret_cast<struct sockaddr*>(&peer);
    auto* l = reinterpret_cast<struct sockaddr*>(&local);
    message.request.id.idiag_sport = port_of(p);
    message.request.id.idiag_dport = port_of(l);
    copy_address(p, message.request.id.idiag_src);
    copy_address(l, message.request.id.idiag_dst);
    message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl kernel = {};
    kernel.nl_family = AF_NETLINK;
    if (sendto(nl.get(), &message, sizeof message, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel) < 0)
        return std::nullopt;
    alignas(struct nlmsghdr) char reply[8192];
    ssize_t n = recv(nl.get(), reply, sizeof reply, 0);
    if (n <= 0) return std::nullopt;
    for (auto* h = reinterpret_cast<struct nlmsghdr*>(reply); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return std::nullopt;  // NLMSG_ERROR: not found or not allowed
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) return std::nullopt;
        auto* found = static_cast<struct inet_diag_msg*>(NLMSG_DATA(h));
        if (found->id.idiag_sport != message.request.id.idiag_sport ||
            found->id.idiag_dport != message.request.id.idiag_dport)
            continue;
        // A socket no process holds any more (closed, or a time-wait minisocket, which the kernel
        // reports as uid 0) has no owner to believe.
        if (found->idiag_inode == 0) return std::nullopt;
        return static_cast<uid_t>(found->idiag_uid);
    }
    return std::nullopt;
}

std::optional<uid_t> tcp_peer_uid_proc(const struct sockaddr* peer_sa, const struct sockaddr* local_sa) {
    struct sockaddr_storage peer = unmapped(peer_sa), local = unmapped(local_sa);
    if (peer.ss_family != local.ss_family) return std::nullopt;
    std::string want_local = proc_net_address(reinterpret_cast<struct sockaddr*>(&peer));
    std::string want_remote = proc_net_address(reinterpret_cast<struct sockaddr*>(&local));
    std::ifstream in(peer.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6");
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
        char slot[16], local_text[64], remote_text[64], state[8], queues[40], timer[40], retransmits[16], timeout[16];
        unsigned uid = 0;
        unsigned long inode = 0;
        if (std::sscanf(line.c_str(), "%15s %63s %63s %7s %39s %39s %15s %u %15s %lu", slot, local_text, remote_text,
                        state, queues, timer, retransmits, &uid, timeout, &inode) != 10)
            continue;
        if (want_local != local_text || want_remote != remote_text) continue;
        if (inode == 0) return std::nullopt;  // as above: no process holds it, the uid means nothing
        return static_cast<uid_t>(uid);
    }
    return std::nullopt;
}

Peer identify_peer(int fd) {
    Peer peer;
    struct sockaddr_storage local = {}, remote = {};
    socklen_t local_len = sizeof local, remote_len = sizeof remote;
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &local_len) != 0 ||
        getpeername(fd, reinterpret_cast<struct sockaddr*>(&remote), &remote_len) != 0) {
        peer.address = "unknown";
        return peer;
    }
    if (local.ss_family == AF_UNIX) {
        peer.kind = Peer::Kind::unix_socket;
        peer.address = "unix socket";
        struct ucred cred = {};
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            peer.uid = cred.uid;
            peer.gid = cred.gid;
        }
        return peer;
    }
    peer.address = net::peer_name(fd);
    auto* r = reinterpret_cast<struct sockaddr*>(&remote);
    auto* l = reinterpret_cast<struct sockaddr*>(&local);
    if (!is_loopback_address(r)) return peer;
    peer.kind = Peer::Kind::loopback;
    peer.uid = tcp_peer_uid_sock_diag(r, l);
    if (!peer.uid) peer.uid = tcp_peer_uid_proc(r, l);
    if (peer.uid) peer.gid = primary_group(*peer.uid);
    return peer;
}

bool AdminPolicy::build(const std::vector<std::string>& users, const std::vector<std::string>& groups, AdminPolicy& out,
                        std::string& error) {
    out.users = {0, geteuid()};
    for (const std::string& name : users) {
        unsigned id = 0;
        if (parse_id(name, id)) {
            out.users.push_back(id);
            continue;
        }
        struct passwd pw = {};
        struct passwd* found = nullptr;
        char buf[4096];
        if (getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found) {
            error = "--admin-users: no user '" + name + "'";
            return false;
        }
        out.users.push_back(pw.pw_uid);
    }
    for (const std::string& name : groups) {
        unsigned id = 0;
        if (parse_id(name, id)) {
            out.groups.push_back(id);
            continue;
        }
        struct group gr = {};
        struct group* found = nullptr;
        char buf[16384];
        if (getgrnam_r(name.c_str(), &gr, buf, sizeof buf, &found) != 0 || !found) {
            error = "--admin-groups: no group '" + name + "'";
            return false;
        }
        out.groups.push_back(gr.gr_gid);
    }
    return true;
}

bool AdminPolicy::may_change(const Peer& peer) const {
    if (peer.kind == Peer::Kind::remote || !peer.uid) return false;
    uid_t uid = *peer.uid;
    if (std::find(users.begin(), users.end(), uid) != users.end()) return true;
    if (groups.empty()) return false;
    if (peer.gid && std::find(groups.begin(), groups.end(), *peer.gid) != groups.end()) return true;
    // Supplementary groups, from the group database (a TCP peer's process is not known, its user is).
    struct passwd pw = {};
    struct passwd* found = nullptr;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || !found) return false;
    int count = 256;
    std::vector<gid_t> member_of(static_cast<size_t>(count));
    if (getgrouplist(pw.pw_name, pw.pw_gid, member_of.data(), &count) < 0) return false;
    member_of.resize(static_cast<size_t>(count));
    for (gid_t g : member_of)
        if (std::find(groups.begin(), groups.end(), g) != groups.end()) return true;
    return false;
}

bool AdminPolicy::token_matches(const std::string& given) const {
    if (token.empty() || given.size() != token.size()) return false;
    unsigned char difference = 0;  // the same time whatever the first wrong byte
    for (size_t i = 0; i < token.size(); ++i) difference |= static_cast<unsigned char>(token[i] ^ given[i]);
    return difference == 0;
}

bool read_admin_token(const std::string& path, std::string& token, std::string& error) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat st = {};
    if (!fd || fstat(fd.get(), &st) != 0) {
        error = "--admin-token-file " + path + ": " + std::strerror(errno);
        return false;
    }
    if (st.st_mode & 077) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        error = "--admin-token-file " + path + ": readable by group or others (mode " + mode + "); chmod 600 it";
        return false;
    }
    char buf[1024];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
    text = text.substr(0, text.find('\n'));
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.size() < 16 || text.find_first_of(" \t") != std::string::npos) {
        error =
            "--admin-token-file " + path + ": the first line must be a token of at least 16 characters without spaces";
        return false;
    }
    token = text;
    return true;
}

}  // namespace polymur::admin
