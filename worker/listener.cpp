// Listener worker: accepts plaintext connections on the supervisor's listen socket, splits and
// validates lines, and appends each valid line to the ring of every destination it routes to.
#include <event2/event.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "protocol/batch_lines.hpp"
#include "protocol/line.hpp"
#include "route/hash_ring.hpp"
#include "shm/queue.hpp"
#include "worker/heritage.hpp"
#include "worker/http_ingest.hpp"

namespace polymur {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxPrefixedName = 20000;
constexpr int kReadsPerWakeup = 8;  // fairness between connections

struct Connection {
    int fd = -1;
    struct event* read_event = nullptr;
    size_t index = 0;  // position in Listener::connections_
    int64_t last_active_ms = 0;
    bool discarding = false;  // inside an over-long line: skip to the next '\n'
    std::unique_ptr<char[]> tail;  // partial line kept between reads
    uint32_t tail_len = 0;
    uint32_t tail_cap = 0;
    char peer[64] = {};
};

struct Route {
    uint32_t slot;
    uint64_t incarnation;
    bool mirror;  // gets every line: broadcast destinations, and the console in hash-route
    bool in_ring;
    route::Destination destination;
    std::unique_ptr<shm::QueueFile> queue;
    std::unique_ptr<shm::RingProducer> producer;
};

class Listener final : public LineSink {
public:
    explicit Listener(const Heritage& heritage)
        : heritage_(heritage),
          config_(*heritage.config),
          slot_(heritage.control->workers[heritage.index]),
          scratch_(new char[kReadSize + config_.max_line_length + 1]) {}

    int run();
    IngestOutcome ingest(std::string_view lines, std::string_view prefix) override;

private:
    // The routes (indices into routes_) a metric goes to: mirrors, then the ring's choice.
    size_t targets(std::string_view name, uint16_t* out);
    void stamp_now() {
        int64_t now = realtime_ns() / 1000000000;
        if (now == now_s_) return;
        now_s_ = now;
        now_len_ = static_cast<size_t>(std::snprintf(now_text_, sizeof now_text_, "%lld", static_cast<long long>(now)));
    }
    static void on_accept(evutil_socket_t fd, short, void* self) { static_cast<Listener*>(self)->accept_ready(fd); }
    static void on_read(evutil_socket_t, short, void* conn_ptr);
    static void on_tick(evutil_socket_t, short, void* self) { static_cast<Listener*>(self)->tick(); }
    static void on_stop(evutil_socket_t fd, short, void* self) {
        char drained[16];
        while (::read(fd, drained, sizeof drained) > 0) {}
        event_base_loopbreak(static_cast<Listener*>(self)->base_);
    }
    static void on_resume_accept(evutil_socket_t, short, void* self) {
        auto* l = static_cast<Listener*>(self);
        event_add(l->accept_event_, nullptr);
    }

    void accept_ready(int fd);
    bool should_defer_accept();
    void read_ready(Connection& conn);
    void handle_line(std::string_view line, const Connection& conn);
    void invalid(const Connection& conn, const char* why, std::string_view line);
    void close_connection(Connection& conn);
    void refresh_routes();
    void publish_all();
    void flush_counters();
    void tick();

    const Heritage& heritage_;
    const Config& config_;
    shm::WorkerSlot& slot_;
    std::unique_ptr<char[]> scratch_;
    struct event_base* base_ = nullptr;
    struct event* accept_event_ = nullptr;
    struct event* resume_accept_event_ = nullptr;
    std::vector<Connection*> connections_;
    int deferrals_ = 0;
    std::vector<Route> routes_;
    std::vector<uint16_t> mirrors_;      // indices into routes_
    std::unique_ptr<route::HashRing> ring_;
    std::vector<uint16_t> ring_routes_;  // ring destination index -> index into routes_
    route::HashType hash_type_ = route::HashType::carbon_ch;
    uint64_t generation_ = ~uint64_t(0);

    // Counted locally, flushed to shared memory once per read.
    uint64_t received_ = 0, invalid_ = 0, too_long_ = 0, unroutable_ = 0;
    uint64_t unlogged_invalid_ = 0;
    int64_t last_invalid_log_ms_ = 0;

    // "-1" timestamps become the receive time, formatted once per read.
    int64_t now_s_ = 0;
    char now_text_[24] = {};
    size_t now_len_ = 0;
};

// Workers share one listen socket, and the kernel wakes whichever it likes: left alone, one
// worker can end up with every connection while another idles. A worker holding more connections
// than the least loaded live worker leaves the connection to it, a few times in a row at most
// (that worker may be busy), so connections spread evenly and none waits long.
bool Listener::should_defer_accept() {
    if (deferrals_ >= 3) return false;
    const uint64_t mine = connections_.size();
    const int64_t now = monotonic_ms();
    for (uint32_t w = 0; w < heritage_.control->header.worker_count; ++w) {
        if (w == heritage_.index) continue;
        const shm::WorkerSlot& other = heritage_.control->workers[w];
        if (now - static_cast<int64_t>(other.heartbeat_ms.load(std::memory_order_relaxed)) > 1000) continue;
        if (other.connections.load(std::memory_order_relaxed) < mine) return true;
    }
    return false;
}

void Listener::accept_ready(int listen_fd) {
    for (int i = 0; i < 64; ++i) {
        if (should_defer_accept()) {
            ++deferrals_;
            event_del(accept_event_);
            struct timeval pause {0, 2000};
            event_add(resume_accept_event_, &pause);
            return;
        }
        deferrals_ = 0;
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                LOG_WARN("listener %u: accept failed: %s; pausing accepts for 100 ms", heritage_.index, std::strerror(errno));
                event_del(accept_event_);
                struct timeval pause {0, 100000};
                event_add(resume_accept_event_, &pause);
            }
            return;  // EAGAIN: another worker took it, or the backlog is empty
        }
        auto* conn = new Connection();
        conn->fd = fd;
        conn->last_active_ms = monotonic_ms();
        std::snprintf(conn->peer, sizeof conn->peer, "%s", net::peer_name(fd).c_str());
        conn->read_event = event_new(base_, fd, EV_READ | EV_PERSIST, &Listener::on_read, conn);
        conn->index = connections_.size();
        connections_.push_back(conn);
        event_add(conn->read_event, nullptr);
        slot_.connections.store(connections_.size(), std::memory_order_relaxed);
        slot_.connections_total.fetch_add(1, std::memory_order_relaxed);
    }
}

// libevent hands us the connection; the listener is process-wide.
Listener* g_listener = nullptr;
int g_stop_pipe = -1;

void Listener::on_read(evutil_socket_t, short, void* conn_ptr) { g_listener->read_ready(*static_cast<Connection*>(conn_ptr)); }

void Listener::read_ready(Connection& conn) {
    if (heritage_.control->header.generation.load(std::memory_order_acquire) != generation_) refresh_routes();
    stamp_now();
    for (Route& route : routes_) route.producer->refresh();
    const size_t max_line = config_.max_line_length;
    char* buf = scratch_.get();
    bool closed = false;
    for (int round = 0; round < kReadsPerWakeup; ++round) {
        size_t have = conn.tail_len;
        if (have) std::memcpy(buf, conn.tail.get(), have);
        ssize_t n = ::read(conn.fd, buf + have, kReadSize);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (conn.tail_len && !conn.discarding) invalid(conn, "unterminated line at connection close", {buf, have});
            closed = true;
            break;
        }
        conn.last_active_ms = monotonic_ms();
        size_t end = have + static_cast<size_t>(n);
        size_t start = 0;
        while (start < end) {
            char* nl = static_cast<char*>(std::memchr(buf + start, '\n', end - start));
            if (!nl) break;
            size_t line_end = static_cast<size_t>(nl - buf);
            if (conn.discarding) {
                conn.discarding = false;
            } else if (line_end - start > max_line) {
                ++too_long_;
            } else {
                handle_line({buf + start, line_end - start + 1}, conn);
            }
            start = line_end + 1;
        }
        size_t rest = end - start;
        if (conn.discarding || rest > max_line) {
            if (!conn.discarding) ++too_long_;
            conn.discarding = true;
            rest = 0;
        }
        if (rest > conn.tail_cap) {
            conn.tail_cap = static_cast<uint32_t>(std::min(max_line + 1, std::max<size_t>(rest, 256) * 2));
            conn.tail.reset(new char[conn.tail_cap]);
        }
        if (rest) std::memcpy(conn.tail.get(), buf + start, rest);
        conn.tail_len = static_cast<uint32_t>(rest);
        if (static_cast<size_t>(n) < kReadSize) break;
    }
    publish_all();
    flush_counters();
    if (closed) close_connection(conn);
}

// `line` ends with its '\n'.
void Listener::handle_line(std::string_view line, const Connection& conn) {
    protocol::ParsedLine parsed;
    protocol::LineError error = protocol::parse_line(line.substr(0, line.size() - 1), parsed);
    if (error != protocol::LineError::none) {
        invalid(conn, protocol::describe(error), line.substr(0, line.size() - 1));
        return;
    }
    std::string_view parts[6];
    size_t count, total;
    if (parsed.canonical && parsed.timestamp.data() + parsed.timestamp.size() == line.data() + line.size() - 1) {
        parts[0] = line;
        count = 1;
        total = line.size();
    } else {
        parts[0] = parsed.name;
        parts[1] = " ";
        parts[2] = parsed.value;
        parts[3] = " ";
        parts[4] = parsed.timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed.timestamp;
        parts[5] = "\n";
        count = 6;
        total = parts[0].size() + parts[2].size() + parts[4].size() + 3;
        // A -1 stamped with the time grows the line: what is forwarded is held to the same bound
        // (a carbon-cache drops the connection on a line over 16384 bytes, and what follows with it).
        if (total - 1 > config_.max_line_length) {
            ++too_long_;
            return;
        }
    }
    ++received_;
    uint16_t chosen[shm::kMaxDestinations];
    size_t n = targets(parsed.name, chosen);
    for (size_t k = 0; k < n; ++k) routes_[chosen[k]].producer->append(parts, count, total);
}

size_t Listener::targets(std::string_view name, uint16_t* out) {
    size_t n = 0;
    for (uint16_t m : mirrors_) out[n++] = m;
    if (!ring_) {
        // No ring node, or broadcast to nobody: the line goes nowhere (a console mirror aside).
        if (n == 0 || config_.hash_route()) ++unroutable_;
        return n;
    }
    uint16_t chosen[route::kMaxReplication];
    size_t picked = ring_->lookup(name, config_.replication_factor, config_.diverse_replicas, chosen);
    for (size_t k = 0; k < picked; ++k) {
        // carbon can name one node twice (a one-node ring without diverse replicas); send it once.
        bool repeat = false;
        for (size_t j = 0; j < k; ++j) repeat |= chosen[j] == chosen[k];
        if (!repeat) out[n++] = ring_routes_[chosen[k]];
    }
    return n;
}

// A batch from the HTTP(S) endpoint: all of it is queued, or none of it.
IngestOutcome Listener::ingest(std::string_view lines, std::string_view prefix) {
    if (heritage_.control->header.generation.load(std::memory_order_acquire) != generation_) refresh_routes();
    stamp_now();
    IngestOutcome outcome;
    std::vector<uint64_t> bytes(routes_.size()), counts(routes_.size());
    uint16_t chosen[shm::kMaxDestinations];
    char name[kMaxPrefixedName];
    auto for_each_valid = [&](auto&& visit) {
        protocol::for_each_batch_line(lines, prefix, config_.max_line_length, now_len_, name, visit);
    };
    // First pass: validate and add up what each destination queue must take.
    for_each_valid([&](std::string_view line, const protocol::ParsedLine* parsed, std::string_view full) {
        if (!parsed) {
            ++outcome.invalid;
            return;
        }
        (void)line;
        ++outcome.valid;
        size_t size = full.size() + parsed->value.size() + (parsed->timestamp_is_now ? now_len_ : parsed->timestamp.size()) + 3;
        size_t n = targets(full, chosen);
        for (size_t k = 0; k < n; ++k) bytes[chosen[k]] += size, ++counts[chosen[k]];
    });
    for (size_t r = 0; r < routes_.size(); ++r) {
        if (counts[r]) routes_[r].producer->refresh();
        if (counts[r] && !routes_[r].producer->has_room_for(bytes[r], counts[r])) {
            outcome.accepted = false;
            outcome.never_fits = !routes_[r].producer->could_ever_fit(bytes[r], counts[r]);
            return outcome;
        }
    }
    // Second pass: queue them.
    for_each_valid([&](std::string_view, const protocol::ParsedLine* parsed, std::string_view full) {
        if (!parsed) return;
        std::string_view parts[6] = {full, " ", parsed->value, " ",
                                     parsed->timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed->timestamp, "\n"};
        size_t total = parts[0].size() + parts[2].size() + parts[4].size() + 3;
        size_t n = targets(full, chosen);
        for (size_t k = 0; k < n; ++k) routes_[chosen[k]].producer->append(parts, 6, total);
    });
    publish_all();
    received_ += outcome.valid;
    invalid_ += outcome.invalid;
    flush_counters();
    outcome.accepted = true;
    return outcome;
}

void Listener::invalid(const Connection& conn, const char* why, std::string_view line) {
    ++invalid_;
    int64_t now = monotonic_ms();
    if (now - last_invalid_log_ms_ < 1000) {
        ++unlogged_invalid_;
        return;
    }
    char shown[128];
    size_t n = 0;
    for (unsigned char c : line.substr(0, 80)) shown[n++] = (c >= 0x20 && c < 0x7f && c != '\'') ? static_cast<char>(c) : '?';
    shown[n] = 0;
    LOG_WARN("client %s: invalid line dropped (%s): '%s'%s (%llu more invalid lines since the last report)", conn.peer, why,
             shown, line.size() > 80 ? "..." : "", static_cast<unsigned long long>(unlogged_invalid_));
    unlogged_invalid_ = 0;
    last_invalid_log_ms_ = now;
}

void Listener::close_connection(Connection& conn) {
    event_free(conn.read_event);
    ::close(conn.fd);
    Connection* last = connections_.back();
    connections_[conn.index] = last;
    last->index = conn.index;
    connections_.pop_back();
    slot_.connections.store(connections_.size(), std::memory_order_relaxed);
    delete &conn;
}

void Listener::refresh_routes() {
    publish_all();  // lines already appended belong to the table they were routed by
    uint64_t generation = heritage_.control->header.generation.load(std::memory_order_acquire);
    std::vector<Route> next;
    for (uint32_t slot = 0; slot < shm::kMaxDestinations; ++slot) {
        const shm::DestinationSlot& d = heritage_.control->destinations[slot];
        if (d.state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::SlotState::active)) continue;
        // The console and HTTPS gateways have no ring node: they get every line.
        bool console = d.type != static_cast<uint32_t>(shm::DestinationType::tcp);
        bool in_ring = !console && d.in_ring.load(std::memory_order_acquire) != 0;
        auto same = std::find_if(routes_.begin(), routes_.end(),
                                 [&](const Route& r) { return r.slot == slot && r.incarnation == d.incarnation; });
        if (same != routes_.end()) {
            same->in_ring = in_ring;
            next.push_back(std::move(*same));
            continue;
        }
        std::string text(d.text, strnlen(d.text, sizeof d.text));
        std::string error;
        route::Destination destination;
        if (!console && !route::parse_destination(text, destination, error)) {
            LOG_ERROR("listener %u: %s; not routing to it", heritage_.index, error.c_str());
            continue;
        }
        auto queue = shm::QueueFile::open(queue_path(config_.state_dir, text), error);
        if (!queue) {
            LOG_ERROR("listener %u: destination %s: %s; not routing to it", heritage_.index, text.c_str(), error.c_str());
            continue;
        }
        Route route {slot, d.incarnation, console || !config_.hash_route(), in_ring, std::move(destination), std::move(queue), nullptr};
        route.producer = std::make_unique<shm::RingProducer>(*route.queue, heritage_.index, config_.queue_cap);
        next.push_back(std::move(route));
    }
    // carbon adds ring nodes in configuration order, and collisions depend on it: registration
    // order (the incarnation) reproduces that order.
    std::sort(next.begin(), next.end(), [](const Route& a, const Route& b) { return a.incarnation < b.incarnation; });
    routes_ = std::move(next);
    mirrors_.clear();
    ring_routes_.clear();
    std::vector<route::Destination> members;
    for (size_t i = 0; i < routes_.size(); ++i) {
        if (routes_[i].mirror) {
            mirrors_.push_back(static_cast<uint16_t>(i));
        } else if (routes_[i].in_ring) {
            ring_routes_.push_back(static_cast<uint16_t>(i));
            members.push_back(routes_[i].destination);
        }
    }
    ring_.reset();
    if (!members.empty()) {
        std::string error;
        ring_ = route::HashRing::build(hash_type_, members, error);
        if (!ring_) LOG_ERROR("listener %u: cannot build the hash ring: %s", heritage_.index, error.c_str());
    }
    generation_ = generation;
    slot_.seen_generation.store(generation, std::memory_order_release);
}

void Listener::publish_all() {
    for (Route& route : routes_) route.producer->publish();
}

void Listener::flush_counters() {
    if (received_) slot_.received.fetch_add(std::exchange(received_, 0), std::memory_order_relaxed);
    if (invalid_) slot_.invalid.fetch_add(std::exchange(invalid_, 0), std::memory_order_relaxed);
    if (too_long_) slot_.too_long.fetch_add(std::exchange(too_long_, 0), std::memory_order_relaxed);
    if (unroutable_) slot_.unroutable.fetch_add(std::exchange(unroutable_, 0), std::memory_order_relaxed);
}

void Listener::tick() {
    int64_t now = monotonic_ms();
    slot_.heartbeat_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed);
    if (heritage_.control->header.generation.load(std::memory_order_acquire) != generation_) refresh_routes();
    const uint32_t idle_timeout_s = heritage_.control->header.idle_timeout_s.load(std::memory_order_relaxed);
    if (idle_timeout_s) {
        int64_t limit = static_cast<int64_t>(idle_timeout_s) * 1000;
        for (size_t i = 0; i < connections_.size();) {
            Connection* conn = connections_[i];
            if (now - conn->last_active_ms > limit) {
                LOG_INFO("client %s: closed after %u s idle", conn->peer, idle_timeout_s);
                close_connection(*conn);  // moves the last connection into slot i
            } else {
                ++i;
            }
        }
    }
}

int Listener::run() {
    g_listener = this;
    route::parse_hash_type(config_.hash_type, hash_type_);
    // One producer per ring, even while a listener of a previous polymur is still exiting.
    UniqueFd lock = lock_file(config_.state_dir + "/listener-" + std::to_string(heritage_.index) + ".lock",
                              "listener " + std::to_string(heritage_.index));
    if (!lock) return kExitCrashed;
    base_ = event_base_new();
    if (!base_) {
        LOG_ERROR("listener %u: cannot create event base", heritage_.index);
        return kExitCrashed;
    }
    refresh_routes();
    resume_accept_event_ = evtimer_new(base_, &Listener::on_resume_accept, this);
    if (heritage_.listen_fd >= 0) {
        accept_event_ = event_new(base_, heritage_.listen_fd, EV_READ | EV_PERSIST, &Listener::on_accept, this);
        event_add(accept_event_, nullptr);
    }
    std::unique_ptr<HttpIngest> https, http;
    std::string error;
    if (heritage_.https_fd >= 0 && !(https = start_http_ingest(base_, heritage_.https_fd, true, config_, *this, error))) {
        LOG_ERROR("listener %u: HTTPS ingest: %s", heritage_.index, error.c_str());
        return kExitDoNotRestart;
    }
    if (heritage_.http_fd >= 0 && !(http = start_http_ingest(base_, heritage_.http_fd, false, config_, *this, error))) {
        LOG_ERROR("listener %u: HTTP ingest: %s", heritage_.index, error.c_str());
        return kExitDoNotRestart;
    }
    struct event* tick = event_new(base_, -1, EV_PERSIST, &Listener::on_tick, this);
    struct timeval tick_interval {0, 100000};
    event_add(tick, &tick_interval);
    // Not evsignal: in a forked child the supervisor's event base still claims libevent's signal
    // handling, so the child keeps its own self-pipe.
    int stop_pipe[2];
    if (pipe2(stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return kExitCrashed;
    g_stop_pipe = stop_pipe[1];
    struct sigaction sa {};
    sa.sa_handler = [](int) {
        ssize_t ignored = ::write(g_stop_pipe, "x", 1);
        (void)ignored;
    };
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    struct event* stop = event_new(base_, stop_pipe[0], EV_READ | EV_PERSIST, &Listener::on_stop, this);
    event_add(stop, nullptr);
    slot_.heartbeat_ms.store(static_cast<uint64_t>(monotonic_ms()), std::memory_order_relaxed);

    event_base_dispatch(base_);

    // Everything already appended is published; partial lines in connections are the only loss.
    publish_all();
    flush_counters();
    while (!connections_.empty()) close_connection(*connections_.back());
    slot_.connections.store(0, std::memory_order_relaxed);
    return 0;
}

}  // namespace

int run_listener(const Heritage& heritage) {
    Listener listener(heritage);
    return listener.run();
}

}  // namespace polymur
