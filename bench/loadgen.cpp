// polymur-loadgen: Graphite plaintext load generator for the benchmark (bench/compare.py).
//
// Load mode: opens --connections TCP connections to --host:--port, spreads them over --threads
// threads and sends `collectd.hostNNNN.cpu-N.cpu-<kind> <value> <unix-seconds>\n` lines until
// --count metrics were sent or --duration seconds passed (and never longer than --max-seconds).
// --rate paces the aggregate send rate (metrics/s) in 1 ms batches; --latency puts the send time
// (CLOCK_MONOTONIC, nanoseconds) in the value field, for polymur-sink --latency on the same machine.
// Prints one line: `polymur-loadgen: sent=N seconds=S rate=R ...`.
//
// Idle mode (--idle N): opens N connections, prints `polymur-loadgen: idle opened=N ...`, holds them
// --hold seconds (or until SIGTERM/SIGINT) without sending anything, closes them and exits.
//
// Lines are formatted straight into a per-thread buffer from a name table built at start:
// no heap allocation per line or per batch.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "clock.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Options {
    std::string host = "127.0.0.1";
    int port = 2003;
    int connections = 4;
    int threads = 0;           // 0: min(connections, 4)
    uint64_t count = 0;        // 0: unbounded (then --duration must be set)
    double duration = 0;       // seconds; 0: unbounded (then --count must be set)
    double max_seconds = 300;  // hard bound, whatever else is set
    double rate = 0;           // aggregate metrics/s; 0: as fast as possible
    uint32_t series = 100000;
    bool latency = false;
    int idle = 0;
    double hold = 10;
    std::string stats_file;
    std::string names_file;  // metric names, one a line (the first field): instead of the collectd names
};

std::atomic<bool> g_stop {false};

void on_signal(int) { g_stop.store(true); }

using polymur::bench::mono_ns;

void sleep_until_ns(int64_t t) {
    struct timespec ts = {};
    ts.tv_sec = t / 1000000000;
    ts.tv_nsec = t % 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop.load()) {}
}

[[noreturn]] void usage(const char* why) {
    if (why) std::fprintf(stderr, "polymur-loadgen: %s\n", why);
    std::fprintf(stderr,
                 "usage: polymur-loadgen --port P [--host 127.0.0.1] [--connections N] [--threads T]\n"
                 "                       (--count M | --duration S) [--rate METRICS_PER_S] [--series K]\n"
                 "                       [--latency] [--max-seconds S] [--stats-file F] [--names FILE]\n"
                 "       polymur-loadgen --port P --idle N [--hold S]\n");
    std::exit(2);
}

double to_double(std::string_view name, const std::string& v) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || d < 0) usage(("bad value for --" + std::string(name)).c_str());
    return d;
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
        if (name == "host") o.host = value;
        else if (name == "port") o.port = static_cast<int>(to_double(name, value));
        else if (name == "connections") o.connections = static_cast<int>(to_double(name, value));
        else if (name == "threads") o.threads = static_cast<int>(to_double(name, value));
        else if (name == "count") o.count = static_cast<uint64_t>(to_double(name, value));
        else if (name == "duration") o.duration = to_double(name, value);
        else if (name == "max-seconds") o.max_seconds = to_double(name, value);
        else if (name == "rate") o.rate = to_double(name, value);
        else if (name == "series") o.series = static_cast<uint32_t>(to_double(name, value));
        else if (name == "idle") o.idle = static_cast<int>(to_double(name, value));
        else if (name == "hold") o.hold = to_double(name, value);
        else if (name == "stats-file") o.stats_file = value;
        else if (name == "names") o.names_file = value;
        else usage(("unknown option --" + name).c_str());
    }
    if (o.port <= 0 || o.port > 65535) usage("--port is required");
    if (o.idle == 0) {
        if (o.count == 0 && o.duration == 0) usage("give --count or --duration (the run must end by itself)");
        if (o.connections < 1) usage("--connections must be at least 1");
        if (o.series < 1) usage("--series must be at least 1");
        if (o.threads <= 0) o.threads = std::min(o.connections, 4);
        o.threads = std::min(o.threads, o.connections);
    }
    if (o.max_seconds <= 0) usage("--max-seconds must be positive");
    return o;
}

void raise_nofile() {
    struct rlimit r = {};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

int connect_to(const Options& o, int64_t deadline_ns) {
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "polymur-loadgen: --host must be an IPv4 address\n");
        std::exit(2);
    }
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            std::fprintf(stderr, "polymur-loadgen: socket: %s\n", std::strerror(errno));
            return -1;
        }
        struct timeval tv = {2, 0};  // a connect stuck in SYN retries gives up and is retried
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            struct timeval none = {0, 0};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
            return fd;
        }
        int err = errno;
        close(fd);
        if (g_stop.load() || mono_ns() > deadline_ns ||
            (err != ECONNREFUSED && err != EINPROGRESS && err != EAGAIN && err != ETIMEDOUT && err != EINTR)) {
            std::fprintf(stderr, "polymur-loadgen: connect %s:%d: %s\n", o.host.c_str(), o.port, std::strerror(err));
            return -1;
        }
        struct timespec pause = {0, 20000000};
        nanosleep(&pause, nullptr);
    }
}

// Distinct series, collectd style: 64 per host (16 CPUs x 4 kinds). Built once.
struct NameTable {
    std::vector<char> text;
    std::vector<uint32_t> offset;  // series i is text[offset[i], offset[i + 1])

    explicit NameTable(uint32_t series) {
        static const char* const kinds[4] = {"cpu-user", "cpu-system", "cpu-idle", "cpu-wait"};
        offset.reserve(series + 1);
        text.reserve(static_cast<size_t>(series) * 40);
        char one[96];
        for (uint32_t i = 0; i < series; ++i) {
            offset.push_back(static_cast<uint32_t>(text.size()));
            int n = std::snprintf(one, sizeof one, "collectd.host%04u.cpu-%u.%s", i / 64, (i / 4) % 16, kinds[i % 4]);
            text.insert(text.end(), one, one + n);
        }
        offset.push_back(static_cast<uint32_t>(text.size()));
    }
    // The first field of each line of `path` (bench/rules_compare.py: the names a rules file routes).
    explicit NameTable(const std::string& path) {
        std::ifstream in(path);
        if (!in) usage(("cannot read --names " + path).c_str());
        std::string line;
        while (std::getline(in, line)) {
            const std::string name = line.substr(0, line.find(' '));
            if (name.empty()) continue;
            offset.push_back(static_cast<uint32_t>(text.size()));
            text.insert(text.end(), name.begin(), name.end());
        }
        if (offset.empty()) usage(("no names in " + path).c_str());
        offset.push_back(static_cast<uint32_t>(text.size()));
    }
    std::string_view name(uint32_t i) const { return {text.data() + offset[i], offset[i + 1] - offset[i]}; }
};

struct ThreadResult {
    uint64_t sent = 0;
    uint64_t errors = 0;
};

bool send_all(int fd, const char* data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

void run_sender(const Options& o, const NameTable& names, const std::vector<int>& fds, int thread_index, uint64_t quota,
                double thread_rate, int64_t start_ns, int64_t end_ns, ThreadResult& result) {
    constexpr size_t kBufSize = 64 * 1024;
    constexpr size_t kMaxLine = 256;
    std::vector<char> buffer(kBufSize);  // once per thread
    char* buf = buffer.data();
    // Unpaced: fill the buffer. Paced: one millisecond's worth per batch, so lines leave on time.
    uint64_t batch_lines = ~uint64_t(0);
    if (thread_rate > 0) batch_lines = std::max<uint64_t>(1, static_cast<uint64_t>(thread_rate / 1000.0));
    const uint32_t series = static_cast<uint32_t>(names.offset.size() - 1);
    uint32_t next_series = static_cast<uint32_t>((static_cast<uint64_t>(series) * thread_index / o.threads) % series);
    uint64_t sent = 0, seq = 0;
    size_t conn = 0;
    int64_t ts_s = 0;
    char ts_text[24];
    size_t ts_len = 0;
    while (!g_stop.load(std::memory_order_relaxed)) {
        if (quota && sent >= quota) break;
        int64_t now = mono_ns();
        if (now >= end_ns) break;
        if (thread_rate > 0) {
            int64_t due = start_ns + static_cast<int64_t>(static_cast<double>(sent) * 1e9 / thread_rate);
            if (due > now) {
                sleep_until_ns(std::min(due, end_ns));
                continue;
            }
        }
        struct timespec wall = {};
        clock_gettime(CLOCK_REALTIME, &wall);
        if (wall.tv_sec != ts_s) {
            ts_s = wall.tv_sec;
            ts_len = static_cast<size_t>(std::to_chars(ts_text, ts_text + sizeof ts_text, ts_s).ptr - ts_text);
        }
        char value[32];
        size_t value_len = 0;
        if (o.latency)
            value_len = static_cast<size_t>(std::to_chars(value, value + sizeof value, mono_ns()).ptr - value);
        uint64_t lines = 0;
        size_t len = 0;
        uint64_t want = batch_lines;
        if (quota) want = std::min(want, quota - sent);
        while (lines < want && len + kMaxLine <= kBufSize) {
            std::string_view name = names.name(next_series);
            if (++next_series == series) next_series = 0;
            std::memcpy(buf + len, name.data(), name.size());
            len += name.size();
            buf[len++] = ' ';
            if (o.latency) {
                std::memcpy(buf + len, value, value_len);
                len += value_len;
            } else {  // gauge-like values: "123.45"
                ++seq;
                len = static_cast<size_t>(std::to_chars(buf + len, buf + kBufSize, seq % 1000).ptr - buf);
                uint64_t cents = (seq * 7) % 100;
                buf[len++] = '.';
                buf[len++] = static_cast<char>('0' + cents / 10);
                buf[len++] = static_cast<char>('0' + cents % 10);
            }
            buf[len++] = ' ';
            std::memcpy(buf + len, ts_text, ts_len);
            len += ts_len;
            buf[len++] = '\n';
            ++lines;
        }
        if (!send_all(fds[conn], buf, len)) {
            ++result.errors;
            std::fprintf(stderr, "polymur-loadgen: send: %s\n", std::strerror(errno));
            break;
        }
        sent += lines;
        if (++conn == fds.size()) conn = 0;
    }
    result.sent = sent;
}

int run_idle(const Options& o) {
    raise_nofile();
    int64_t start = mono_ns();
    int64_t deadline = start + static_cast<int64_t>(o.max_seconds * 1e9);
    std::vector<int> fds;
    fds.reserve(static_cast<size_t>(o.idle));
    for (int i = 0; i < o.idle && !g_stop.load(); ++i) {
        int fd = connect_to(o, deadline);
        if (fd < 0) break;
        fds.push_back(fd);
    }
    double opened_s = static_cast<double>(mono_ns() - start) / 1e9;
    std::printf("polymur-loadgen: idle opened=%zu wanted=%d seconds=%.3f\n", fds.size(), o.idle, opened_s);
    std::fflush(stdout);
    int64_t until = std::min(mono_ns() + static_cast<int64_t>(o.hold * 1e9), deadline);
    while (!g_stop.load() && mono_ns() < until) {
        struct timespec pause = {0, 50000000};
        nanosleep(&pause, nullptr);
    }
    for (int fd : fds) close(fd);
    std::printf("polymur-loadgen: idle closed=%zu\n", fds.size());
    return static_cast<int>(fds.size()) == o.idle ? 0 : 1;
}

int run_load(const Options& o) {
    raise_nofile();
    NameTable names = o.names_file.empty() ? NameTable(o.series) : NameTable(o.names_file);
    int64_t connect_deadline = mono_ns() + 30 * int64_t(1000000000);
    std::vector<std::vector<int>> fds(static_cast<size_t>(o.threads));
    for (int i = 0; i < o.connections; ++i) {
        int fd = connect_to(o, connect_deadline);
        if (fd < 0) return 1;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fds[static_cast<size_t>(i % o.threads)].push_back(fd);
    }
    std::vector<ThreadResult> results(static_cast<size_t>(o.threads));
    std::vector<std::thread> threads;
    int64_t start = mono_ns();
    double bound = o.max_seconds;
    if (o.duration > 0) bound = std::min(bound, o.duration);
    int64_t end = start + static_cast<int64_t>(bound * 1e9);
    for (int t = 0; t < o.threads; ++t) {
        uint64_t quota = 0;
        if (o.count) quota = o.count / o.threads + (static_cast<uint64_t>(t) < o.count % o.threads ? 1 : 0);
        double thread_rate = o.rate > 0 ? o.rate / o.threads : 0;
        threads.emplace_back(run_sender, std::cref(o), std::cref(names), std::cref(fds[static_cast<size_t>(t)]), t,
                             quota, thread_rate, start, end, std::ref(results[static_cast<size_t>(t)]));
    }
    for (auto& t : threads) t.join();
    int64_t finish = mono_ns();
    uint64_t sent = 0, errors = 0;
    for (auto& r : results) {
        sent += r.sent;
        errors += r.errors;
    }
    for (auto& group : fds)
        for (int fd : group) {
            shutdown(fd, SHUT_WR);
            close(fd);
        }
    double seconds = static_cast<double>(finish - start) / 1e9;
    struct rusage usage = {};
    getrusage(RUSAGE_SELF, &usage);
    double cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
        static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    double rate = seconds > 0 ? static_cast<double>(sent) / seconds : 0;
    bool timed_out = o.count && sent < o.count && errors == 0;
    char line[512];
    std::snprintf(line, sizeof line,
                  "polymur-loadgen: sent=%llu seconds=%.3f rate=%.0f connections=%d threads=%d errors=%llu "
                  "target_rate=%.0f latency=%d cpu_s=%.3f start_ns=%lld end_ns=%lld%s\n",
                  static_cast<unsigned long long>(sent), seconds, rate, o.connections, o.threads,
                  static_cast<unsigned long long>(errors), o.rate, o.latency ? 1 : 0, cpu_s,
                  static_cast<long long>(start), static_cast<long long>(finish),
                  timed_out ? " stopped=time-bound" : "");
    std::fputs(line, stdout);
    std::fflush(stdout);
    if (!o.stats_file.empty()) {
        if (FILE* f = std::fopen(o.stats_file.c_str(), "w")) {
            std::fputs(line, f);
            std::fclose(f);
        }
    }
    return errors ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return o.idle ? run_idle(o) : run_load(o);
}
