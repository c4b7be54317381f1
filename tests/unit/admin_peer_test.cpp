// Who is on the other end of an admin connection, and what they may do.
#include "admin/command.hpp"
#include "admin/peer.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/unique_fd.hpp"

namespace polymur::admin {
namespace {

struct LoopbackPair {
    UniqueFd listener, client, server;
    struct sockaddr_in client_addr = {}, server_addr = {};
};

LoopbackPair connect_loopback() {
    LoopbackPair p;
    p.listener = UniqueFd(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in sa = {};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    EXPECT_EQ(bind(p.listener.get(), reinterpret_cast<struct sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(listen(p.listener.get(), 1), 0);
    getsockname(p.listener.get(), reinterpret_cast<struct sockaddr*>(&sa), &len);
    p.client = UniqueFd(socket(AF_INET, SOCK_STREAM, 0));
    EXPECT_EQ(connect(p.client.get(), reinterpret_cast<struct sockaddr*>(&sa), sizeof sa), 0);
    p.server = UniqueFd(accept(p.listener.get(), nullptr, nullptr));
    len = sizeof p.client_addr;
    getpeername(p.server.get(), reinterpret_cast<struct sockaddr*>(&p.client_addr), &len);
    len = sizeof p.server_addr;
    getsockname(p.server.get(), reinterpret_cast<struct sockaddr*>(&p.server_addr), &len);
    return p;
}

TEST(PeerUid, SockDiagFindsTheOwnerOfALoopbackPeer) {
    LoopbackPair p = connect_loopback();
    auto uid = tcp_peer_uid_sock_diag(reinterpret_cast<struct sockaddr*>(&p.client_addr),
                                      reinterpret_cast<struct sockaddr*>(&p.server_addr));
    ASSERT_TRUE(uid.has_value());
    EXPECT_EQ(*uid, geteuid());
}

TEST(PeerUid, ProcNetTcpFindsTheSameOwner) {
    LoopbackPair p = connect_loopback();
    auto uid = tcp_peer_uid_proc(reinterpret_cast<struct sockaddr*>(&p.client_addr),
                                 reinterpret_cast<struct sockaddr*>(&p.server_addr));
    ASSERT_TRUE(uid.has_value());
    EXPECT_EQ(*uid, geteuid());
}

TEST(PeerUid, NoSuchConnectionIsUnknown) {
    LoopbackPair p = connect_loopback();
    p.client_addr.sin_port = htons(1);  // nobody's socket
    EXPECT_FALSE(tcp_peer_uid_sock_diag(reinterpret_cast<struct sockaddr*>(&p.client_addr),
                                        reinterpret_cast<struct sockaddr*>(&p.server_addr)));
    EXPECT_FALSE(tcp_peer_uid_proc(reinterpret_cast<struct sockaddr*>(&p.client_addr),
                                   reinterpret_cast<struct sockaddr*>(&p.server_addr)));
}

// A client that sent its command and closed: its socket is orphaned or a time-wait minisocket, which
// sock_diag and /proc/net/tcp report as uid 0. That must not read as root.
TEST(PeerUid, AClosedClientHasNoOwner) {
    LoopbackPair p = connect_loopback();
    p.client.reset();
    usleep(50000);  // our ACK of its FIN turns it into a FIN_WAIT2 minisocket
    EXPECT_FALSE(tcp_peer_uid_sock_diag(reinterpret_cast<struct sockaddr*>(&p.client_addr),
                                        reinterpret_cast<struct sockaddr*>(&p.server_addr)));
    EXPECT_FALSE(tcp_peer_uid_proc(reinterpret_cast<struct sockaddr*>(&p.client_addr),
                                   reinterpret_cast<struct sockaddr*>(&p.server_addr)));
    EXPECT_FALSE(identify_peer(p.server.get()).uid.has_value());
}

TEST(PeerUid, IdentifyPeerOfALoopbackConnection) {
    LoopbackPair p = connect_loopback();
    Peer peer = identify_peer(p.server.get());
    EXPECT_EQ(peer.kind, Peer::Kind::loopback);
    ASSERT_TRUE(peer.uid.has_value());
    EXPECT_EQ(*peer.uid, geteuid());
}

// A dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1; the client's socket is IPv4.
TEST(PeerUid, IdentifyPeerThroughADualStackListener) {
    UniqueFd listener(socket(AF_INET6, SOCK_STREAM, 0));
    int off = 0;
    setsockopt(listener.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 any = {};
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_any;
    if (bind(listener.get(), reinterpret_cast<struct sockaddr*>(&any), sizeof any) != 0) GTEST_SKIP() << "no IPv6";
    ASSERT_EQ(listen(listener.get(), 1), 0);
    socklen_t len = sizeof any;
    getsockname(listener.get(), reinterpret_cast<struct sockaddr*>(&any), &len);
    UniqueFd client(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in to = {};
    to.sin_family = AF_INET;
    to.sin_port = any.sin6_port;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(client.get(), reinterpret_cast<struct sockaddr*>(&to), sizeof to), 0);
    UniqueFd server(accept(listener.get(), nullptr, nullptr));
    Peer peer = identify_peer(server.get());
    EXPECT_EQ(peer.kind, Peer::Kind::loopback);
    ASSERT_TRUE(peer.uid.has_value());
    EXPECT_EQ(*peer.uid, geteuid());
}

TEST(AdminPolicy, RootAndTheServiceUserOnlyByDefault) {
    AdminPolicy policy;
    std::string error;
    ASSERT_TRUE(AdminPolicy::build({}, {}, policy, error)) << error;
    Peer peer;
    peer.kind = Peer::Kind::loopback;
    peer.uid = 0;
    EXPECT_TRUE(policy.may_change(peer));
    peer.uid = geteuid();
    EXPECT_TRUE(policy.may_change(peer));
    peer.uid = 4242;
    EXPECT_FALSE(policy.may_change(peer));
    peer.uid.reset();
    EXPECT_FALSE(policy.may_change(peer));
    peer.kind = Peer::Kind::remote;
    peer.uid = 0;  // a remote peer has no user, whatever it claims
    EXPECT_FALSE(policy.may_change(peer));
}

TEST(AdminPolicy, ListedUsersAndGroups) {
    AdminPolicy policy;
    std::string error;
    ASSERT_TRUE(AdminPolicy::build({"4242"}, {"4343"}, policy, error)) << error;
    Peer peer;
    peer.kind = Peer::Kind::unix_socket;
    peer.uid = 4242;
    EXPECT_TRUE(policy.may_change(peer));
    peer.uid = 5000;
    peer.gid = 4343;
    EXPECT_TRUE(policy.may_change(peer));
    peer.gid = 5000;
    EXPECT_FALSE(policy.may_change(peer));
    EXPECT_FALSE(AdminPolicy::build({"no-such-user-polymur"}, {}, policy, error));
    EXPECT_NE(error.find("no-such-user-polymur"), std::string::npos);
}

class NullBackend : public Backend {
public:
    std::string getdest() override { return "GETDEST\n"; }
    std::string putdest(const std::string& d) override { return "PUT " + d + "\n"; }
    std::string deldest(const std::string& d) override { return "DEL " + d + "\n"; }
    std::string stats() override { return "STATS\n"; }
};

TEST(ExecuteWithCaller, ReadOnlyCommandsStayOpenChangesNeedPermissionOrToken) {
    NullBackend backend;
    AdminPolicy policy;
    policy.token = "0123456789abcdef";
    Caller stranger {false, "not allowed", &policy};
    std::string refused;
    EXPECT_EQ(execute("getdest", backend, stranger, &refused), "GETDEST\n");
    EXPECT_EQ(execute("stats", backend, stranger, &refused), "STATS\n");
    EXPECT_EQ(refused, "");
    EXPECT_EQ(execute("putdest a:1", backend, stranger, &refused), "error: putdest refused: not allowed\n");
    EXPECT_EQ(refused, "not allowed");
    EXPECT_EQ(execute("deldest a:1 token=wrong", backend, stranger, &refused), "error: deldest refused: wrong token\n");
    EXPECT_EQ(execute("putdest a:1 token=0123456789abcdef", backend, stranger), "PUT a:1\n");
    EXPECT_EQ(execute("putdest token=0123456789abcdef a:1", backend, stranger), "PUT a:1\n");
    EXPECT_EQ(execute("putdest a:1 b:2 token=0123456789abcdef", backend, stranger),
              "error: putdest takes one destination\n");
    Caller no_token {false, "not allowed", nullptr};
    EXPECT_EQ(execute("putdest a:1 token=x", backend, no_token),
              "error: putdest refused: no --admin-token-file is configured\n");
}

}  // namespace
}  // namespace polymur::admin
