// polymur-sink: a Graphite destination for the benchmark (bench/compare.py). Listens on
// 127.0.0.1:--port (0: ephemeral), prints `polymur-sink: port=N`, accepts any number of connections
// and counts lines (memchr over 1 MiB reads). With --latency it reads the value field of each line as
// the send time written by polymur-loadgen --latency (CLOCK_MONOTONIC ns) and records the end-to-end
// latency in a fixed log-linear histogram (< 1% relative error; no allocation per line).
//
// Ends by itself after --expect lines, after --idle-timeout seconds without data or new connections,
// after --max-seconds, or on SIGTERM/SIGINT; then prints one line (count, first/last arrival, rate,
// p50/p99/max latency) and writes the same to --stats-file (plus the raw histogram on a `hist=` line).
// --status-file is rewritten (atomically) every 200 ms with the running count, for a runner to poll.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "clock.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using polymur::bench::mono_ns;

struct Options {
    int port = 0;
    uint64_t expect = 0;
    double idle_timeout = 10;
    double max_seconds = 600;
    bool latency = false;
    uint64_t latency_skip = 0;
    std::string status_file, stats_file;
};

[[noreturn]] void usage(const char* why) {
    if (why) std::fprintf(stderr, "polymur-sink: %s\n", why);
    std::fprintf(stderr,
                 "usage: polymur-sink [--port P] [--expect N] [--idle-timeout S] [--max-seconds S]\n"
                 "                    [--latency [--latency-skip N]] [--status-file F] [--stats-file F]\n");
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") usage(nullptr);
        if (arg.rfind("--", 0) != 0) usage(("unexpected argument " + arg).c_str());
        std::string name = arg.substr(2), value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
            has_value = true;
        }
        if (name == "latency") {
            o.latency = true;
            continue;
        }
        if (!has_value) {
            if (i + 1 >= argc) usage(("--" + name + " needs a value").c_str());
            value = argv[++i];
        }
        char* end = nullptr;
        double num = std::strtod(value.c_str(), &end);
        bool numeric = !value.empty() && *end == 0 && num >= 0;
        if (name == "status-file") o.status_file = value;
        else if (name == "stats-file") o.stats_file = value;
        else if (!numeric) usage(("bad value for --" + name).c_str());
        else if (name == "port") o.port = static_cast<int>(num);
        else if (name == "expect") o.expect = static_cast<uint64_t>(num);
        else if (name == "idle-timeout") o.idle_timeout = num;
        else if (name == "max-seconds") o.max_seconds = num;
        else if (name == "latency-skip") o.latency_skip = static_cast<uint64_t>(num);
        else usage(("unknown option --" + name).c_str());
    }
    if (o.port > 65535) usage("bad --port");
    return o;
}

// Log-linear histogram of nanoseconds: exact below 128, then 64 sub-buckets per power of two.
class Histogram {
public:
    static constexpr size_t kBuckets = 128 + 57 * 64;
    void add(uint64_t v) {
        ++counts_[index(v)];
        ++total_;
        if (v > max_) max_ = v;
    }
    static size_t index(uint64_t v) {
        if (v < 128) return static_cast<size_t>(v);
        int e = 63 - __builtin_clzll(v);  // >= 7
        int shift = e - 6;
        return 128 + static_cast<size_t>(e - 7) * 64 + static_cast<size_t>((v >> shift) - 64);
    }
    static uint64_t lower(size_t i) {
        if (i < 128) return i;
        size_t e = (i - 128) / 64 + 7, sub = (i - 128) % 64 + 64;
        return static_cast<uint64_t>(sub) << (e - 6);
    }
    static uint64_t middle(size_t i) {
        if (i < 128) return i;
        size_t e = (i - 128) / 64 + 7;
        return lower(i) + (uint64_t(1) << (e - 6)) / 2;
    }
    uint64_t percentile(double p) const {
        if (!total_) return 0;
        uint64_t rank = static_cast<uint64_t>(p * static_cast<double>(total_));
        if (rank >= total_) rank = total_ - 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen > rank) return std::min(middle(i), max_);
        }
        return max_;
    }
    uint64_t total() const { return total_; }
    uint64_t max() const { return max_; }
    uint64_t count_at(size_t i) const { return counts_[i]; }

private:
    std::array<uint64_t, kBuckets> counts_ {};
    uint64_t total_ = 0, max_ = 0;
};

constexpr size_t kCarry = 512;  // a partial line kept between reads (latency mode only)

struct Conn {
    int fd = -1;
    uint32_t carry_len = 0;
    bool carry_overflow = false;
    char carry[kCarry];
};

class Sink {
public:
    explicit Sink(const Options& o) : o_(o), buf_(new char[kRead + kCarry]) {}
    int run();

private:
    static constexpr size_t kRead = 1 << 20;
    void on_accept();
    void on_readable(Conn& c);
    void parse_lines(Conn& c, char* data, size_t len, int64_t now);
    void sample(const char* line, size_t len, int64_t now);
    void write_status(int64_t now, bool final_stats);

    const Options& o_;
    std::unique_ptr<char[]> buf_;
    int listen_fd_ = -1, ep_ = -1;
    std::vector<std::unique_ptr<Conn>> conns_;  // by fd
    uint64_t count_ = 0, bytes_ = 0, connections_ = 0, open_ = 0, latency_seen_ = 0, unparsed_ = 0;
    int64_t first_ns_ = 0, last_ns_ = 0, last_activity_ns_ = 0;
    Histogram hist_;
};

void Sink::on_accept() {
    for (;;) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(static_cast<size_t>(fd) + 1);
        conns_[static_cast<size_t>(fd)] = std::make_unique<Conn>();  // once per connection
        conns_[static_cast<size_t>(fd)]->fd = fd;
        struct epoll_event ev = {};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
        ++connections_;
        ++open_;
        last_activity_ns_ = mono_ns();
    }
}

void Sink::sample(const char* line, size_t len, int64_t now) {
    // name SP value SP timestamp; value is the send time in ns (digits, maybe a fraction).
    const char* sp = static_cast<const char*>(std::memchr(line, ' ', len));
    if (!sp) {
        ++unparsed_;
        return;
    }
    const char* p = sp + 1;
    const char* end = line + len;
    uint64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + static_cast<uint64_t>(*p - '0');
        ++p;
        ++digits;
    }
    if (!digits) {
        ++unparsed_;
        return;
    }
    if (latency_seen_++ < o_.latency_skip) return;
    hist_.add(now > static_cast<int64_t>(v) ? static_cast<uint64_t>(now - static_cast<int64_t>(v)) : 0);
}

void Sink::parse_lines(Conn& c, char* data, size_t len, int64_t now) {
    size_t start = 0;
    if (c.carry_len || c.carry_overflow) {
        char* nl = static_cast<char*>(std::memchr(data, '\n', len));
        if (!nl) {
            size_t add = std::min(len, kCarry - c.carry_len);
            std::memcpy(c.carry + c.carry_len, data, add);
            c.carry_len += static_cast<uint32_t>(add);
            if (add < len) c.carry_overflow = true;
            return;
        }
        size_t part = static_cast<size_t>(nl - data);
        if (!c.carry_overflow && c.carry_len + part <= kCarry) {
            std::memcpy(c.carry + c.carry_len, data, part);
            sample(c.carry, c.carry_len + part, now);
        } else {
            ++unparsed_;
        }
        c.carry_len = 0;
        c.carry_overflow = false;
        start = part + 1;
    }
    while (start < len) {
        char* nl = static_cast<char*>(std::memchr(data + start, '\n', len - start));
        if (!nl) break;
        size_t end = static_cast<size_t>(nl - data);
        sample(data + start, end - start, now);
        start = end + 1;
    }
    size_t rest = len - start;
    if (rest) {
        size_t keep = std::min(rest, kCarry);
        std::memcpy(c.carry, data + start, keep);
        c.carry_len = static_cast<uint32_t>(keep);
        c.carry_overflow = keep < rest;
    }
}

void Sink::on_readable(Conn& c) {
    char* buf = buf_.get();
    for (int round = 0; round < 4; ++round) {
        ssize_t n = read(c.fd, buf, kRead);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            --open_;
            conns_[static_cast<size_t>(c.fd)].reset();
            return;
        }
        int64_t now = mono_ns();
        if (!first_ns_) first_ns_ = now;
        last_ns_ = last_activity_ns_ = now;
        bytes_ += static_cast<uint64_t>(n);
        const char* p = buf;
        const char* end = buf + n;
        while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p))))) {
            ++count_;
            ++p;
        }
        if (o_.latency) parse_lines(c, buf, static_cast<size_t>(n), now);
        if (static_cast<size_t>(n) < kRead) return;
    }
}

void Sink::write_status(int64_t now, bool final_stats) {
    const std::string& path = final_stats ? o_.stats_file : o_.status_file;
    if (path.empty()) return;
    double seconds = (last_ns_ > first_ns_) ? static_cast<double>(last_ns_ - first_ns_) / 1e9 : 0;
    double rate = seconds > 0 ? static_cast<double>(count_) / seconds : 0;
    struct rusage usage = {};
    getrusage(RUSAGE_SELF, &usage);
    double cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
        static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    char line[1024];
    int n = std::snprintf(
        line, sizeof line,
        "cpu_s=%.3f count=%llu bytes=%llu connections=%llu open=%llu first_ns=%lld last_ns=%lld seconds=%.3f "
        "rate=%.0f samples=%llu p50_us=%.1f p99_us=%.1f max_us=%.1f unparsed=%llu now_ns=%lld\n",
        cpu_s, static_cast<unsigned long long>(count_), static_cast<unsigned long long>(bytes_),
        static_cast<unsigned long long>(connections_), static_cast<unsigned long long>(open_),
        static_cast<long long>(first_ns_), static_cast<long long>(last_ns_), seconds, rate,
        static_cast<unsigned long long>(hist_.total()), hist_.percentile(0.50) / 1e3, hist_.percentile(0.99) / 1e3,
        hist_.max() / 1e3, static_cast<unsigned long long>(unparsed_), static_cast<long long>(now));
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return;
    std::fwrite(line, 1, static_cast<size_t>(n), f);
    if (final_stats) {
        std::fputs("hist=", f);
        bool first = true;
        for (size_t i = 0; i < Histogram::kBuckets; ++i) {
            if (!hist_.count_at(i)) continue;
            std::fprintf(f, "%s%llu:%llu", first ? "" : ",", static_cast<unsigned long long>(Histogram::middle(i)),
                         static_cast<unsigned long long>(hist_.count_at(i)));
            first = false;
        }
        std::fputc('\n', f);
    }
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
}

int Sink::run() {
    struct rlimit r = {};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listen_fd_, 4096) != 0) {
        std::fprintf(stderr, "polymur-sink: cannot listen on 127.0.0.1:%d: %s\n", o_.port, std::strerror(errno));
        return 2;
    }
    socklen_t alen = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &alen);
    std::printf("polymur-sink: port=%d\n", ntohs(addr.sin_port));
    std::fflush(stdout);

    ep_ = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev);

    const int64_t start = mono_ns();
    last_activity_ns_ = start;
    const int64_t deadline = start + static_cast<int64_t>(o_.max_seconds * 1e9);
    int64_t next_status = start;
    const char* why = "signal";
    std::array<struct epoll_event, 256> events;
    while (!g_stop) {
        int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i) {
            int fd = events[static_cast<size_t>(i)].data.fd;
            if (fd == listen_fd_) on_accept();
            else if (static_cast<size_t>(fd) < conns_.size() && conns_[static_cast<size_t>(fd)])
                on_readable(*conns_[static_cast<size_t>(fd)]);
        }
        int64_t now = mono_ns();
        if (o_.expect && count_ >= o_.expect) {
            why = "expected count";
            break;
        }
        if (o_.idle_timeout > 0 && now - last_activity_ns_ > static_cast<int64_t>(o_.idle_timeout * 1e9)) {
            why = "idle timeout";
            break;
        }
        if (now > deadline) {
            why = "max-seconds";
            break;
        }
        if (now >= next_status) {
            write_status(now, false);
            next_status = now + 200000000;
        }
    }
    int64_t now = mono_ns();
    write_status(now, false);
    write_status(now, true);
    double seconds = (last_ns_ > first_ns_) ? static_cast<double>(last_ns_ - first_ns_) / 1e9 : 0;
    std::printf(
        "polymur-sink: count=%llu seconds=%.3f rate=%.0f first_ns=%lld last_ns=%lld connections=%llu "
        "samples=%llu p50_us=%.1f p99_us=%.1f max_us=%.1f ended=\"%s\"\n",
        static_cast<unsigned long long>(count_), seconds, seconds > 0 ? static_cast<double>(count_) / seconds : 0,
        static_cast<long long>(first_ns_), static_cast<long long>(last_ns_),
        static_cast<unsigned long long>(connections_), static_cast<unsigned long long>(hist_.total()),
        hist_.percentile(0.50) / 1e3, hist_.percentile(0.99) / 1e3, hist_.max() / 1e3, why);
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    Sink sink(o);
    return sink.run();
}
