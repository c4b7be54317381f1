#include "worker/tcp_stream.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/net.hpp"

namespace polymur {
namespace {

// writev as ByteStream::write reports it, adding what was written to `written`.
ssize_t write_counted(int fd, const struct iovec* iov, int count, uint64_t& written, std::string& error) {
    for (;;) {
        ssize_t n = ::writev(fd, iov, count);
        if (n >= 0) {
            written += static_cast<uint64_t>(n);
            return n;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0;
        error = std::strerror(errno);
        return -1;
    }
}

}  // namespace

Io TcpStream::open(std::string& error) {
    socket_ = net::connect_tcp(host_, port_, static_cast<int>(link_.connect_timeout_ms()), error);
    written_ = 0;
    return socket_ ? Io::ok : Io::failed;
}

ssize_t TcpStream::write(const struct iovec* iov, int count, std::string& error) {
    return write_counted(socket_.get(), iov, count, written_, error);
}

uint64_t TcpStream::confirmed() {
    int unacked = 0;
    if (ioctl(socket_.get(), SIOCOUTQ, &unacked) != 0) return 0;
    return written_ - std::min<uint64_t>(written_, static_cast<uint64_t>(unacked));
}

// carbon never writes back; a readable socket means it closed or reset.
bool TcpStream::peer_closed() {
    char sink[512];
    ssize_t n = ::recv(socket_.get(), sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EINTR;
    return false;
}

ssize_t ConsoleStream::write(const struct iovec* iov, int count, std::string& error) {
    return write_counted(1, iov, count, written_, error);
}

}  // namespace polymur
