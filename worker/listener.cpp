// Listener worker: accepts plaintext, TLS and pickle connections on the supervisor's listen sockets and
// reads its UDP socket, splits and validates lines (pickle frames become lines first, TLS records are
// decrypted first), and appends each valid line to the ring of every destination it routes to.
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/guard.hpp"
#include "common/heritage.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/rate_limited_log.hpp"
#include "protocol/batch_lines.hpp"
#include "protocol/line.hpp"
#include "protocol/newlines.hpp"
#include "protocol/pickle.hpp"
#include "protocol/tag_normalize.hpp"
#include "route/carbon_ch_ahead.hpp"
#include "route/position_slots.hpp"
#include "route/routing_table.hpp"
#include "shm/queue.hpp"
#include "worker/aggregator_feed.hpp"
#include "worker/http_ingest.hpp"
#include "worker/input_stream.hpp"
#include "worker/linger.hpp"
#include "worker/live_routes.hpp"
#include "worker/stop_pipe.hpp"
#include "worker/tls.hpp"

namespace polymur {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxPrefixedName = 20000;
// A line grows by its namespace prefix (at most the whole prefixed name) and a written-out "-1".
static_assert(kMaxPrefixedName + 32 <= shm::kMaxLineGrowth);
constexpr int kReadsPerWakeup = 8;  // fairness between connections
constexpr size_t kUdpBatch = 32;    // datagrams per recvmmsg
// A round of events that took this many lines, or filled a read buffer, or left a consumer this far
// behind, is full speed or backpressure: the listener does not linger (run_loop, worker/linger.hpp).
constexpr uint64_t kBusyRoundLines = 2000;
constexpr int64_t kIdleScanMs = 1000;  // --idle-timeout is in seconds: one pass over the connections a second
constexpr size_t kUdpDatagramMax = 65536;
// TLS handshakes in progress at once in one worker; a new connection beyond it closes the oldest
// (a flood of clients that never finish their handshake cannot lock the others out).
constexpr size_t kMaxHandshakes = 256;

enum class Input : uint8_t { line, pickle, udp };

// What follows the name (the value and the timestamp as received): what a rule's validate clause tests.
std::string_view line_data(const protocol::ParsedLine& parsed) {
    if (parsed.timestamp.empty() || parsed.timestamp.data() < parsed.value.data()) return parsed.value;
    return {parsed.value.data(),
            static_cast<size_t>(parsed.timestamp.data() + parsed.timestamp.size() - parsed.value.data())};
}

class Listener;

// One client connection, owned by Listener::connections_; libevent's read callback gets it and finds
// its listener through `owner` (no process-wide pointer).
struct Connection {
    Listener* owner = nullptr;
    Input input = Input::line;
    bool first_read = true;
    const struct sockaddr_storage* udp_sender = nullptr;  // UDP: the datagram being read, named only in logs
    bool in_handshake = false;                            // TLS: accepted, handshake not yet complete
    int fd = -1;
    struct event* read_event = nullptr;
    struct event* write_event = nullptr;  // TLS: wakes the reader when the handshake must write first
    std::unique_ptr<InputStream> stream;  // TLS (--tls-listen-addr); null: read the socket directly
    size_t index = 0;                     // position in Listener::connections_
    int64_t accepted_ms = 0;
    int64_t last_active_ms = 0;
    bool discarding = false;       // inside an over-long line: skip to the next '\n'
    std::unique_ptr<char[]> tail;  // partial line (pickle: partial frames) kept between reads
    uint32_t tail_len = 0;
    uint32_t tail_cap = 0;
    char peer[64] = {};
};

class Listener final : public LineSink {
public:
    explicit Listener(const Heritage& heritage)
            : heritage_(heritage), config_(*heritage.config), slot_(heritage.control->workers[heritage.index]),
              scratch_(new char[kReadSize + config_.max_line_length + 1]),
              scanned_(new protocol::ScannedLine[kReadSize + config_.max_line_length + 1]),
              routes_(heritage, LiveRoutes::Writer::listener), result_(std::make_unique<route::RouteResult>()) {}

    int run();
    IngestOutcome ingest(std::string_view lines, std::string_view prefix) override;

private:
    // Routes a line: visit(target index, name to write) for every copy, the mirrors' (the name as received)
    // first, then the table's (the name its rewrites made). `count` counts what the table did with it
    // (once per line: the HTTP path routes each line twice).
    template <class Visit>
    void copies(std::string_view name, std::string_view data, bool count, Visit&& visit);
    void follow_routes() {
        if (routes_.stale()) {
            routes_.refresh();
            slot_.seen_generation.store(routes_.generation(), std::memory_order_release);
            note_table();
        }
    }
    // After every refresh: whether the table sends every line to the same slots (broadcast), so that copies()
    // need not look each line up.
    // Whether a line no destination took counts as unroutable: not in plain broadcast with a console mirror,
    // which takes every line.
    bool nowhere_is_unroutable() { return routes_.mirrors().empty() || hash_route_ || routes_.rules(); }
    void note_table() {
        fixed_slots_ = routes_.table() && routes_.table()->sends_every_name_to(fixed_slot_list_);
        one_cluster_ = !fixed_slots_ && routes_.table() && routes_.table()->routes_by_one_cluster();
        hash_ahead_ = !config_.tag_normalize && routes_.table() && routes_.table()->hashes_carbon_ch();
        by_position_ = one_cluster_ && route::PositionSlots::applies_to(*routes_.table());
        if (by_position_) {
            if (!position_slots_) position_slots_ = std::make_unique<route::PositionSlots>();
            position_slots_->reset();  // another table, or the same one changed
        }
    }
    void stamp_now() {
        int64_t now = realtime_ns() / 1000000000;
        if (now == now_s_) return;
        now_s_ = now;
        now_len_ = static_cast<size_t>(std::snprintf(now_text_, sizeof now_text_, "%lld", static_cast<long long>(now)));
    }
    static void on_accept(evutil_socket_t fd, short, void* self) {
        guarded("listener: accept", [&] { static_cast<Listener*>(self)->accept_ready(fd, Input::line); });
    }
    static void on_accept_pickle(evutil_socket_t fd, short, void* self) {
        guarded("listener: accept", [&] { static_cast<Listener*>(self)->accept_ready(fd, Input::pickle); });
    }
    static void on_accept_tls(evutil_socket_t fd, short, void* self) {
        guarded("listener: accept", [&] { static_cast<Listener*>(self)->accept_ready(fd, Input::line, true); });
    }
    static void on_udp(evutil_socket_t fd, short, void* self) {
        guarded("listener: udp", [&] { static_cast<Listener*>(self)->udp_ready(fd); });
    }
    static void on_read(evutil_socket_t, short, void* conn_ptr);
    static void on_tick(evutil_socket_t, short, void* self) {
        guarded("listener: tick", [&] { static_cast<Listener*>(self)->tick(); });
    }
    static void on_stop(evutil_socket_t fd, short, void* self) {
        char drained[16];
        while (::read(fd, drained, sizeof drained) > 0) {}
        event_base_loopbreak(static_cast<Listener*>(self)->base_);
    }
    static void on_resume_accept(evutil_socket_t, short, void* self) {
        auto* l = static_cast<Listener*>(self);
        if (l->accept_event_) event_add(l->accept_event_, nullptr);
        if (l->pickle_accept_event_) event_add(l->pickle_accept_event_, nullptr);
        if (l->tls_accept_event_) event_add(l->tls_accept_event_, nullptr);
    }

    void accept_ready(int fd, Input input, bool tls = false);
    void pause_accepts(long microseconds);
    bool should_defer_accept();
    void read_ready(Connection& conn);
    void read_pickle(Connection& conn);
    void handle_pickle_metrics(const Connection& conn);
    void refuse_pickle(const Connection& conn, const char* why);
    void hint_pickle_on_line_port(const Connection& conn);
    void udp_ready(int fd);
    void setup_udp();
    // `scanned`: what scan_lines found of the line (nothing, for a line that did not come from it).
    void handle_line(std::string_view line, const Connection& conn, const protocol::ScannedLine& scanned = {});
    // Broadcast (fixed_slots_): a valid line queued as received joins the run of such lines just before it
    // in the read buffer; anything else ends the run first.
    void take_line(std::string_view line, const protocol::ScannedLine& scanned, const Connection& conn);
    // A line queued as received (with its '\n'): it extends the run it follows, or ends that one and starts its own.
    void join_run(std::string_view line) {
        if (run_.lines && run_.begin + run_.bytes == line.data()) {
            run_.bytes += line.size();
            ++run_.lines;
            return;
        }
        flush_run();
        run_ = {line.data(), line.size(), 1};
    }
    void start_runs();  // once per read: where runs go
    void flush_run();   // queues the run: one copy into each ring
    void handle_lines_hashed_ahead(const std::string_view* lines, const protocol::ScannedLine* scanned, size_t count,
                                   const Connection& conn);
    void queue_by_position(const std::string_view* lines, const protocol::ParsedLine* parsed,
                           const std::string_view* names, size_t count);
    // A valid line ready to queue: the parse, and the parts to write (the line itself, or rebuilt around its name).
    struct PreparedLine {
        protocol::ParsedLine parsed;
        std::string_view parts[6];
        size_t count = 0, total = 0;
    };
    // false: dropped, counted
    bool prepare_line(std::string_view line, const protocol::ScannedLine& scanned, const Connection& conn,
                      PreparedLine& out);
    // false: invalid, counted (and logged, rate-limited).
    bool parse(std::string_view line, const Connection& conn, protocol::ParsedLine& parsed) {
        const protocol::LineError error = protocol::parse_line(line.substr(0, line.size() - 1), parsed);
        if (error == protocol::LineError::none) return true;
        invalid(conn, protocol::describe(error), line.substr(0, line.size() - 1));
        return false;
    }
    // The same for a line scan_lines may have parsed already.
    bool parse(std::string_view line, const protocol::ScannedLine& scanned, const Connection& conn,
               protocol::ParsedLine& parsed) {
        if (!scanned.canonical) return parse(line, conn, parsed);
        protocol::scanned_fields(line.data(), scanned, line.size() - 1, parsed);
        return true;
    }
    // Whether `parsed` is `line` (with its '\n') as it is forwarded: then it is queued as received.
    static bool as_received(std::string_view line, const protocol::ParsedLine& parsed) {
        return parsed.canonical && parsed.timestamp.data() + parsed.timestamp.size() == line.data() + line.size() - 1;
    }
    bool finish_line(std::string_view line, PreparedLine& out);  // prepare_line after the parse
    void queue_line(const protocol::ParsedLine& parsed, const std::string_view* parts, size_t count, size_t total);
    void queue_line(const PreparedLine& p) { queue_line(p.parsed, p.parts, p.count, p.total); }
    // A valid line (without --tag-normalize): queued as received, or rebuilt by finish_line first.
    void queue_parsed(std::string_view line, const protocol::ParsedLine& parsed);
    void invalid(const Connection& conn, const char* why, std::string_view line);
    void close_connection(Connection& conn);
    void stream_failed(const Connection& conn, const InputStream& stream);
    void close_oldest_handshake();
    void cut_slow_handshakes(int64_t now);
    void publish_all();
    void flush_counters();
    void tick();
    void run_loop();
    int64_t next_idle_scan_ms_ = 0;

    const Heritage& heritage_;
    const Config& config_;
    shm::WorkerSlot& slot_;
    std::unique_ptr<char[]> scratch_;
    // The lines of scratch_ (scan_lines), one per byte at most; only the entries a read fills are touched.
    std::unique_ptr<protocol::ScannedLine[]> scanned_;
    struct event_base* base_ = nullptr;
    struct event* accept_event_ = nullptr;
    struct event* pickle_accept_event_ = nullptr;
    struct event* tls_accept_event_ = nullptr;
    SSL_CTX* tls_context_ = nullptr;  // --tls-listen-addr
    size_t handshaking_ = 0;          // TLS connections still in their handshake
    struct event* resume_accept_event_ = nullptr;
    std::vector<std::unique_ptr<Connection>> connections_;
    int deferrals_ = 0;
    RateLimitedLog accept_failure_log_;  // accept failures: a log line a second at most, with a count
    StopPipe stop_;                      // SIGTERM, SIGINT: its pipe ends the event loop
    LiveRoutes routes_;
    std::unique_ptr<route::RouteResult> result_;  // one lookup's buffers, reused line after line
    std::unique_ptr<AggregatorFeed> aggregator_;  // --rules with aggregate rules: their points' queue
    bool filled_ = false;                         // a read of this round filled its buffer: more is waiting (run_loop)
    bool fixed_slots_ = false;                    // the table sends every line to fixed_slot_list_ (note_table)
    std::vector<uint16_t> fixed_slot_list_;
    bool one_cluster_ = false;  // the table sends every line unchanged where one cluster selects (note_table)
    bool hash_ahead_ = false;   // lines are parsed a run at a time and their carbon_ch positions computed ahead
    bool by_position_ = false;  // one_cluster_ and its slots follow the carbon_ch position: position_slots_ answers
    std::unique_ptr<route::PositionSlots> position_slots_;
    // A run of valid lines, contiguous in the read buffer, each queued as received to every run target.
    struct Run {
        const char* begin = nullptr;
        size_t bytes = 0;
        uint64_t lines = 0;
    } run_;
    std::vector<size_t> run_targets_;  // the mirrors' targets, then the fixed slots' (start_runs)
    size_t run_fixed_targets_ = 0;     // how many of them are fixed slots' (a line sent to none is unroutable)
    const bool hash_route_ = config_.hash_route();  // a string compare once, not per line (--distribution restarts)
    protocol::TagNormalizer tag_normalizer_;        // --tag-normalize

    // Counted locally, flushed to shared memory once per read.
    uint64_t received_ = 0, invalid_ = 0, too_long_ = 0, unroutable_ = 0, blackholed_ = 0, pickle_invalid_ = 0,
             udp_datagrams_ = 0;
    uint64_t udp_dropped_seen_ = 0;
    uint64_t tls_handshakes_ = 0, tls_refused_ = 0, tls_cut_ = 0, compressed_streams_ = 0, compressed_invalid_ = 0;
    uint64_t unlogged_tls_failures_ = 0;
    int64_t last_tls_log_ms_ = 0;
    uint64_t unlogged_invalid_ = 0, unlogged_pickle_invalid_ = 0;
    int64_t last_invalid_log_ms_ = 0, last_pickle_log_ms_ = 0;

    // Pickle: one reader and one line buffer for every connection of this worker.
    protocol::PickleReader pickle_;
    std::unique_ptr<char[]> pickle_line_;
    // Sources already told that they send pickle to the plaintext port (host, when told).
    struct Hinted {
        char host[64];
        int64_t at_ms;
    };
    Hinted hinted_[16] = {};
    int64_t last_hint_ms_ = -1000000;

    // UDP: buffers for one recvmmsg batch, allocated once when the socket is given.
    std::unique_ptr<char[]> udp_buffers_;
    std::vector<struct mmsghdr> udp_messages_;
    std::vector<struct iovec> udp_iovecs_;
    std::vector<struct sockaddr_storage> udp_senders_;
    std::unique_ptr<char[]> udp_control_;
    Connection udp_source_;

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

void Listener::pause_accepts(long microseconds) {
    if (accept_event_) event_del(accept_event_);
    if (pickle_accept_event_) event_del(pickle_accept_event_);
    if (tls_accept_event_) event_del(tls_accept_event_);
    struct timeval pause = {0, microseconds};
    event_add(resume_accept_event_, &pause);
}

void Listener::accept_ready(int listen_fd, Input input, bool tls) {
    for (int i = 0; i < 64; ++i) {
        if (should_defer_accept()) {
            ++deferrals_;
            pause_accepts(2000);
            return;
        }
        deferrals_ = 0;
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            const int error = errno;
            if (net::accept_shortage(error)) {
                accept_failure_log_.event([&](unsigned long long held) {
                    LOG_WARN(
                        "listener %u: accept failed: %s; pausing accepts for 100 ms (%llu more since the last "
                        "report)",
                        heritage_.index, std::strerror(error), held);
                });
                pause_accepts(100000);
            }
            return;  // EAGAIN: another worker took it, or the backlog is empty
        }
        auto owned = std::make_unique<Connection>();
        Connection* conn = owned.get();
        conn->owner = this;
        conn->input = input;
        conn->fd = fd;
        conn->accepted_ms = conn->last_active_ms = monotonic_ms();
        std::snprintf(conn->peer, sizeof conn->peer, "%s", net::peer_name(fd).c_str());
        if (tls) {
            if (handshaking_ >= kMaxHandshakes) close_oldest_handshake();
            conn->stream = std::make_unique<InputStream>();
            if (!conn->stream->start_tls(tls_context_, fd)) {
                LOG_ERROR("listener %u: cannot create a TLS session: %s; closing client %s", heritage_.index,
                          openssl_errors().c_str(), conn->peer);
                ::close(fd);
                continue;  // `owned` frees the connection
            }
            conn->in_handshake = true;
            ++handshaking_;
            conn->write_event = event_new(base_, fd, EV_WRITE, &Listener::on_read, conn);
        }
        conn->read_event = event_new(base_, fd, EV_READ | EV_PERSIST, &Listener::on_read, conn);
        conn->index = connections_.size();
        connections_.push_back(std::move(owned));
        event_add(conn->read_event, nullptr);
        slot_.connections.store(connections_.size(), std::memory_order_relaxed);
        slot_.connections_total.fetch_add(1, std::memory_order_relaxed);
    }
}

void Listener::on_read(evutil_socket_t, short, void* conn_ptr) {
    auto* conn = static_cast<Connection*>(conn_ptr);
    guarded("listener: read", [&] { conn->owner->read_ready(*conn); });
}

void Listener::read_ready(Connection& conn) {
    follow_routes();
    stamp_now();
    for (LiveRoutes::Target& target : routes_.targets()) target.producer->refresh();
    if (conn.input == Input::pickle) {
        read_pickle(conn);
        return;
    }
    const size_t max_line = config_.max_line_length;
    char* buf = scratch_.get();
    bool closed = false;
    const bool hash_ahead = hash_ahead_;
    const bool in_runs = !hash_ahead && !config_.tag_normalize && fixed_slots_ && !aggregator_;
    if (in_runs) start_runs();
    for (int round = 0; round < kReadsPerWakeup; ++round) {
        size_t have = conn.tail_len;
        if (have) std::memcpy(buf, conn.tail.get(), have);
        ssize_t n;
        if (conn.stream) {
            size_t got = 0;
            InputStream::Status status = conn.stream->read(conn.fd, buf + have, kReadSize, got);
            if (conn.in_handshake && !conn.stream->handshaking()) {
                conn.in_handshake = false;
                --handshaking_;
                ++tls_handshakes_;
            }
            if (status == InputStream::Status::again) break;
            if (status == InputStream::Status::failed) {
                stream_failed(conn, *conn.stream);
                conn.discarding = true;  // a broken stream's partial line is not the client's doing
            }
            n = status == InputStream::Status::data ? static_cast<ssize_t>(got) : 0;
        } else {
            n = ::read(conn.fd, buf + have, kReadSize);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        }
        if (n <= 0) {
            if (conn.tail_len && !conn.discarding) invalid(conn, "unterminated line at connection close", {buf, have});
            closed = true;
            break;
        }
        conn.last_active_ms = monotonic_ms();
        if (conn.first_read) {
            // A gzip or LZ4 stream (carbon-c-relay's transport gzip|lz4) is known by its first bytes, which
            // cannot begin a valid line; from then on the lines come out of its decoder.
            const std::string_view first(buf, have + static_cast<size_t>(n));
            const protocol::Sniffed sniffed = protocol::sniff_compression(first);
            if (sniffed == protocol::Sniffed::gzip || sniffed == protocol::Sniffed::lz4) {
                conn.first_read = false;
                if (!conn.stream) conn.stream = std::make_unique<InputStream>();
                conn.stream->start_decoding(
                    sniffed == protocol::Sniffed::gzip ? protocol::Compression::gzip : protocol::Compression::lz4,
                    first);
                conn.tail_len = 0;
                ++compressed_streams_;
                continue;
            }
            if (sniffed != protocol::Sniffed::need_more) conn.first_read = false;
            if (protocol::looks_like_pickle_frame({buf + have, static_cast<size_t>(n)})) hint_pickle_on_line_port(conn);
        }
        size_t end = have + static_cast<size_t>(n);
        size_t start = 0;
        std::string_view pending[route::kAheadBatch];  // lines whose names are hashed side by side (carbon_ch)
        protocol::ScannedLine pending_scanned[route::kAheadBatch];
        size_t pending_count = 0;
        const protocol::ScannedLine* scanned = scanned_.get();
        const size_t lines = protocol::scan_lines(buf, end, scanned_.get());  // fills scanned[0, lines)
        for (size_t i = 0; i < lines; ++i) {
            const size_t line_end = scanned[i].end;
            if (conn.discarding) {
                conn.discarding = false;
            } else if (line_end - start > max_line) {
                ++too_long_;
            } else if (in_runs) {
                // A line the scan found canonical is valid and forwarded as received: it joins the run as is.
                if (scanned[i].canonical) join_run({buf + start, line_end - start + 1});
                else take_line({buf + start, line_end - start + 1}, scanned[i], conn);
            } else if (hash_ahead) {
                pending_scanned[pending_count] = scanned[i];
                pending[pending_count++] = {buf + start, line_end - start + 1};
                if (pending_count == route::kAheadBatch) {
                    handle_lines_hashed_ahead(pending, pending_scanned, pending_count, conn);
                    pending_count = 0;
                }
            } else {
                handle_line({buf + start, line_end - start + 1}, conn, scanned[i]);
            }
            start = line_end + 1;
        }
        handle_lines_hashed_ahead(pending, pending_scanned, pending_count, conn);
        flush_run();  // before `buf` is reused
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
        filled_ = true;
    }
    publish_all();
    flush_counters();
    if (closed) {
        close_connection(conn);
        return;
    }
    if (conn.stream) {
        if (conn.stream->wants_write()) event_add(conn.write_event, nullptr);
        // Decrypted bytes held inside TLS do not make the socket readable: come back for them.
        if (conn.stream->has_buffered()) event_active(conn.read_event, EV_READ, 0);
    }
}

// A TLS connection that failed: a refused handshake (no or a wrong client certificate, not TLS at
// all) or a broken stream. Counted; logged at most once a second.
void Listener::stream_failed(const Connection& conn, const InputStream& stream) {
    if (stream.failed_in_handshake()) ++tls_refused_;
    if (stream.failed_in_decoding()) ++compressed_invalid_;
    int64_t now = monotonic_ms();
    if (now - last_tls_log_ms_ < 1000) {
        ++unlogged_tls_failures_;
        return;
    }
    LOG_WARN("client %s: %s; connection closed (%llu more TLS or compressed stream failures since the last report)",
             conn.peer, stream.failure().c_str(), static_cast<unsigned long long>(unlogged_tls_failures_));
    unlogged_tls_failures_ = 0;
    last_tls_log_ms_ = now;
}

void Listener::close_oldest_handshake() {
    Connection* oldest = nullptr;
    for (const std::unique_ptr<Connection>& c : connections_)
        if (c->in_handshake && (!oldest || c->accepted_ms < oldest->accepted_ms)) oldest = c.get();
    if (!oldest) return;
    ++tls_cut_;
    close_connection(*oldest);
    flush_counters();
}

// --handshake-timeout: an absolute deadline from accept, however slowly the handshake's bytes arrive.
void Listener::cut_slow_handshakes(int64_t now) {
    if (!handshaking_) return;
    const int64_t limit = static_cast<int64_t>(config_.handshake_timeout_s ? config_.handshake_timeout_s : 1) * 1000;
    uint64_t cut = 0;
    for (size_t i = 0; i < connections_.size();) {
        Connection* conn = connections_[i].get();
        if (conn->in_handshake && now - conn->accepted_ms > limit) {
            ++cut;
            close_connection(*conn);  // moves the last connection into slot i
        } else {
            ++i;
        }
    }
    if (!cut) return;
    tls_cut_ += cut;
    flush_counters();
    if (now - last_tls_log_ms_ < 1000) {
        unlogged_tls_failures_ += cut;
        return;
    }
    LOG_WARN(
        "listener %u: %llu TLS handshakes cut at the --handshake-timeout deadline of %u s (%llu more TLS failures since "
        "the last report)",
        heritage_.index, static_cast<unsigned long long>(cut), config_.handshake_timeout_s,
        static_cast<unsigned long long>(unlogged_tls_failures_));
    unlogged_tls_failures_ = 0;
    last_tls_log_ms_ = now;
}

// carbon_ch places each line by the MD5 of its name: a run of lines is parsed first, then the names of those
// that are valid are hashed side by side, then each is queued, its ring lookup finding its name's position ready.
// (Not with --tag-normalize: a normalized name lives in a buffer the next line reuses.)
void Listener::handle_lines_hashed_ahead(const std::string_view* lines, const protocol::ScannedLine* scanned,
                                         size_t count, const Connection& conn) {
    if (count == 0) return;
    protocol::ParsedLine parsed[route::kAheadBatch];
    std::string_view valid_lines[route::kAheadBatch], names[route::kAheadBatch];
    size_t valid = 0;
    for (size_t i = 0; i < count; ++i) {
        if (!parse(lines[i], scanned[i], conn, parsed[valid])) continue;
        valid_lines[valid] = lines[i];
        names[valid] = parsed[valid].name;
        ++valid;
    }
    if (by_position_ && !aggregator_ && routes_.mirrors().empty()) {
        queue_by_position(valid_lines, parsed, names, valid);
        return;
    }
    const route::CarbonChAhead ahead(names, valid);
    for (size_t i = 0; i < valid; ++i) queue_parsed(valid_lines[i], parsed[i]);
}

// hash-route over one carbon_ch cluster (by_position_), with no mirror and no aggregation: a line forwarded as
// received goes to the slots of its name's position, found from the positions of the batch computed side by
// side; what queue_parsed and copies() do for such a table, without their general path. Any other line takes
// that path. (Lines are hashed ahead only without --tag-normalize, so each name is the line's own.)
void Listener::queue_by_position(const std::string_view* lines, const protocol::ParsedLine* parsed,
                                 const std::string_view* names, size_t count) {
    uint32_t positions[route::kAheadBatch];
    route::carbon_ch_positions(names, count, positions);
    const route::RoutingTable& table = *routes_.table();  // by_position_: there is one
    for (size_t i = 0; i < count; ++i) {
        if (!as_received(lines[i], parsed[i])) {
            queue_parsed(lines[i], parsed[i]);
            continue;
        }
        ++received_;
        uint16_t slots[route::RouteResult::kMaxSends];
        const size_t n = position_slots_->slots_at(table, names[i], positions[i], routes_.up(), slots);
        size_t queued = 0;
        for (size_t k = 0; k < n; ++k) {
            const int target = routes_.target_of(slots[k]);
            if (target < 0) continue;
            routes_.targets()[size_t(target)].producer->append_line(lines[i]);
            ++queued;
        }
        if (queued == 0 && nowhere_is_unroutable()) ++unroutable_;
    }
}

void Listener::start_runs() {
    run_targets_.clear();
    for (uint16_t m : routes_.mirrors()) run_targets_.push_back(m);
    run_fixed_targets_ = 0;
    for (uint16_t slot : fixed_slot_list_) {
        const int target = routes_.target_of(slot);
        if (target < 0) continue;
        run_targets_.push_back(size_t(target));
        ++run_fixed_targets_;
    }
}

// What handle_line does, in the order the lines came: an invalid line is dropped and counted (it ends the
// run, as the next line is no longer next to it), one rebuilt around its fields (say a "-1" timestamp)
// is queued on its own after the run before it.
void Listener::take_line(std::string_view line, const protocol::ScannedLine& scanned, const Connection& conn) {
    protocol::ParsedLine parsed;
    if (!parse(line, scanned, conn, parsed)) return;
    if (!as_received(line, parsed)) {
        flush_run();
        queue_parsed(line, parsed);
        return;
    }
    join_run(line);
}

void Listener::flush_run() {
    if (!run_.lines) return;
    const Run run = std::exchange(run_, Run {});
    received_ += run.lines;
    for (size_t target : run_targets_) {
        shm::RingProducer& producer = *routes_.targets()[target].producer;
        if (producer.append_lines(run.begin, run.bytes, run.lines)) continue;
        // Not all of them fit: one by one, as handle_line would (each that fits is queued, the others counted).
        for (const char *p = run.begin, *end = run.begin + run.bytes; p < end;) {
            const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
            producer.append_line({p, static_cast<size_t>(nl - p) + 1});
            p = nl + 1;
        }
    }
    if (run_fixed_targets_ == 0 && nowhere_is_unroutable()) unroutable_ += run.lines;
}

// `line` ends with its '\n'.
void Listener::handle_line(std::string_view line, const Connection& conn, const protocol::ScannedLine& scanned) {
    PreparedLine prepared;
    if (prepare_line(line, scanned, conn, prepared)) queue_line(prepared);
}

bool Listener::prepare_line(std::string_view line, const protocol::ScannedLine& scanned, const Connection& conn,
                            PreparedLine& out) {
    return parse(line, scanned, conn, out.parsed) && finish_line(line, out);
}

bool Listener::finish_line(std::string_view line, PreparedLine& out) {
    protocol::ParsedLine& parsed = out.parsed;
    if (config_.tag_normalize) {  // never longer than the name it replaces
        const std::string_view normalized = tag_normalizer_.normalize(parsed.name);
        if (normalized != parsed.name) parsed.name = normalized, parsed.canonical = false;
    }
    std::string_view* parts = out.parts;
    if (as_received(line, parsed)) {
        parts[0] = line;
        out.count = 1;
        out.total = line.size();
    } else {
        parts[0] = parsed.name;
        parts[1] = " ";
        parts[2] = parsed.value;
        parts[3] = " ";
        parts[4] = parsed.timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed.timestamp;
        parts[5] = "\n";
        out.count = 6;
        out.total = parts[0].size() + parts[2].size() + parts[4].size() + 3;
        // A -1 stamped with the time grows the line: what is forwarded is held to the same bound
        // (a carbon-cache drops the connection on a line over 16384 bytes, and what follows with it).
        if (out.total - 1 > config_.max_line_length) {
            ++too_long_;
            return false;
        }
    }
    return true;
}

void Listener::queue_parsed(std::string_view line, const protocol::ParsedLine& parsed) {
    if (!config_.tag_normalize && as_received(line, parsed)) {
        queue_line(parsed, &line, 1, line.size());
        return;
    }
    PreparedLine prepared;
    prepared.parsed = parsed;
    if (finish_line(line, prepared)) queue_line(prepared);
}

void Listener::queue_line(const protocol::ParsedLine& parsed, const std::string_view* parts, size_t count,
                          size_t total) {
    ++received_;
    const std::string_view data = line_data(parsed);
    result_->feed_count = 0;
    copies(parsed.name, data, true, [&](size_t target, std::string_view name) {
        shm::RingProducer& producer = *routes_.targets()[target].producer;
        if (name.data() == parsed.name.data()) {
            if (count == 1) producer.append_line(parts[0]);
            else producer.append(parts, count, total);
            return;
        }
        // A rewritten name: the line is written out again around it, held to the same bound.
        const std::string_view timestamp =
            parsed.timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed.timestamp;
        const std::string_view rewritten[6] = {name, " ", parsed.value, " ", timestamp, "\n"};
        const size_t size = name.size() + parsed.value.size() + timestamp.size() + 3;
        if (size - 1 > config_.max_line_length) {
            ++too_long_;
            return;
        }
        producer.append(rewritten, 6, size);
    });
    if (aggregator_ && result_->feed_count)
        aggregator_->add(*result_, parsed.value,
                         parsed.timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed.timestamp,
                         std::string_view(now_text_, now_len_));
}

// Carbon's pickle protocol: frames of a 4-byte big-endian length and a pickled list. Each element
// becomes a plaintext line and takes the same path as one read from the line port (handle_line).
// A frame that is not such a list, or is over the limit, closes the connection, as carbon does.
void Listener::read_pickle(Connection& conn) {
    constexpr size_t kMaxBuffered = 4 + protocol::kPickleMaxFrame;
    bool closed = false;
    for (int round = 0; round < kReadsPerWakeup && !closed; ++round) {
        size_t want = std::min(kMaxBuffered, conn.tail_len + kReadSize);
        if (want > conn.tail_cap) {  // grows to the largest frame this connection sent, then stays
            size_t cap = std::min(kMaxBuffered, std::max(want, size_t(conn.tail_cap) * 2));
            std::unique_ptr<char[]> bigger(new char[cap]);
            if (conn.tail_len) std::memcpy(bigger.get(), conn.tail.get(), conn.tail_len);
            conn.tail = std::move(bigger);
            conn.tail_cap = static_cast<uint32_t>(cap);
        }
        char* buf = conn.tail.get();
        size_t room = conn.tail_cap - conn.tail_len;
        ssize_t n = ::read(conn.fd, buf + conn.tail_len, room);
        if (n > 0 && static_cast<size_t>(n) == room) filled_ = true;
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
            if (conn.tail_len) refuse_pickle(conn, "connection closed inside a frame");
            closed = true;
            break;
        }
        conn.last_active_ms = monotonic_ms();
        size_t end = conn.tail_len + static_cast<size_t>(n), start = 0;
        while (end - start >= 4) {
            uint32_t length = protocol::pickle_frame_length(buf + start);
            if (length > protocol::kPickleMaxFrame) {
                char why[96];
                std::snprintf(why, sizeof why, "frame of %u bytes is over the limit of %u", length,
                              protocol::kPickleMaxFrame);
                refuse_pickle(conn, why);
                closed = true;
                break;
            }
            if (end - start - 4 < length) break;
            protocol::PickleError error = pickle_.decode({buf + start + 4, length});
            if (error != protocol::PickleError::none) {
                char why[96];
                std::snprintf(why, sizeof why, "%s (opcode 0x%02x)", protocol::describe(error),
                              pickle_.failed_opcode());
                refuse_pickle(conn, why);
                closed = true;
                break;
            }
            handle_pickle_metrics(conn);
            start += 4 + length;
        }
        if (closed) break;
        conn.tail_len = static_cast<uint32_t>(end - start);
        if (start && conn.tail_len) std::memmove(buf, buf + start, conn.tail_len);
        if (static_cast<size_t>(n) < room) break;
    }
    publish_all();
    flush_counters();
    if (closed) close_connection(conn);
}

// The metrics of the frame pickle_ just decoded, each as the line `name value timestamp\n`.
void Listener::handle_pickle_metrics(const Connection& conn) {
    if (!pickle_line_) pickle_line_.reset(new char[config_.max_line_length + 2]);
    char* line = pickle_line_.get();
    protocol::PickleMetric m;
    for (;;) {
        protocol::PickleReader::Next next = pickle_.next(m);
        if (next == protocol::PickleReader::Next::end) break;
        if (next == protocol::PickleReader::Next::malformed) {
            invalid(conn, "pickle element is not (name, (timestamp, value)) with numbers", {});
            continue;
        }
        size_t size = m.name.size() + m.value.size() + m.timestamp.size() + 2;
        if (size > config_.max_line_length) {
            ++too_long_;
            continue;
        }
        char* p = line;
        for (std::string_view field : {m.name, std::string_view(" "), m.value, std::string_view(" "), m.timestamp}) {
            std::memcpy(p, field.data(), field.size());
            p += field.size();
        }
        *p++ = '\n';
        handle_line({line, static_cast<size_t>(p - line)}, conn);
    }
}

void Listener::refuse_pickle(const Connection& conn, const char* why) {
    ++pickle_invalid_;
    int64_t now = monotonic_ms();
    if (now - last_pickle_log_ms_ < 1000) {
        ++unlogged_pickle_invalid_;
        return;
    }
    LOG_WARN("client %s: pickle frame refused, closing the connection: %s (%llu more refused since the last report)",
             conn.peer, why, static_cast<unsigned long long>(unlogged_pickle_invalid_));
    unlogged_pickle_invalid_ = 0;
    last_pickle_log_ms_ = now;
}

// carbon-relay and other carbon clients send pickle unless told otherwise; on the line port every
// frame is a run of invalid lines, and the counts alone do not say why. Said once per source host
// (16 remembered, an hour each), at most once a second.
void Listener::hint_pickle_on_line_port(const Connection& conn) {
    int64_t now = monotonic_ms();
    std::string_view peer(conn.peer);
    std::string_view host = peer.substr(0, peer.rfind(':'));
    Hinted* oldest = &hinted_[0];
    for (Hinted& h : hinted_) {
        if (h.at_ms && host == h.host && now - h.at_ms < 3600 * 1000) return;
        if (h.at_ms < oldest->at_ms) oldest = &h;
    }
    if (now - last_hint_ms_ < 1000) return;
    last_hint_ms_ = now;
    std::snprintf(oldest->host, sizeof oldest->host, "%.*s", static_cast<int>(host.size()), host.data());
    oldest->at_ms = now;
    // The addresses as bound (with port 0 in an address, the port the kernel chose), as the start line names them.
    std::string port = heritage_.listen_fd >= 0 ? net::local_name(heritage_.listen_fd) : config_.listen_addr;
    std::string where =
        heritage_.pickle_fd >= 0 ? net::local_name(heritage_.pickle_fd) : std::string("--pickle-listen-addr (off now)");
    LOG_WARN(
        "client %s: this looks like pickle on the plaintext port %s; send it to %s or set DESTINATION_PROTOCOL = line "
        "on the sender",
        conn.peer, port.c_str(), where.c_str());
}

// UDP: one or more lines per datagram (the last may lack its '\n'), as carbon's UDP receiver reads
// them. The kernel's count of datagrams it dropped because the socket buffer was full comes with
// each datagram (SO_RXQ_OVFL).
void Listener::setup_udp() {
    constexpr size_t stride = kUdpDatagramMax + 1;  // room to end the last line with '\n'
    udp_buffers_.reset(new char[kUdpBatch * stride]);
    udp_messages_.assign(kUdpBatch, {});
    udp_iovecs_.assign(kUdpBatch, {});
    udp_senders_.assign(kUdpBatch, {});
    const size_t control = CMSG_SPACE(sizeof(uint32_t));
    udp_control_.reset(new char[kUdpBatch * control]);
    for (size_t i = 0; i < kUdpBatch; ++i) {
        udp_iovecs_[i] = {udp_buffers_.get() + i * stride, kUdpDatagramMax};
        udp_messages_[i].msg_hdr.msg_iov = &udp_iovecs_[i];
        udp_messages_[i].msg_hdr.msg_iovlen = 1;
    }
    udp_source_.input = Input::udp;
    std::snprintf(udp_source_.peer, sizeof udp_source_.peer, "udp");
}

void Listener::udp_ready(int fd) {
    follow_routes();
    stamp_now();
    for (LiveRoutes::Target& target : routes_.targets()) target.producer->refresh();
    const size_t control = CMSG_SPACE(sizeof(uint32_t));
    const size_t max_line = config_.max_line_length;
    for (int round = 0; round < kReadsPerWakeup; ++round) {
        for (size_t i = 0; i < kUdpBatch; ++i) {
            struct msghdr& h = udp_messages_[i].msg_hdr;
            h.msg_name = &udp_senders_[i];
            h.msg_namelen = sizeof udp_senders_[i];
            h.msg_control = udp_control_.get() + i * control;
            h.msg_controllen = control;
            h.msg_flags = 0;
        }
        int got = recvmmsg(fd, udp_messages_.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0) break;
        udp_datagrams_ += static_cast<uint64_t>(got);
        for (int i = 0; i < got; ++i) {
            struct msghdr& h = udp_messages_[i].msg_hdr;
            for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                    uint32_t dropped;
                    std::memcpy(&dropped, CMSG_DATA(c), sizeof dropped);
                    udp_dropped_seen_ = std::max<uint64_t>(udp_dropped_seen_, dropped);
                }
            }
            if (h.msg_flags & MSG_TRUNC) {  // over 64 KiB: cannot be whole
                ++too_long_;
                continue;
            }
            udp_source_.udp_sender = &udp_senders_[i];
            char* data = static_cast<char*>(udp_iovecs_[i].iov_base);
            size_t len = udp_messages_[i].msg_len;
            if (len && data[len - 1] != '\n') data[len++] = '\n';
            size_t start = 0;
            while (start < len) {
                auto* nl = static_cast<char*>(std::memchr(data + start, '\n', len - start));
                size_t line_end = static_cast<size_t>(nl - data);
                if (line_end - start > max_line) {
                    ++too_long_;
                } else {
                    handle_line({data + start, line_end - start + 1}, udp_source_);
                }
                start = line_end + 1;
            }
        }
        udp_source_.udp_sender = nullptr;
        if (static_cast<size_t>(got) < kUdpBatch) break;
        filled_ = true;
    }
    publish_all();
    flush_counters();
}

template <class Visit>
void Listener::copies(std::string_view name, std::string_view data, bool count, Visit&& visit) {
    for (uint16_t m : routes_.mirrors()) visit(m, name);
    const route::RoutingTable* table = routes_.table();
    if (!table) {
        // No destination in the implicit cluster: the line goes nowhere (a console mirror aside).
        if (count && nowhere_is_unroutable()) ++unroutable_;
        return;
    }
    // The name unchanged to each of `slots` that has a queue here.
    auto to_slots = [&](const uint16_t* slots, size_t n) {
        size_t queued = 0;
        for (size_t k = 0; k < n; ++k) {
            const int target = routes_.target_of(slots[k]);
            if (target < 0) continue;
            visit(size_t(target), name);
            ++queued;
        }
        if (count && queued == 0 && nowhere_is_unroutable()) ++unroutable_;
    };
    if (fixed_slots_) {  // what route() would answer for every line (broadcast)
        to_slots(fixed_slot_list_.data(), fixed_slot_list_.size());
        return;
    }
    if (one_cluster_) {  // what route() would answer (hash-route): the cluster's slots
        uint16_t slots[route::RouteResult::kMaxSends];
        to_slots(slots,
                 by_position_ ? position_slots_->slots(*table, name, routes_.up(), slots)
                              : table->one_cluster_slots(name, routes_.up(), slots));
        return;
    }
    route::RouteResult& result = *result_;
    table->route(name, data, routes_.up(), result);
    size_t queued = 0;
    for (size_t k = 0; k < result.send_count; ++k) {
        const int target = routes_.target_of(result.sends[k].slot);
        if (target < 0) continue;  // a rules destination no longer registered (deldest)
        visit(size_t(target), result.name_of(result.sends[k]));
        ++queued;
    }
    if (!count) return;
    if (result.blackholed || result.dropped) ++blackholed_;
    else if (queued == 0 && result.feed_count == 0 && nowhere_is_unroutable()) ++unroutable_;
}

// A batch from the HTTP(S) endpoint: all of it is queued, or none of it.
IngestOutcome Listener::ingest(std::string_view lines, std::string_view prefix) {
    follow_routes();
    stamp_now();
    IngestOutcome outcome;
    std::vector<LiveRoutes::Target>& targets = routes_.targets();
    std::vector<uint64_t> bytes(targets.size()), counts(targets.size());
    uint64_t feed_bytes = 0, feed_records = 0;  // what the aggregator's queue must take
    char name[kMaxPrefixedName];
    auto for_each_valid = [&](auto&& visit) {
        protocol::for_each_batch_line(
            lines, prefix, config_.max_line_length, now_len_, name, visit,
            [&](std::string_view full) { return config_.tag_normalize ? tag_normalizer_.normalize(full) : full; });
    };
    // First pass: validate and add up what each destination queue must take.
    for_each_valid([&](std::string_view line, const protocol::ParsedLine* parsed, std::string_view full) {
        if (!parsed) {
            ++outcome.invalid;
            return;
        }
        (void)line;
        ++outcome.valid;
        const size_t timestamp_size = parsed->timestamp_is_now ? now_len_ : parsed->timestamp.size();
        const size_t rest = parsed->value.size() + timestamp_size + 3;
        result_->feed_count = 0;
        copies(full, line_data(*parsed), false, [&](size_t target, std::string_view name) {
            bytes[target] += name.size() + rest;
            ++counts[target];
        });
        if (aggregator_ && result_->feed_count)
            aggregator_->measure(*result_, parsed->value.size(), timestamp_size, now_len_, feed_bytes, feed_records);
    });
    for (size_t r = 0; r < targets.size(); ++r) {
        if (counts[r]) targets[r].producer->refresh();
        if (counts[r] && !targets[r].producer->has_room_for(bytes[r], counts[r])) {
            outcome.accepted = false;
            outcome.never_fits = !targets[r].producer->could_ever_fit(bytes[r], counts[r]);
            return outcome;
        }
    }
    // The points that aggregate rules take are as much part of the batch as its lines.
    if (feed_records && !aggregator_->has_room_for(feed_bytes, feed_records)) {
        outcome.accepted = false;
        outcome.never_fits = !aggregator_->could_ever_fit(feed_bytes, feed_records);
        outcome.aggregator = true;
        return outcome;
    }
    // Second pass: queue them.
    for_each_valid([&](std::string_view, const protocol::ParsedLine* parsed, std::string_view full) {
        if (!parsed) return;
        result_->feed_count = 0;
        copies(full, line_data(*parsed), true, [&](size_t target, std::string_view name) {
            std::string_view parts[6] = {
                name,
                " ",
                parsed->value,
                " ",
                parsed->timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed->timestamp,
                "\n"};
            size_t total = parts[0].size() + parts[2].size() + parts[4].size() + 3;
            targets[target].producer->append(parts, 6, total);
        });
        if (aggregator_ && result_->feed_count)
            aggregator_->add(*result_, parsed->value,
                             parsed->timestamp_is_now ? std::string_view(now_text_, now_len_) : parsed->timestamp,
                             std::string_view(now_text_, now_len_));
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
    for (unsigned char c : line.substr(0, 80))
        shown[n++] = (c >= 0x20 && c < 0x7f && c != '\'') ? static_cast<char>(c) : '?';
    shown[n] = 0;
    std::string sender = conn.udp_sender ? "udp " + net::address_name(*conn.udp_sender) : std::string(conn.peer);
    LOG_WARN("client %s: invalid line dropped (%s): '%s'%s (%llu more invalid lines since the last report)",
             sender.c_str(), why, shown, line.size() > 80 ? "..." : "",
             static_cast<unsigned long long>(unlogged_invalid_));
    unlogged_invalid_ = 0;
    last_invalid_log_ms_ = now;
}

void Listener::close_connection(Connection& conn) {
    event_free(conn.read_event);
    if (conn.write_event) event_free(conn.write_event);
    if (conn.in_handshake) --handshaking_;
    conn.stream.reset();  // before the fd it reads is closed
    ::close(conn.fd);
    // The last connection takes this one's place; this one is freed when `closing` goes.
    const size_t index = conn.index;
    std::unique_ptr<Connection> closing = std::move(connections_[index]);
    if (index + 1 != connections_.size()) {
        connections_[index] = std::move(connections_.back());
        connections_[index]->index = index;
    }
    connections_.pop_back();
    slot_.connections.store(connections_.size(), std::memory_order_relaxed);
}

void Listener::publish_all() {
    routes_.publish_all();
    if (aggregator_) aggregator_->publish();
}

void Listener::flush_counters() {
    if (received_) slot_.received.fetch_add(std::exchange(received_, 0), std::memory_order_relaxed);
    if (invalid_) slot_.invalid.fetch_add(std::exchange(invalid_, 0), std::memory_order_relaxed);
    if (too_long_) slot_.too_long.fetch_add(std::exchange(too_long_, 0), std::memory_order_relaxed);
    if (unroutable_) slot_.unroutable.fetch_add(std::exchange(unroutable_, 0), std::memory_order_relaxed);
    if (blackholed_) slot_.blackholed.fetch_add(std::exchange(blackholed_, 0), std::memory_order_relaxed);
    if (pickle_invalid_) slot_.pickle_invalid.fetch_add(std::exchange(pickle_invalid_, 0), std::memory_order_relaxed);
    if (udp_datagrams_) slot_.udp_datagrams.fetch_add(std::exchange(udp_datagrams_, 0), std::memory_order_relaxed);
    if (tls_handshakes_) slot_.tls_handshakes.fetch_add(std::exchange(tls_handshakes_, 0), std::memory_order_relaxed);
    if (tls_refused_) slot_.tls_refused.fetch_add(std::exchange(tls_refused_, 0), std::memory_order_relaxed);
    if (tls_cut_) slot_.tls_cut.fetch_add(std::exchange(tls_cut_, 0), std::memory_order_relaxed);
    if (compressed_streams_)
        slot_.compressed_streams.fetch_add(std::exchange(compressed_streams_, 0), std::memory_order_relaxed);
    if (compressed_invalid_)
        slot_.compressed_invalid.fetch_add(std::exchange(compressed_invalid_, 0), std::memory_order_relaxed);
    if (udp_dropped_seen_ > slot_.udp_dropped_seen.load(std::memory_order_relaxed))
        slot_.udp_dropped_seen.store(udp_dropped_seen_, std::memory_order_relaxed);
}

void Listener::tick() {
    int64_t now = monotonic_ms();
    slot_.heartbeat_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed);
    cut_slow_handshakes(now);
    follow_routes();
    const uint32_t idle_timeout_s = heritage_.control->header.idle_timeout_s.load(std::memory_order_relaxed);
    if (idle_timeout_s && now >= next_idle_scan_ms_) {
        next_idle_scan_ms_ = now + kIdleScanMs;
        int64_t limit = static_cast<int64_t>(idle_timeout_s) * 1000;
        for (size_t i = 0; i < connections_.size();) {
            Connection* conn = connections_[i].get();
            if (now - conn->last_active_ms > limit) {
                LOG_INFO("client %s: closed after %u s idle", conn->peer, idle_timeout_s);
                close_connection(*conn);  // moves the last connection into slot i
            } else {
                ++i;
            }
        }
    }
}

// The event loop until stopped. At moderate rates each read finds a line or a few, and each read
// costs a wake-up (20-45 us of CPU on the VM of docs/PERFORMANCE.md, far more than the lines). While
// lines keep coming, the listener lingers until the start of the next --linger-ms period before it waits
// again (worker/linger.hpp), so a round finds several connections' lines waiting, and the outputs see
// one publish a period. Sparse lines are read as they come; a busy round goes straight back.
void Listener::run_loop() {
    Linger linger(config_.linger_ms, 0);
    if (!linger.enabled()) {
        event_base_dispatch(base_);
        return;
    }
    for (;;) {
        const uint64_t before = slot_.received.load(std::memory_order_relaxed);
        filled_ = false;
        if (event_base_loop(base_, EVLOOP_ONCE) != 0 || event_base_got_break(base_)) return;
        const uint64_t lines = slot_.received.load(std::memory_order_relaxed) - before;
        bool busy = filled_ || lines >= kBusyRoundLines;
        for (const LiveRoutes::Target& target : routes_.targets())
            busy = busy || target.producer->unread_bytes() > Linger::kBacklogBytes;
        if (const int64_t until = linger.after_round(monotonic_ns(), lines, busy)) sleep_until_ns(until);
    }
}

int Listener::run() {
    // One producer per ring, even while a listener of a previous polymur is still exiting.
    UniqueFd lock = lock_file(config_.state_dir + "/listener-" + std::to_string(heritage_.index) + ".lock",
                              "listener " + std::to_string(heritage_.index));
    if (!lock) return kExitCrashed;
    base_ = event_base_new();
    if (!base_) {
        LOG_ERROR("listener %u: cannot create event base", heritage_.index);
        return kExitCrashed;
    }
    routes_.refresh();
    slot_.seen_generation.store(routes_.generation(), std::memory_order_release);
    aggregator_ =
        AggregatorFeed::open(heritage_, heritage_.index, ("listener " + std::to_string(heritage_.index)).c_str());
    note_table();
    resume_accept_event_ = evtimer_new(base_, &Listener::on_resume_accept, this);
    if (heritage_.listen_fd >= 0) {
        accept_event_ = event_new(base_, heritage_.listen_fd, EV_READ | EV_PERSIST, &Listener::on_accept, this);
        event_add(accept_event_, nullptr);
    }
    if (heritage_.pickle_fd >= 0) {
        pickle_accept_event_ =
            event_new(base_, heritage_.pickle_fd, EV_READ | EV_PERSIST, &Listener::on_accept_pickle, this);
        event_add(pickle_accept_event_, nullptr);
    }
    if (heritage_.tls_fd >= 0) {
        std::string error;
        tls_context_ = new_line_listener_tls_context(config_.tls_cert, config_.tls_key, config_.tls_client_ca, error);
        if (!tls_context_) {
            LOG_ERROR("listener %u: TLS listener %s: %s", heritage_.index, config_.tls_listen_addr.c_str(),
                      error.c_str());
            return kExitDoNotRestart;
        }
        tls_accept_event_ = event_new(base_, heritage_.tls_fd, EV_READ | EV_PERSIST, &Listener::on_accept_tls, this);
        event_add(tls_accept_event_, nullptr);
    }
    if (heritage_.udp_fd >= 0) {
        setup_udp();
        event_add(event_new(base_, heritage_.udp_fd, EV_READ | EV_PERSIST, &Listener::on_udp, this), nullptr);
    }
    std::unique_ptr<HttpIngest> https, http;
    std::string error;
    if (heritage_.https_fd >= 0 &&
        !(https = start_http_ingest(base_, heritage_.https_fd, true, config_, *this, error))) {
        LOG_ERROR("listener %u: HTTPS ingest: %s", heritage_.index, error.c_str());
        return kExitDoNotRestart;
    }
    if (heritage_.http_fd >= 0 && !(http = start_http_ingest(base_, heritage_.http_fd, false, config_, *this, error))) {
        LOG_ERROR("listener %u: HTTP ingest: %s", heritage_.index, error.c_str());
        return kExitDoNotRestart;
    }
    struct event* tick = event_new(base_, -1, EV_PERSIST, &Listener::on_tick, this);
    struct timeval tick_interval = {0, 100000};
    event_add(tick, &tick_interval);
    // Not evsignal: in a forked child the supervisor's event base still claims libevent's signal
    // handling, so the child keeps its own self-pipe.
    if (!stop_.ok()) return kExitCrashed;
    stop_.install();
    struct event* stop = event_new(base_, stop_.read_fd(), EV_READ | EV_PERSIST, &Listener::on_stop, this);
    event_add(stop, nullptr);
    slot_.heartbeat_ms.store(static_cast<uint64_t>(monotonic_ms()), std::memory_order_relaxed);

    run_loop();

    // Everything already appended is published; partial lines in connections are the only loss.
    publish_all();
    flush_counters();
    while (!connections_.empty()) close_connection(*connections_.back());
    slot_.connections.store(0, std::memory_order_relaxed);
    if (tls_context_) SSL_CTX_free(tls_context_);
    return 0;
}

}  // namespace

int run_listener(const Heritage& heritage) {
    Listener listener(heritage);
    return listener.run();
}

}  // namespace polymur
