// polymur-transport-sink: the receiving end of bench/output_transports.py, fast enough that an output
// process, not the receiver, is what the benchmark measures. Listens on 127.0.0.1:--port, takes one
// connection at a time, optionally as a TLS server (--cert, --key; OpenSSL directly), and reads through
// polymur's own stream decoder (protocol/stream_codec) when the first bytes are gzip's or an LZ4 frame's,
// as polymur's listeners do. It counts the bytes on the wire, the decoded bytes and the lines.
//
// Whenever it has read nothing for 200 ms after reading something it prints one line to stdout:
//   wire=N decoded=N lines=N first_ns=T last_ns=T
// (totals since start; T on CLOCK_MONOTONIC: the first and the last read that returned bytes).
// Runs until SIGTERM.
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "clock.hpp"

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "protocol/newlines.hpp"
#include "protocol/stream_codec.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using polymur::bench::mono_ns;

constexpr size_t kReadBuffer = 1 << 20;  // bytes per read(2) of plaintext
// TLS records read ahead per read(2). Not more: OpenSSL moves what is left in its buffer to the front
// at every record, so the cost per record grows with the buffer.
constexpr size_t kTlsReadAhead = 64 << 10;

struct Totals {
    uint64_t wire = 0, decoded = 0, lines = 0;
    int64_t first_ns = 0, last_ns = 0;
    bool reported = true;
};

uint64_t count_lines(const char* p, size_t n) {
    uint64_t lines = 0;
    polymur::protocol::for_each_newline(p, n, [&](size_t) { ++lines; });
    return lines;
}

void report(Totals& t) {
    if (t.reported) return;
    std::printf("wire=%llu decoded=%llu lines=%llu first_ns=%lld last_ns=%lld\n",
                static_cast<unsigned long long>(t.wire), static_cast<unsigned long long>(t.decoded),
                static_cast<unsigned long long>(t.lines), static_cast<long long>(t.first_ns),
                static_cast<long long>(t.last_ns));
    std::fflush(stdout);
    t.reported = true;
}

// One connection, until it closes (or SIGTERM).
void serve(int fd, SSL_CTX* ctx, Totals& t, std::vector<char>& in, std::vector<char>& out) {
    SSL* ssl = nullptr;
    if (ctx) {
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            ERR_print_errors_fp(stderr);
            SSL_free(ssl);
            return;
        }
    }
    std::unique_ptr<polymur::protocol::StreamDecoder> decoder;
    bool sniffed = false;
    std::string head;  // the first bytes, until they say what the stream is
    while (!g_stop) {
        if (!ssl || !SSL_has_pending(ssl)) {  // records read ahead are not on the socket any more
            struct pollfd pfd = {fd, POLLIN, 0};
            if (poll(&pfd, 1, 200) == 0) {
                report(t);
                continue;
            }
        }
        ssize_t n = ssl ? SSL_read(ssl, in.data(), static_cast<int>(in.size())) : ::read(fd, in.data(), in.size());
        if (n <= 0) break;
        const int64_t now = mono_ns();
        if (!t.first_ns) t.first_ns = now;
        t.last_ns = now;
        t.reported = false;
        t.wire += static_cast<uint64_t>(n);
        std::string_view data(in.data(), static_cast<size_t>(n));
        if (!sniffed) {
            head.append(data);
            polymur::protocol::Sniffed kind = polymur::protocol::sniff_compression(head);
            if (kind == polymur::protocol::Sniffed::need_more) continue;
            sniffed = true;
            if (kind != polymur::protocol::Sniffed::plain)
                decoder = std::make_unique<polymur::protocol::StreamDecoder>(kind == polymur::protocol::Sniffed::gzip
                                                                                 ? polymur::protocol::Compression::gzip
                                                                                 : polymur::protocol::Compression::lz4);
            data = head;
        }
        if (!decoder) {
            t.decoded += data.size();
            t.lines += count_lines(data.data(), data.size());
        } else {
            for (;;) {
                size_t consumed = 0, produced = 0;
                if (!decoder->decode(data, out.data(), out.size(), consumed, produced)) {
                    std::fprintf(stderr, "polymur-transport-sink: %s\n", decoder->error().c_str());
                    g_stop = 1;
                    break;
                }
                t.decoded += produced;
                t.lines += count_lines(out.data(), produced);
                data.remove_prefix(consumed);
                if (data.empty() && produced < out.size()) break;
            }
        }
        if (sniffed) head.clear();
    }
    if (ssl) SSL_free(ssl);
}

}  // namespace

int main(int argc, char** argv) {
    int port = 0;
    std::string cert, key;
    size_t tls_read_ahead = kTlsReadAhead;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string opt = argv[i];
        if (opt == "--port") port = std::atoi(argv[i + 1]);
        else if (opt == "--cert") cert = argv[i + 1];
        else if (opt == "--key") key = argv[i + 1];
        else if (opt == "--tls-read-ahead") tls_read_ahead = std::strtoull(argv[i + 1], nullptr, 10);
        else {
            std::fprintf(stderr,
                         "usage: polymur-transport-sink --port N [--cert PEM --key PEM [--tls-read-ahead BYTES]]\n");
            return 2;
        }
    }
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    SSL_CTX* ctx = nullptr;
    if (!cert.empty()) {
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        // Read ahead into a large buffer: one read(2) brings many records, instead of two reads (header,
        // then body) per 16 KiB record, which made this receiver, not the sender, the bottleneck.
        SSL_CTX_set_read_ahead(ctx, 1);
        SSL_CTX_set_default_read_buffer_len(ctx, tls_read_ahead);
    }
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(server, 16) != 0) {
        std::perror("polymur-transport-sink: bind");
        return 1;
    }
    std::vector<char> in(kReadBuffer), out(4 << 20);
    Totals totals;
    while (!g_stop) {
        struct pollfd pfd = {server, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) continue;
        int fd = accept(server, nullptr, nullptr);
        if (fd < 0) continue;
        serve(fd, ctx, totals, in, out);
        close(fd);
        report(totals);
    }
    report(totals);
    if (ctx) SSL_CTX_free(ctx);
    close(server);
    return 0;
}
