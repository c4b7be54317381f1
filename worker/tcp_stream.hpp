// The plain byte streams under a StreamTransport: a TCP connection, and the console (stdout).
#pragma once

#include <string>

#include "common/unique_fd.hpp"
#include "worker/transport.hpp"

namespace polymur {

// TCP: bytes are confirmed once the destination's kernel acknowledged them, that is once they left
// our send queue (written minus SIOCOUTQ).
class TcpStream final : public ByteStream {
public:
    TcpStream(OutputLink& link, std::string host, std::string port)
            : link_(link), host_(std::move(host)), port_(std::move(port)) {}

    Io open(std::string& error) override;
    bool is_open() const override { return static_cast<bool>(socket_); }
    void close() override { socket_.reset(); }
    ssize_t write(const struct iovec* iov, int count, std::string& error) override;
    bool flush(std::string&) override { return true; }
    uint64_t confirmed() override;
    bool peer_closed() override;
    int fd() const override { return socket_.get(); }

private:
    OutputLink& link_;
    std::string host_, port_;
    UniqueFd socket_;
    uint64_t written_ = 0;
};

// The console destination: what was written is delivered.
class ConsoleStream final : public ByteStream {
public:
    Io open(std::string&) override {
        open_ = true;
        written_ = 0;
        return Io::ok;
    }
    bool is_open() const override { return open_; }
    void close() override { open_ = false; }
    ssize_t write(const struct iovec* iov, int count, std::string& error) override;
    bool flush(std::string&) override { return true; }
    uint64_t confirmed() override { return written_; }
    bool peer_closed() override { return false; }
    int fd() const override { return 1; }

private:
    bool open_ = false;
    uint64_t written_ = 0;
};

}  // namespace polymur
