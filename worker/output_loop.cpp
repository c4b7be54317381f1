// Output process: the only consumer of one destination's queue, and the one loop every kind of
// destination runs. It reads whole lines from the rings (shm::QueueReader), hands them to the
// destination's transport (worker/transport.hpp) and moves a ring's read position only past what the
// transport says the destination confirmed, so a crash, kill or reconnect resends instead of
// losing. The loop also owns connecting and retrying, heartbeats and progress for the supervisor's
// stall checks, hash-route failover (moving the queue elsewhere), and stopping within the drain
// timeout.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>

#include "common/clock.hpp"
#include "common/heritage.hpp"
#include "common/log.hpp"
#include "route/destination.hpp"
#include "shm/queue.hpp"
#include "shm/queue_reader.hpp"
#include "worker/compressed_stream.hpp"
#include "worker/https_transport.hpp"
#include "worker/linger.hpp"
#include "worker/pickle_framing.hpp"
#include "worker/queue_syncer.hpp"
#include "worker/reroute.hpp"
#include "worker/stop_pipe.hpp"
#include "worker/stream_transport.hpp"
#include "worker/tcp_stream.hpp"
#include "worker/tls_client.hpp"
#include "worker/tls_stream.hpp"

namespace polymur {
namespace {

constexpr size_t kMaxPending = 64;  // batches in flight (stream transports)
constexpr int kIdleWaitMs = 100;
constexpr int kAckPollMs = 2;
// Wake-ups, not lines, are what a moderate rate costs (each is a sleep and a wake of the process:
// 20-45 us of CPU on the 2-core VM of docs/PERFORMANCE.md). So while lines keep coming, the loop
// lingers until its point of the next --linger-ms period (worker/linger.hpp), a little after the
// listeners': it then wakes, writes and commits once a period instead of once per few lines, and
// producers, which see no sleeping consumer meanwhile, make no futex call. A round of kBusyRoundBytes
// or more, half of kMaxPending batches in flight, bytes the socket did not take or Linger::kBacklogBytes
// queued (unconfirmed included) is the destination being fed at speed or holding us back: the loop
// goes on at once. Sparse lines go out as they come, without a linger.
constexpr uint64_t kBusyRoundBytes = 256 * 1024;
constexpr int kSliceMs = 100;  // longest sleep between heartbeats and stop checks
constexpr int64_t kBackoffStartMs = 100;
constexpr int64_t kBackoffCapMs = 10000;
constexpr int64_t kStillFailingLogMs = 60000;

class OutputLoop final : public OutputLink {
public:
    explicit OutputLoop(const Heritage& heritage)
            : heritage_(heritage), config_(*heritage.config), slot_(heritage.control->destinations[heritage.index]),
              linger_(config_.linger_ms, Linger::output_phase_ms(config_.linger_ms)) {}
    ~OutputLoop() override {
        transport_.reset();
        if (tls_context_) SSL_CTX_free(tls_context_);
    }

    int run();

    void beat(int64_t now) override { slot_.heartbeat_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed); }
    void progressed(int64_t now) override {
        slot_.progress_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed);
    }
    bool must_abort(int64_t now) const override {
        return removed() || (stop_.requested() && drain_deadline_ms_ && now >= drain_deadline_ms_);
    }
    uint32_t connect_timeout_ms() const override {
        return heritage_.control->header.connect_timeout_ms.load(std::memory_order_relaxed);
    }

private:
    struct Pending {
        shm::ReadBatch batch;
        uint64_t end;  // transport position just past the batch
    };

    std::unique_ptr<Transport> make_transport(std::string& error);
    bool stream() const { return delivery_ == Delivery::stream; }
    bool connect();
    void connected();
    // A stream transport lost its connection. `peer_gone`: the destination closed or reset it.
    void lost(const std::string& why, bool peer_gone = true);
    void failure(const std::string& what, bool link_down);
    void delivered(bool batch);
    void hint_if_pickle_port();
    bool gather();
    enum class Lingered : uint8_t { no, yes, closed };
    // After a round (what gather() took): lingers when worker/linger.hpp says so; `closed` when the peer
    // closed meanwhile.
    Lingered linger();
    void commit_confirmed();
    bool stopping(int64_t now);
    // Handles deldest; true when the loop should end.
    bool on_removed();

    void set_state(shm::LinkState state) {
        slot_.link_state.store(static_cast<uint32_t>(state), std::memory_order_relaxed);
    }
    bool removed() const {
        return slot_.state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::SlotState::active);
    }
    // hash-route failover: this output may move its queue to other destinations now.
    bool may_reroute() const {
        return queues_move(heritage_) && routable_ &&
            heritage_.control->header.reroute_slot.load(std::memory_order_acquire) == heritage_.index;
    }
    // Moves a batch elsewhere; false when nothing moved.
    bool reroute_batch() {
        if (!rerouter_) rerouter_ = std::make_unique<Rerouter>(heritage_, heritage_.index);
        return rerouter_->move_batch(*reader_) > 0;
    }
    static void nap(int ms) {
        struct timespec pause = {0, ms * 1000000L};
        nanosleep(&pause, nullptr);
    }
    uint32_t reconnect_interval_s() const {
        return heritage_.control->header.reconnect_interval_s.load(std::memory_order_relaxed);
    }
    uint32_t drain_timeout_s() const {
        return heritage_.control->header.drain_timeout_s.load(std::memory_order_relaxed);
    }

    const Heritage& heritage_;
    const Config& config_;
    shm::DestinationSlot& slot_;
    std::string text_;
    shm::DestinationType type_ = shm::DestinationType::tcp;
    route::Destination destination_;  // tcp: as the supervisor parsed it (Heritage::destination)
    SSL_CTX* tls_context_ = nullptr;  // tls://: freed after the transport that uses it
    bool routable_ = false;           // a member of the hash ring (line destinations)
    std::unique_ptr<shm::QueueFile> queue_;
    std::unique_ptr<shm::QueueReader> reader_;
    std::unique_ptr<Transport> transport_;
    Delivery delivery_ = Delivery::stream;
    std::deque<Pending> pending_;  // handed to the transport, not yet confirmed
    uint64_t last_confirmed_ = 0;
    uint32_t first_ring_ = 0;   // rotates, so no ring waits behind the others
    uint64_t round_bytes_ = 0;  // what the last gather() took
    uint64_t round_lines_ = 0;
    Linger linger_;

    uint64_t failures_ = 0;  // stream: failed connects in a row; exchange: failed attempts in a row
    int64_t retry_at_ms_ = 0;
    int64_t backoff_ms_ = 0;
    int64_t streak_start_ms_ = 0;
    int64_t streak_logged_ms_ = 0;
    bool ever_connected_ = false;
    int64_t connected_at_ms_ = 0;
    bool sent_on_connection_ = false;
    uint32_t quick_closes_ = 0;  // connections in a row the destination closed soon after our first lines
    int64_t last_pickle_hint_ms_ = 0;
    int64_t drain_deadline_ms_ = 0;
    StopPipe stop_;  // SIGTERM, SIGINT: deliver until the queue is empty or the drain deadline
    std::unique_ptr<Rerouter> rerouter_;
};

std::unique_ptr<Transport> OutputLoop::make_transport(std::string& error) {
    if (type_ == shm::DestinationType::https)
        return make_https_transport(*this, config_, *heritage_.destination, error);
    std::unique_ptr<ByteStream> stream;
    if (type_ == shm::DestinationType::console) {
        stream = std::make_unique<ConsoleStream>();
    } else {
        const route::Wire& wire = destination_.wire;
        const std::string port = std::to_string(destination_.port);
        if (wire.tls) {
            tls_context_ =
                new_tls_client_context("destination-ca", config_.destination_ca, "destination-cert",
                                       config_.destination_cert, "destination-key", config_.destination_key, error);
            if (!tls_context_) return nullptr;
            stream = std::make_unique<TlsStream>(*this, tls_context_, destination_.host, port);
        } else {
            stream = std::make_unique<TcpStream>(*this, destination_.host, port);
        }
        if (wire.compression != protocol::Compression::none)
            stream = std::make_unique<CompressedStream>(wire.compression, std::move(stream));
    }
    std::unique_ptr<Framing> framing;
    if (destination_.wire.framing == route::Framing::pickle)
        framing = std::make_unique<PickleFraming>(text_, slot_.unsendable_lines);
    else framing = std::make_unique<LineFraming>();
    return std::make_unique<StreamTransport>(*this, std::move(framing), std::move(stream));
}

bool OutputLoop::connect() {
    set_state(shm::LinkState::connecting);
    std::string error;
    Io io = transport_->open(error);
    if (io == Io::ok) {
        connected();
        return true;
    }
    if (must_abort(monotonic_ms())) return false;              // the loop head stops
    slot_.reconnects.fetch_add(1, std::memory_order_relaxed);  // every failed attempt counts
    failure(error, true);
    return false;
}

void OutputLoop::connected() {
    const int64_t now = monotonic_ms();
    connected_at_ms_ = now;
    sent_on_connection_ = false;
    last_confirmed_ = 0;
    if (stream()) {
        if (failures_ || slot_.reconnects.load() > 0)
            LOG_NOTICE("destination %s: connected%s after %llu failed attempts", text_.c_str(),
                       transport_->connection_info().c_str(), static_cast<unsigned long long>(failures_));
        else LOG_INFO("destination %s: connected%s", text_.c_str(), transport_->connection_info().c_str());
        failures_ = 0;
        retry_at_ms_ = 0;
        slot_.consecutive_failures.store(0, std::memory_order_relaxed);
    } else if (!ever_connected_) {
        LOG_INFO("destination %s: connected%s", text_.c_str(), transport_->connection_info().c_str());
    }
    ever_connected_ = true;
    set_state(shm::LinkState::connected);
}

// A carbon pickle port reads our first bytes as a frame length far over its limit and closes the
// connection, after the kernel has acknowledged what we wrote: the lines look sent, and none arrive.
// Said when it happens on three connections in a row, and again at most every ten minutes.
void OutputLoop::hint_if_pickle_port() {
    int64_t now = monotonic_ms();
    if (++quick_closes_ < 3 || (last_pickle_hint_ms_ && now - last_pickle_hint_ms_ < 600000)) return;
    last_pickle_hint_ms_ = now;
    LOG_WARN(
        "destination %s: closed the connection right after our first lines, %u times in a row; it may be a pickle "
        "port (carbon's PICKLE_RECEIVER_PORT, 2004 by default), which cannot read plaintext: point polymur at its "
        "line port (LINE_RECEIVER_PORT, 2003)",
        text_.c_str(), quick_closes_);
}

void OutputLoop::lost(const std::string& why, bool peer_gone) {
    uint64_t unconfirmed = 0;
    for (const Pending& p : pending_) unconfirmed += p.batch.lines;
    LOG_WARN("destination %s: connection lost (%s); %llu unconfirmed lines will be sent again", text_.c_str(),
             why.c_str(), static_cast<unsigned long long>(unconfirmed));
    if (peer_gone && type_ == shm::DestinationType::tcp && destination_.wire.plain() && sent_on_connection_ &&
        monotonic_ms() - connected_at_ms_ < 5000)
        hint_if_pickle_port();
    else quick_closes_ = 0;
    pending_.clear();
    reader_->rewind();
    transport_->close(true);
    slot_.reconnects.fetch_add(1, std::memory_order_relaxed);
    set_state(shm::LinkState::down);
    // After losing an established connection, try again soon; after a failed connect, wait.
    retry_at_ms_ = monotonic_ms() + std::min<int64_t>(1000, static_cast<int64_t>(reconnect_interval_s()) * 1000);
}

void OutputLoop::failure(const std::string& what, bool link_down) {
    const int64_t now = monotonic_ms();
    ++failures_;
    slot_.consecutive_failures.store(failures_, std::memory_order_relaxed);
    if (link_down) set_state(shm::LinkState::down);
    if (stream()) {
        retry_at_ms_ = now + static_cast<int64_t>(reconnect_interval_s()) * 1000;
        // A stream's failures are failed connects (those are what --failover-after counts).
        LOG_WARN("destination %s: connect failed (%llu in a row): %s; retrying in %u s", text_.c_str(),
                 static_cast<unsigned long long>(failures_), what.c_str(), reconnect_interval_s());
        return;
    }
    backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, kBackoffCapMs) : kBackoffStartMs;
    retry_at_ms_ = now + backoff_ms_;
    if (failures_ == 1) {
        streak_start_ms_ = streak_logged_ms_ = now;
        uint64_t lines = 0;
        for (const Pending& p : pending_) lines += p.batch.lines;
        char kept[96] = "nothing queued yet";
        if (!pending_.empty())
            std::snprintf(kept, sizeof kept, "keeping the batch of %llu lines and every line behind it",
                          static_cast<unsigned long long>(lines));
        LOG_WARN("destination %s: %s; %s, retrying (backoff from %lld ms up to %lld s)", text_.c_str(), what.c_str(),
                 kept, static_cast<long long>(kBackoffStartMs), static_cast<long long>(kBackoffCapMs / 1000));
    } else if (now - streak_logged_ms_ >= kStillFailingLogMs) {
        streak_logged_ms_ = now;
        LOG_WARN("destination %s: still failing after %llu attempts in %lld s (%llu lines queued): %s", text_.c_str(),
                 static_cast<unsigned long long>(failures_), static_cast<long long>((now - streak_start_ms_) / 1000),
                 static_cast<unsigned long long>(queue_->queued_lines()), what.c_str());
    }
}

// An exchange transport's attempt succeeded (a batch confirmed, or the first connection).
void OutputLoop::delivered(bool batch) {
    if (failures_) {
        LOG_NOTICE("destination %s: %s after %llu failed attempts in %.1f s", text_.c_str(),
                   batch ? "delivering again" : "connected", static_cast<unsigned long long>(failures_),
                   static_cast<double>(monotonic_ms() - streak_start_ms_) / 1000.0);
    }
    failures_ = 0;
    backoff_ms_ = 0;
    retry_at_ms_ = 0;
    slot_.consecutive_failures.store(0, std::memory_order_relaxed);
    set_state(shm::LinkState::connected);
}

// Reads batches for the transport: a stream takes a batch per ring per round while fewer than
// kMaxPending are in flight; an exchange one round up to its batch limit, once the last is confirmed.
bool OutputLoop::gather() {
    round_bytes_ = round_lines_ = 0;
    if (!stream() && !pending_.empty()) return false;
    const uint64_t budget = transport_->batch_limit();
    const uint32_t rings = reader_->ring_count();
    uint64_t taken = 0, lines = 0;
    bool any = false;
    shm::ReadBatch batch;
    for (uint32_t k = 0; k < rings && taken < budget && pending_.size() < kMaxPending; ++k) {
        uint32_t i = (first_ring_ + k) % rings;
        // A line longer than the limit goes alone; after other lines, a later round takes it.
        if (!reader_->read(i, std::min(budget - taken, transport_->read_limit()), batch, stream() || taken == 0))
            continue;
        pending_.push_back(Pending {batch, transport_->add(batch)});
        taken += batch.bytes();
        lines += batch.lines;
        any = true;
    }
    first_ring_ = (first_ring_ + 1) % rings;
    round_bytes_ = taken;
    round_lines_ = lines;
    return any;
}

OutputLoop::Lingered OutputLoop::linger() {
    if (!linger_.enabled()) return Lingered::no;
    // Not a count of batches in flight: a destination that delays its acknowledgements (SIOCOUTQ) keeps a
    // few small ones unconfirmed at any rate; their bytes count in queued_bytes().
    const bool busy = round_bytes_ >= kBusyRoundBytes || pending_.size() >= kMaxPending / 2 ||
        transport_->has_unsent() || queue_->queued_bytes() > Linger::kBacklogBytes;
    const int64_t until = linger_.after_round(monotonic_ns(), round_lines_, busy);
    if (!until) return Lingered::no;
    // A stream sleeps in poll, which also notices the destination closing; an exchange just sleeps.
    if (!stream()) {
        sleep_until_ns(until);
        return Lingered::yes;
    }
    const int64_t ms = (until - monotonic_ns() + 999999) / 1000000;
    return transport_->await_confirmation(static_cast<int>(std::max<int64_t>(ms, 0))) ? Lingered::yes
                                                                                      : Lingered::closed;
}

void OutputLoop::commit_confirmed() {
    const uint64_t confirmed = transport_->confirmed();
    if (confirmed > last_confirmed_ || pending_.empty()) {
        last_confirmed_ = confirmed;
        progressed(monotonic_ms());
    }
    uint64_t lines = 0, bytes = 0;
    while (!pending_.empty() && pending_.front().end <= confirmed) {
        const shm::ReadBatch& b = pending_.front().batch;
        reader_->commit(b);
        lines += b.lines;
        bytes += b.bytes();
        pending_.pop_front();
    }
    if (lines) {
        slot_.sent_lines.fetch_add(lines, std::memory_order_relaxed);
        slot_.sent_bytes.fetch_add(bytes, std::memory_order_relaxed);
    }
}

// deldest. broadcast: the other destinations have their own copies. hash-route: the lines belong
// elsewhere now; move them, then stop. Returns true when the loop ends.
bool OutputLoop::on_removed() {
    if (!queues_move(heritage_) || !routable_) return true;
    if (transport_->is_open()) lost("destination removed", false);
    if (queue_->queued_bytes() == 0) return true;
    if (may_reroute()) {
        if (!reroute_batch() && rerouter_ && !rerouter_->has_targets()) {
            LOG_WARN("destination %s: removed with %llu queued lines and no other destination to take them; discarding",
                     text_.c_str(), static_cast<unsigned long long>(queue_->queued_lines()));
            return true;
        }
        return stop_.requested();
    }
    if (stop_.requested()) return true;
    nap(50);
    return false;
}

// On SIGTERM: deliver until the queue is empty or the drain deadline; a failing destination keeps it all.
bool OutputLoop::stopping(int64_t now) {
    if (!drain_deadline_ms_) drain_deadline_ms_ = now + static_cast<int64_t>(drain_timeout_s()) * 1000;
    const bool failing = stream() ? !transport_->is_open() : failures_ > 0;
    return failing || now >= drain_deadline_ms_ || (pending_.empty() && reader_->caught_up());
}

int OutputLoop::run() {
    text_.assign(slot_.text, strnlen(slot_.text, sizeof slot_.text));
    // What kind of destination this is comes from the supervisor's parse (the heritage), never from
    // shared memory or the text again.
    type_ = shm_destination_type(heritage_.destination);
    if (heritage_.destination) destination_ = heritage_.destination->endpoint;
    routable_ = heritage_.destination && heritage_.destination->ring_member();
    std::string error;
    transport_ = make_transport(error);
    if (!transport_) {
        LOG_ERROR("destination %s: %s", text_.c_str(), error.c_str());
        return kExitDoNotRestart;
    }
    delivery_ = transport_->delivery();
    UniqueFd lock;
    int exit_code = 0;
    queue_ = attach_output_queue(heritage_, text_, lock, exit_code);
    if (!queue_) return exit_code;
    QueueSyncer syncer(*queue_, lock.get(), config_.sync_interval_s, text_);
    reader_ = std::make_unique<shm::QueueReader>(*queue_);

    stop_.install();
    signal(SIGPIPE, SIG_IGN);

    for (;;) {
        int64_t now = monotonic_ms();
        beat(now);
        if (pending_.empty()) progressed(now);
        if (removed()) {
            if (on_removed()) break;
            continue;
        }
        if (stop_.requested() && stopping(now)) break;
        if (now < retry_at_ms_) {
            // Out of the ring: move what is queued here to the destinations now holding it.
            bool out_of_ring = slot_.in_ring.load(std::memory_order_acquire) == 0;
            if (pending_.empty() && out_of_ring && may_reroute() && reroute_batch()) continue;
            progressed(now);  // waiting out a backoff is not a stall: nothing is in flight
            nap(static_cast<int>(std::min<int64_t>(kSliceMs, retry_at_ms_ - now)));
            continue;
        }
        if (!transport_->is_open()) {
            if (!stream()) {
                // Connect at start even with nothing to send, so a certificate or network problem
                // shows at once; later, only to send (a gateway closes idle connections).
                gather();
                if (pending_.empty() && (ever_connected_ || stop_.requested())) {
                    reader_->wait(kIdleWaitMs, [&] { return !stop_.requested() && !removed(); });
                    continue;
                }
            }
            if (!connect()) continue;
            if (!stream() && pending_.empty()) {
                delivered(false);  // the first connection, made before there was anything to send
                continue;
            }
        }
        bool gathered = gather();
        if (transport_->has_unsent()) {
            Sent sent = transport_->send(error);
            if (sent == Sent::aborted) continue;  // the loop head stops
            if (sent == Sent::lost) {
                if (stream()) {
                    lost(error);
                } else {
                    slot_.reconnects.fetch_add(1, std::memory_order_relaxed);
                    if (!must_abort(monotonic_ms())) failure(error, true);
                }
                continue;
            }
            if (sent == Sent::refused) {
                failure(error, false);
                continue;
            }
            if (sent == Sent::smaller) {
                pending_.clear();
                reader_->rewind();
                continue;
            }
            sent_on_connection_ = true;
            if (!stream()) {
                delivered(true);
                commit_confirmed();
                linger();
                continue;
            }
        }
        commit_confirmed();
        if (gathered) {
            // Confirmations are committed after the linger, with the next round: no wake-up of their own.
            if (linger() == Lingered::closed) lost("closed by peer");
            continue;
        }
        if (!pending_.empty()) {
            // Sent but not yet confirmed. Stopping: wait a moment for it, watching for a close.
            // Running: it is committed with the next round, woken by new lines or after the idle
            // wait, so a confirmation costs no wake-up of its own; a close is looked for first.
            // Bytes the stream could not take yet are a reason to come back soon as well.
            const bool soon = stop_.requested() || transport_->has_unsent();
            if (!transport_->await_confirmation(soon ? kAckPollMs : 0)) {
                lost("closed by peer");
                continue;
            }
            commit_confirmed();
            if (soon || pending_.empty()) continue;
        } else if (transport_->is_open() && transport_->closed_while_idle()) {
            lost("closed by peer");
            continue;
        }
        // Lines were coming a period ago: one more linger may keep the cadence (worker/linger.hpp).
        round_bytes_ = round_lines_ = 0;
        const Lingered lingered = linger();
        if (lingered == Lingered::closed) lost("closed by peer");
        if (lingered != Lingered::no) continue;
        reader_->wait(kIdleWaitMs, [&] { return !stop_.requested() && !removed(); });
    }
    if (transport_->is_open()) transport_->close(false);
    set_state(shm::LinkState::stopped);
    uint64_t left = queue_->queued_lines();
    if (left && !removed())
        LOG_INFO("destination %s: output stopping with %llu lines queued (kept in %s)", text_.c_str(),
                 static_cast<unsigned long long>(left), queue_->path().c_str());
    return 0;
}

}  // namespace

Io OutputLink::wait_fd(int fd, short events, int64_t deadline, std::string& error) {
    for (;;) {
        int64_t now = monotonic_ms();
        beat(now);
        if (must_abort(now)) return Io::aborted;
        if (now >= deadline) {
            error = "timed out";
            return Io::failed;
        }
        struct pollfd pfd = {fd, events, 0};
        int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(kSliceMs, deadline - now)));
        if (rc > 0) return Io::ok;  // errors and hang-ups surface in the next read or write
        if (rc < 0 && errno != EINTR) {
            error = std::strerror(errno);
            return Io::failed;
        }
    }
}

int run_output(const Heritage& heritage) {
    OutputLoop output(heritage);
    return output.run();
}

}  // namespace polymur
