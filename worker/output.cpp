// Output process: the only consumer of one destination's queue. It writes whole lines from the
// rings to the destination and moves a ring's read position only past bytes the destination's
// TCP stack acknowledged (SIOCOUTQ), so a crash, kill or reconnect resends instead of losing.
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "route/destination.hpp"
#include "shm/queue.hpp"
#include "shm/queue_reader.hpp"
#include "worker/heritage.hpp"
#include "worker/queue_syncer.hpp"
#include "worker/reroute.hpp"

namespace polymur {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

constexpr uint64_t kChunkMax = 256 * 1024;  // commit granularity
constexpr size_t kMaxIov = 64;
constexpr int kIdleWaitMs = 100;
constexpr int kAckPollMs = 2;

struct Chunk {
    shm::ReadBatch batch;
    uint64_t stream_end;  // offset in this connection's byte stream just past the chunk
};

class Output {
public:
    explicit Output(const Heritage& heritage)
        : heritage_(heritage), config_(*heritage.config), slot_(heritage.control->destinations[heritage.index]) {}

    int run();

private:
    bool connect_destination();
    // `peer_gone`: the destination closed or reset the connection (not our decision).
    void disconnect(const char* why, bool peer_gone = true);
    void hint_if_pickle_port();
    bool gather();  // queues new chunks; true if any
    bool write_pending();
    void commit_acked();
    bool peer_closed();
    void set_state(shm::LinkState state) { slot_.link_state.store(static_cast<uint32_t>(state), std::memory_order_relaxed); }
    bool removed() const {
        return slot_.state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::SlotState::active);
    }
    // Failover (hash-route, --rules): this output may move its queue to other destinations now.
    bool may_reroute() const {
        return queues_move(heritage_) && !console_ &&
               heritage_.control->header.reroute_slot.load(std::memory_order_acquire) == heritage_.index;
    }
    // Moves a batch elsewhere; false when nothing moved.
    bool reroute_batch() {
        if (!rerouter_) rerouter_ = std::make_unique<Rerouter>(heritage_, heritage_.index);
        return rerouter_->move_batch(*reader_) > 0;
    }
    void nap(int ms) {
        struct timespec pause {0, ms * 1000000L};
        nanosleep(&pause, nullptr);
    }

    // Reloadable: read from the control segment at each use.
    uint32_t reconnect_interval_s() const { return heritage_.control->header.reconnect_interval_s.load(std::memory_order_relaxed); }
    uint32_t drain_timeout_s() const { return heritage_.control->header.drain_timeout_s.load(std::memory_order_relaxed); }
    uint32_t connect_timeout_ms() const { return heritage_.control->header.connect_timeout_ms.load(std::memory_order_relaxed); }
    const Heritage& heritage_;
    const Config& config_;
    shm::DestinationSlot& slot_;
    std::string text_;
    bool console_ = false;
    route::Destination destination_;
    std::unique_ptr<shm::QueueFile> queue_;
    std::unique_ptr<shm::QueueReader> reader_;
    UniqueFd socket_;
    int fd_ = -1;
    std::deque<Chunk> pending_;       // written or to be written, not yet acknowledged
    uint64_t stream_written_ = 0;
    uint64_t stream_acked_ = 0;
    uint64_t stream_queued_ = 0;      // stream offset of the end of the last pending chunk
    uint64_t consecutive_failures_ = 0;
    int64_t connected_at_ms_ = 0;
    uint32_t quick_closes_ = 0;  // connections in a row the destination closed soon after our first lines
    int64_t last_pickle_hint_ms_ = 0;
    int64_t drain_deadline_ms_ = 0;
    std::unique_ptr<Rerouter> rerouter_;
};

bool Output::connect_destination() {
    set_state(shm::LinkState::connecting);
    if (console_) {
        fd_ = STDOUT_FILENO;
        set_state(shm::LinkState::connected);
        return true;
    }
    std::string error;
    socket_ = net::connect_tcp(destination_.host, std::to_string(destination_.port), static_cast<int>(connect_timeout_ms()), error);
    if (!socket_) {
        ++consecutive_failures_;
        slot_.consecutive_failures.store(consecutive_failures_, std::memory_order_relaxed);
        slot_.reconnects.fetch_add(1, std::memory_order_relaxed);  // every failed attempt counts
        set_state(shm::LinkState::down);
        LOG_WARN("destination %s: connect failed (%llu in a row): %s; retrying in %u s", text_.c_str(),
                 static_cast<unsigned long long>(consecutive_failures_), error.c_str(), reconnect_interval_s());
        return false;
    }
    fd_ = socket_.get();
    connected_at_ms_ = monotonic_ms();
    if (consecutive_failures_ || slot_.reconnects.load() > 0)
        LOG_NOTICE("destination %s: connected after %llu failed attempts", text_.c_str(),
                   static_cast<unsigned long long>(consecutive_failures_));
    else
        LOG_INFO("destination %s: connected", text_.c_str());
    consecutive_failures_ = 0;
    slot_.consecutive_failures.store(0, std::memory_order_relaxed);
    set_state(shm::LinkState::connected);
    return true;
}

// A carbon pickle port reads our first bytes as a frame length far over its limit and closes the
// connection, after the kernel has acknowledged what we wrote: the lines look sent, and none arrive.
// Said when it happens on three connections in a row, and again at most every ten minutes.
void Output::hint_if_pickle_port() {
    int64_t now = monotonic_ms();
    if (++quick_closes_ < 3 || (last_pickle_hint_ms_ && now - last_pickle_hint_ms_ < 600000)) return;
    last_pickle_hint_ms_ = now;
    LOG_WARN("destination %s: closed the connection right after our first lines, %u times in a row; it may be a pickle "
             "port (carbon's PICKLE_RECEIVER_PORT, 2004 by default), which cannot read plaintext: point polymur at its "
             "line port (LINE_RECEIVER_PORT, 2003)", text_.c_str(), quick_closes_);
}

void Output::disconnect(const char* why, bool peer_gone) {
    uint64_t unconfirmed = 0;
    for (const Chunk& c : pending_) unconfirmed += c.batch.lines;
    LOG_WARN("destination %s: connection lost (%s); %llu unconfirmed lines will be sent again", text_.c_str(), why,
             static_cast<unsigned long long>(unconfirmed));
    if (peer_gone && stream_written_ > 0 && monotonic_ms() - connected_at_ms_ < 5000)
        hint_if_pickle_port();
    else
        quick_closes_ = 0;
    pending_.clear();
    reader_->rewind();
    stream_written_ = stream_queued_ = stream_acked_ = 0;
    socket_.reset();
    fd_ = -1;
    slot_.reconnects.fetch_add(1, std::memory_order_relaxed);
    set_state(shm::LinkState::down);
}

bool Output::gather() {
    bool any = false;
    shm::ReadBatch batch;
    for (uint32_t i = 0; i < reader_->ring_count() && pending_.size() < kMaxIov; ++i) {
        if (!reader_->read(i, kChunkMax, batch)) continue;
        stream_queued_ += batch.bytes();
        pending_.push_back(Chunk {batch, stream_queued_});
        any = true;
    }
    return any;
}

// Writes what is pending and not yet written. False when the connection failed.
bool Output::write_pending() {
    while (stream_written_ < stream_queued_) {
        struct iovec iov[kMaxIov * 2];
        size_t count = 0;
        for (const Chunk& c : pending_) {
            if (c.stream_end <= stream_written_) continue;
            const uint64_t stream_start = c.stream_end - c.batch.bytes();
            uint64_t skip = stream_written_ > stream_start ? stream_written_ - stream_start : 0;
            for (std::string_view span : c.batch.spans) {
                if (skip >= span.size()) {
                    skip -= span.size();
                    continue;
                }
                iov[count++] = {const_cast<char*>(span.data() + skip), span.size() - skip};
                skip = 0;
            }
            if (count >= kMaxIov * 2 - 1) break;
        }
        ssize_t n = ::writev(fd_, iov, static_cast<int>(count));
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pfd {fd_, POLLOUT, 0};
                poll(&pfd, 1, kIdleWaitMs);
                int64_t now = monotonic_ms();
                slot_.heartbeat_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed);
                if (!console_ && (pfd.revents & (POLLERR | POLLHUP))) {
                    disconnect("error while writing");
                    return false;
                }
                if (g_stop && (removed() || (drain_deadline_ms_ && now >= drain_deadline_ms_))) return true;
                commit_acked();
                continue;
            }
            disconnect(std::strerror(errno));
            return false;
        }
        stream_written_ += static_cast<uint64_t>(n);
        commit_acked();
    }
    return true;
}

void Output::commit_acked() {
    uint64_t acked = stream_written_;
    if (!console_) {
        int unacked = 0;
        if (ioctl(fd_, SIOCOUTQ, &unacked) == 0) acked -= std::min<uint64_t>(acked, static_cast<uint64_t>(unacked));
    }
    if (acked > stream_acked_ || pending_.empty()) {
        stream_acked_ = acked;
        slot_.progress_ms.store(static_cast<uint64_t>(monotonic_ms()), std::memory_order_relaxed);
    }
    uint64_t lines = 0, bytes = 0;
    while (!pending_.empty() && pending_.front().stream_end <= acked) {
        const shm::ReadBatch& c = pending_.front().batch;
        reader_->commit(c);
        lines += c.lines;
        bytes += c.bytes();
        pending_.pop_front();
    }
    if (lines) {
        slot_.sent_lines.fetch_add(lines, std::memory_order_relaxed);
        slot_.sent_bytes.fetch_add(bytes, std::memory_order_relaxed);
    }
}

// carbon never writes back; a readable socket means it closed or reset.
bool Output::peer_closed() {
    if (console_) return false;
    char sink[512];
    ssize_t n = ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EINTR;
    return false;
}

int Output::run() {
    text_.assign(slot_.text, strnlen(slot_.text, sizeof slot_.text));
    console_ = slot_.type == static_cast<uint32_t>(shm::DestinationType::console);
    std::string error;
    if (!console_ && !route::parse_destination(text_, destination_, error)) {
        LOG_ERROR("destination %s: %s", text_.c_str(), error.c_str());
        return kExitDoNotRestart;
    }
    UniqueFd lock;
    int exit_code = 0;
    queue_ = attach_output_queue(heritage_, text_, lock, exit_code);
    if (!queue_) return exit_code;
    QueueSyncer syncer(*queue_, lock.get(), config_.sync_interval_s, text_);
    reader_ = std::make_unique<shm::QueueReader>(*queue_);

    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    int64_t next_connect_ms = 0;
    // After losing an established connection, try again soon; after a failed connect, wait.
    const int64_t retry_lost_ms = std::min<int64_t>(1000, static_cast<int64_t>(reconnect_interval_s()) * 1000);
    for (;;) {
        int64_t now = monotonic_ms();
        slot_.heartbeat_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed);
        if (pending_.empty()) slot_.progress_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed);
        if (removed()) {
            // deldest. broadcast: the other destinations have their own copies. hash-route: the
            // lines belong elsewhere now; move them, then stop.
            if (!queues_move(heritage_) || console_) break;
            if (fd_ >= 0) disconnect("destination removed", false);
            if (queue_->queued_bytes() == 0) break;
            if (may_reroute()) {
                if (!reroute_batch() && rerouter_ && !rerouter_->has_targets()) {
                    LOG_WARN("destination %s: removed with %llu queued lines and no other destination to take them; discarding",
                             text_.c_str(), static_cast<unsigned long long>(queue_->queued_lines()));
                    break;
                }
                if (g_stop) break;
                continue;
            }
            if (g_stop) break;
            nap(50);
            continue;
        }
        if (g_stop) {
            if (!drain_deadline_ms_) drain_deadline_ms_ = now + static_cast<int64_t>(drain_timeout_s()) * 1000;
            if (fd_ < 0 || now >= drain_deadline_ms_ || (pending_.empty() && reader_->caught_up())) break;
        }
        if (fd_ < 0) {
            if (now < next_connect_ms) {
                // Out of the ring: move what is queued here to the destinations now holding it.
                bool out_of_ring = slot_.in_ring.load(std::memory_order_acquire) == 0;
                if (!(out_of_ring && may_reroute() && reroute_batch())) nap(100);
                continue;
            }
            if (!connect_destination()) {
                next_connect_ms = now + static_cast<int64_t>(reconnect_interval_s()) * 1000;
                continue;
            }
        }
        bool gathered = gather();
        if (stream_written_ < stream_queued_ && !write_pending()) {
            next_connect_ms = monotonic_ms() + retry_lost_ms;
            continue;
        }
        if (gathered) continue;
        if (!pending_.empty()) {
            // Written but not yet acknowledged: wait a moment for the ACKs, watching for a close.
            struct pollfd pfd {fd_, POLLIN, 0};
            poll(&pfd, 1, kAckPollMs);
            if (pfd.revents && peer_closed()) {
                disconnect("closed by peer");
                next_connect_ms = monotonic_ms() + retry_lost_ms;
                continue;
            }
            commit_acked();
            continue;
        }
        if (peer_closed()) {
            disconnect("closed by peer");
            next_connect_ms = monotonic_ms() + retry_lost_ms;
            continue;
        }
        reader_->wait(kIdleWaitMs, [] { return !g_stop; });
    }
    set_state(shm::LinkState::stopped);
    uint64_t left = queue_->queued_lines();
    if (left) LOG_INFO("destination %s: output stopping with %llu lines queued (kept in %s)", text_.c_str(),
                       static_cast<unsigned long long>(left), queue_->path().c_str());
    return 0;
}

}  // namespace

int run_output(const Heritage& heritage) {
    if (heritage.control->destinations[heritage.index].type == static_cast<uint32_t>(shm::DestinationType::https))
        return run_https_output(heritage);
    Output output(heritage);
    return output.run();
}

}  // namespace polymur
