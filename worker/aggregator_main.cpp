// The aggregator process: one per relay whose --rules file has aggregate rules. It reads the points the listeners
// queued for it (aggregator.queue, worker/aggregator_feed.hpp), feeds the engine (aggregate/engine.hpp), and
// writes each finished bucket into the queues of the destinations the routing table sends it to, through a ring
// of its own in each (as a listener would). See docs/AGGREGATION.md, "The aggregator in the relay".
//
// Durability, in three rules:
// - Its input is committed only up to points whose buckets have been emitted: a crash re-reads the rest.
// - Before it publishes the results of a tick it writes them, with the tick's time, to aggregator.state
//   (temporary file, fsync, rename). The time says which buckets were emitted (every bucket of a series is due
//   at start + expire + the series' own offset); a restart skips points of those buckets, and publishes the
//   results it recorded into each queue whose aggregator ring has not got them yet (its write position says).
// - So a kill -9 or a restart re-reads at most the open buckets' points, loses none and emits no bucket twice.
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "aggregate/engine.hpp"
#include "aggregate/state_file.hpp"
#include "common/clock.hpp"
#include "common/durable_file.hpp"
#include "common/heritage.hpp"
#include "common/log.hpp"
#include "shm/queue_reader.hpp"
#include "worker/live_routes.hpp"
#include "worker/stop_pipe.hpp"

namespace polymur {
namespace {

constexpr uint64_t kReadBytes = 1 << 20;  // per ring per turn
constexpr int kWaitMs = 100;              // longest sleep between heartbeats and stop checks
constexpr int64_t kTickMs = 1000;         // buckets are emitted at most this late (carbon-c-relay: 1 s)
using Pending = aggregate::RecordedResults;
using State = aggregate::SavedState;

// Read so far and not committed: whole batches of one ring, each with the time its last bucket is due.
struct Chunk {
    uint64_t end = 0, lines = 0;
    int64_t due_ms = 0;
};

// False with `error` when the file exists but cannot be read as a state file.
bool read_state(const std::string& path, State& state, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {  // none yet: a first start
        state.version = 0;
        return true;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        error = "cannot be read";
        return false;
    }
    return aggregate::parse_state(text.str(), state, error);
}

class Aggregator {
public:
    explicit Aggregator(const Heritage& heritage)
            : config_(*heritage.config), table_(*heritage.rules), slot_(heritage.control->aggregator),
              routes_(heritage, LiveRoutes::Writer::aggregator), engine_(table_),
              result_(std::make_unique<route::RouteResult>()), ring_(aggregator_ring(config_.workers)),
              state_path_(aggregator_state_path(config_.state_dir)) {
        wrapped_.reserve(shm::kMaxQueuedLine);
        for (size_t a = 0; a < table_.aggregate_count(); ++a) {
            fingerprints_.push_back(table_.aggregate_fingerprint(a));
            rule_of_.emplace(fingerprints_.back(), uint32_t(a));
            rule_field_.push_back(aggregate::rule_field(fingerprints_.back()));
        }
    }

    int run();

private:
    void beat() { slot_.heartbeat_ms.store(uint64_t(monotonic_ms()), std::memory_order_relaxed); }
    bool recover(State& state);
    void read_input();
    void add_line(std::string_view line, int64_t& due_ms);
    void tick(int64_t now_ms);
    void route_result(const aggregate::Result& r, int64_t now_s);
    void commit_emitted();
    void flush_counters();
    void log_rule_changes(const State& last);
    void log_discarded(int64_t now_ms, bool first);
    bool record_state(State& state, std::string& error) {
        state.fingerprints = fingerprints_;
        return replace_file_durably(state_path_, aggregate::format_state(state), error);
    }
    // The buffer of results for target `t` (-1: the aggregator's own queue).
    Pending& pending_for(int t);
    shm::RingProducer* producer_for(int t) {
        return t < 0 ? own_producer_.get() : routes_.targets()[size_t(t)].producer.get();
    }

    const Config& config_;
    const route::RoutingTable& table_;
    shm::AggregatorSlot& slot_;
    LiveRoutes routes_;
    aggregate::Engine engine_;
    std::unique_ptr<route::RouteResult> result_;
    const uint32_t ring_;
    const std::string state_path_;
    std::unique_ptr<shm::QueueFile> queue_;
    std::unique_ptr<shm::QueueReader> reader_;
    StopPipe stop_;  // SIGTERM, SIGINT: stop reading; what is not emitted stays queued
    std::unique_ptr<shm::RingProducer> own_producer_;
    std::vector<std::deque<Chunk>> chunks_;   // per input ring
    int64_t emitted_through_ms_ = INT64_MIN;  // every bucket due by then is emitted and recorded in the state file
    std::vector<Pending> pending_;            // per target, then the own queue last; reused tick after tick
    std::vector<int> pending_index_;          // target -> index into pending_, -1 when none this tick
    int own_pending_ = -1;
    std::string wrapped_;
    uint64_t results_dropped_ = 0, invalid_ = 0;
    // Rules by fingerprint: a queued point goes to the rule that queued it, or nowhere (it changed or is gone).
    std::vector<uint64_t> fingerprints_;  // per aggregate rule, in file order
    std::unordered_map<uint64_t, uint32_t> rule_of_;
    std::vector<std::string> rule_field_;  // "<fingerprint> " per rule, for results that feed aggregates again
    uint64_t discarded_ = 0;               // queued points of a rule no longer in the file, skipped
    uint64_t discarded_by_index_ = 0;      // of those: queued by a polymur before fingerprints
    uint64_t discarded_logged_ = 0;
    int64_t discarded_log_ms_ = 0;
    int64_t next_tick_ms_ = 0;
    std::string crash_once_;  // TEST_AGGREGATOR_CRASH_ONCE (tests only): a file whose removal kills it once
};

Pending& Aggregator::pending_for(int t) {
    int& index = t < 0 ? own_pending_ : pending_index_[size_t(t)];
    if (index < 0) {
        index = int(pending_.size());
        pending_.emplace_back();
        pending_.back().target = t < 0 ? std::string() : routes_.targets()[size_t(t)].text;
        pending_.back().index = t;
    }
    return pending_[size_t(index)];
}

// A restart: the results the last run recorded go into each queue whose aggregator ring does not hold them yet.
bool Aggregator::recover(State& state) {
    std::string error;
    if (!read_state(state_path_, state, error)) {
        LOG_ERROR(
            "aggregator: state file %s: %s; move it away to start afresh (buckets open at the last stop may then "
            "be emitted twice)",
            state_path_.c_str(), error.c_str());
        return false;
    }
    for (const Pending& p : state.pending) {
        std::unique_ptr<shm::QueueFile> other;
        shm::QueueFile* queue = queue_.get();
        if (!p.target.empty()) {
            other = shm::QueueFile::open(queue_path(config_.state_dir, p.target), error);
            if (!other) {
                LOG_WARN("aggregator: %llu results recorded for %s, whose queue is gone (%s); not sent",
                         static_cast<unsigned long long>(p.lines), p.target.c_str(), error.c_str());
                continue;
            }
            queue = other.get();
        }
        if (ring_ + (p.target.empty() ? 0 : 1) >= queue->ring_count()) continue;
        uint64_t pos = 0, lines = 0;
        const shm::RingControl& control = queue->ring(ring_);
        if (!shm::read_published(control, pos, lines)) pos = control.write_pos.load(std::memory_order_acquire);
        if (pos >= p.start + p.bytes.size()) continue;  // published before the stop
        if (pos != p.start) {
            LOG_WARN(
                "aggregator: %llu results recorded for %s at queue position %llu, but the queue is at %llu "
                "(recreated?); not sent again",
                static_cast<unsigned long long>(p.lines), p.target.empty() ? "itself" : p.target.c_str(),
                static_cast<unsigned long long>(p.start), static_cast<unsigned long long>(pos));
            continue;
        }
        shm::RingProducer producer(*queue, ring_, config_.queue_cap);
        const std::string_view all(p.bytes);
        if (!producer.has_room_for(all.size(), p.lines)) {
            LOG_ERROR("aggregator: %llu results recorded for %s do not fit its full queue; dropped",
                      static_cast<unsigned long long>(p.lines), p.target.empty() ? "itself" : p.target.c_str());
            results_dropped_ += p.lines;
            continue;
        }
        for (size_t at = 0; at < all.size();) {
            size_t nl = all.find('\n', at);
            if (nl == std::string_view::npos) break;
            const std::string_view line = all.substr(at, nl + 1 - at);
            producer.append(&line, 1, line.size());
            at = nl + 1;
        }
        producer.publish();
        if (queue != queue_.get()) queue->wake_consumer();
        LOG_NOTICE("aggregator: published %llu results to %s that the last run recorded but had not published",
                   static_cast<unsigned long long>(p.lines), p.target.empty() ? "itself" : p.target.c_str());
    }
    return true;
}

void Aggregator::add_line(std::string_view line, int64_t& due_ms) {
    aggregate::QueuedPoint r;
    if (!aggregate::parse_queued_point(line.substr(0, line.size() - 1), r)) {
        ++invalid_;
        return;
    }
    const auto rule = r.by_index ? rule_of_.end() : rule_of_.find(r.fingerprint);
    if (rule == rule_of_.end()) {
        ++discarded_;
        discarded_by_index_ += r.by_index;
        return;
    }
    due_ms = std::max(due_ms, engine_.add(rule->second, r.name, r.value, r.timestamp, r.received));
}

void Aggregator::read_input() {
    shm::ReadBatch batch;
    for (uint32_t i = 0; i < reader_->ring_count(); ++i) {
        if (!reader_->read(i, kReadBytes, batch)) continue;
        int64_t due_ms = 0;
        const std::string_view first = batch.spans[0], second = batch.spans[1];
        for (uint64_t at = 0; at < batch.bytes();) {
            std::string_view rest = at < first.size() ? first.substr(at) : second.substr(at - first.size());
            const size_t nl = rest.find('\n');
            std::string_view line;
            if (nl != std::string_view::npos) {
                line = rest.substr(0, nl + 1);
            } else {  // runs from the end of the first span into the second
                wrapped_.assign(rest.data(), rest.size());
                wrapped_.append(second.data(), second.find('\n') + 1);
                line = wrapped_;
            }
            add_line(line, due_ms);
            at += line.size();
        }
        chunks_[i].push_back({batch.end, batch.lines, due_ms});
    }
}

void Aggregator::route_result(const aggregate::Result& r, int64_t now_s) {
    route::RouteResult& result = *result_;
    table_.route_aggregate_result(r.aggregate, r.name, routes_.up(), result);
    const std::string_view rest = r.line.substr(r.name.size());  // " value timestamp\n"
    for (uint16_t m : routes_.mirrors()) {
        Pending& p = pending_for(m);
        p.bytes.append(r.line);
        ++p.lines;
    }
    for (size_t k = 0; k < result.send_count; ++k) {
        const int target = routes_.target_of(result.sends[k].slot);
        if (target < 0) continue;
        Pending& p = pending_for(target);
        p.bytes.append(result.name_of(result.sends[k]));
        p.bytes.append(rest);
        ++p.lines;
    }
    if (result.feed_count) {
        // A result that an aggregate rule takes (a rule without `send to` routes it as a metric from outside).
        const std::string_view fields = rest.substr(1, rest.size() - 2);  // "value timestamp"
        char received[24];
        const size_t received_size = size_t(std::to_chars(received, received + sizeof received, now_s).ptr - received);
        Pending& p = pending_for(-1);
        for (size_t f = 0; f < result.feed_count; ++f) {
            p.bytes.append(rule_field_[result.feeds[f].aggregate]);
            p.bytes.append(received, received_size);
            p.bytes.append(" ");
            p.bytes.append(result.name_of(result.feeds[f]));
            p.bytes.append(" ");
            p.bytes.append(fields);
            p.bytes.append("\n");
            ++p.lines;
        }
    }
}

void Aggregator::tick(int64_t now_ms) {
    pending_.clear();
    pending_index_.assign(routes_.targets().size(), -1);
    own_pending_ = -1;
    const int64_t now_s = now_ms / 1000;
    engine_.tick(now_ms, [&](const aggregate::Result& r) { route_result(r, now_s); });
    if (pending_.empty()) {
        // Nothing emitted: every bucket due by now that had points was emitted (and recorded) earlier.
        emitted_through_ms_ = now_ms;
        return;
    }
    // Each queue gets all of its results or none: room is checked first, so what is recorded is what is written.
    State state;
    state.emitted_through_ms = now_ms;
    for (size_t i = 0; i < pending_.size(); ++i) {
        Pending& p = pending_[i];
        shm::RingProducer& producer = *producer_for(p.index);
        producer.refresh();
        if (!producer.has_room_for(p.bytes.size(), p.lines)) {
            results_dropped_ += p.lines;
            p.lines = 0;
            p.bytes.clear();
            continue;
        }
        const shm::RingControl& control = producer.queue().ring(ring_);
        uint64_t lines = 0;
        if (!shm::read_published(control, p.start, lines)) p.start = control.write_pos.load(std::memory_order_acquire);
        state.pending.push_back(p);
    }
    std::string error;
    if (!record_state(state, error)) {
        // Not recorded: not published either (a restart would emit them again). They are lost, and said so.
        LOG_ERROR("aggregator: cannot record emitted buckets in %s: %s; their results are dropped", state_path_.c_str(),
                  error.c_str());
        for (const Pending& p : pending_) results_dropped_ += p.lines;
        emitted_through_ms_ = now_ms;
        return;
    }
    // Tests: dies once between the record and the publish (the file named is removed first).
    if (!crash_once_.empty() && ::unlink(crash_once_.c_str()) == 0) _exit(kExitCrashed);
    for (size_t i = 0; i < pending_.size(); ++i) {
        Pending& p = pending_[i];
        if (!p.lines) continue;
        shm::RingProducer& producer = *producer_for(p.index);
        const std::string_view all(p.bytes);
        for (size_t at = 0; at < all.size();) {
            const size_t nl = all.find('\n', at);
            const std::string_view line = all.substr(at, nl + 1 - at);
            producer.append(&line, 1, line.size());
            at = nl + 1;
        }
        producer.publish();
        producer.queue().wake_consumer();
    }
    emitted_through_ms_ = now_ms;
}

// Input whose every bucket has been emitted (and recorded) leaves the queue.
void Aggregator::commit_emitted() {
    for (uint32_t i = 0; i < chunks_.size(); ++i) {
        std::deque<Chunk>& q = chunks_[i];
        uint64_t end = 0, lines = 0;
        while (!q.empty() && q.front().due_ms <= emitted_through_ms_) {
            end = q.front().end;
            lines += q.front().lines;
            q.pop_front();
        }
        if (lines) reader_->commit(i, end, lines);
    }
}

void Aggregator::flush_counters() {
    const aggregate::Counters& c = engine_.counters();
    slot_.points.store(c.points, std::memory_order_relaxed);
    slot_.late.store(c.late, std::memory_order_relaxed);
    slot_.future.store(c.future, std::memory_order_relaxed);
    slot_.buckets_emitted.store(c.buckets_emitted, std::memory_order_relaxed);
    slot_.replayed.store(c.replayed_emitted, std::memory_order_relaxed);
    slot_.series.store(engine_.series_count(), std::memory_order_relaxed);
    slot_.results_dropped.store(results_dropped_, std::memory_order_relaxed);
    slot_.invalid.store(invalid_, std::memory_order_relaxed);
    slot_.discarded.store(discarded_, std::memory_order_relaxed);
}

// One line when the aggregate rules are not those of the run that wrote the state file.
void Aggregator::log_rule_changes(const State& last) {
    // A first start, or a state file without fingerprints: what is queued is judged point by point.
    if (last.version < 2) return;
    size_t gone = 0, added = 0;
    for (uint64_t f : last.fingerprints) gone += !rule_of_.count(f);
    for (uint64_t f : fingerprints_)
        added += std::find(last.fingerprints.begin(), last.fingerprints.end(), f) == last.fingerprints.end();
    if (gone || added)
        LOG_NOTICE(
            "aggregator: the aggregate rules changed since the last run: %zu of its %zu rules are gone or changed, "
            "%zu of the %zu now are new or changed; the points queued for the gone ones are discarded, the others' "
            "open buckets are restored",
            gone, last.fingerprints.size(), added, fingerprints_.size());
}

// Queued points of rules no longer in the file: one line after the queue was read at the start, then at most one
// a minute while more come (a queue written by another polymur with other rules).
void Aggregator::log_discarded(int64_t now_ms, bool first) {
    if (discarded_ == discarded_logged_ || (!first && now_ms - discarded_log_ms_ < 60000)) return;
    LOG_WARN(
        "aggregator: discarded %llu queued points of aggregate rules that changed or were removed since they were "
        "queued (%llu of them queued by a polymur before rule fingerprints, whose rules cannot be checked); %llu in "
        "all since the start",
        static_cast<unsigned long long>(discarded_ - discarded_logged_),
        static_cast<unsigned long long>(discarded_by_index_), static_cast<unsigned long long>(discarded_));
    discarded_logged_ = discarded_;
    discarded_log_ms_ = now_ms;
}

int Aggregator::run() {
    stop_.install();
    std::string error;
    queue_ = shm::QueueFile::open(aggregator_queue_path(config_.state_dir), error);
    if (!queue_) {
        LOG_ERROR("aggregator: %s", error.c_str());
        return kExitDoNotRestart;
    }
    if (ring_ >= queue_->ring_count()) {
        LOG_ERROR("aggregator: queue %s has %u rings, not %u", queue_->path().c_str(), queue_->ring_count(), ring_ + 1);
        return kExitDoNotRestart;
    }
    // One consumer of the queue, even while the aggregator of a previous polymur is still stopping.
    UniqueFd lock = lock_file(queue_->path(), "aggregator");
    if (!lock) return kExitCrashed;
    reader_ = std::make_unique<shm::QueueReader>(*queue_);
    chunks_.resize(reader_->ring_count());
    State state;
    // Before any producer of this run exists: a producer takes its ring's write position when it is made.
    if (!recover(state)) return kExitDoNotRestart;
    own_producer_ = std::make_unique<shm::RingProducer>(*queue_, ring_, config_.queue_cap);
    routes_.refresh();
    if (const char* fault = std::getenv("TEST_AGGREGATOR_CRASH_ONCE")) crash_once_ = fault;
    emitted_through_ms_ = state.emitted_through_ms;
    engine_.set_emitted_through(state.emitted_through_ms);
    log_rule_changes(state);
    // The rules of this run on record (what the last run recorded is published by now).
    state.pending.clear();
    if (!record_state(state, error))
        LOG_ERROR("aggregator: cannot record the aggregate rules in %s: %s", state_path_.c_str(), error.c_str());
    beat();
    LOG_INFO("aggregator: %zu aggregate rules; resuming with %llu points queued", table_.aggregate_count(),
             static_cast<unsigned long long>(queue_->queued_lines()));
    // Everything queued before the first tick: a bucket whose time came while no aggregator ran must have all of
    // its points before it is emitted, or the rest would be dropped as late.
    while (!stop_.requested() && !reader_->caught_up()) {
        beat();
        read_input();
    }
    log_discarded(monotonic_ms(), true);
    while (!stop_.requested()) {
        beat();
        if (routes_.stale()) routes_.refresh();
        // Read what is queued (a bounded time, so a flood cannot hold back the ticks), then emit what is due.
        const int64_t read_until = monotonic_ms() + kWaitMs;
        do read_input();
        while (!reader_->caught_up() && monotonic_ms() < read_until);
        const int64_t now_ms = realtime_ns() / 1000000;
        if (now_ms >= next_tick_ms_) {
            tick(now_ms);
            commit_emitted();
            next_tick_ms_ = now_ms - now_ms % kTickMs + kTickMs;
        }
        flush_counters();
        log_discarded(monotonic_ms(), false);
        const int64_t until_tick = next_tick_ms_ - realtime_ns() / 1000000;
        reader_->wait(int(std::clamp<int64_t>(until_tick, 1, kWaitMs)), [this] { return !stop_.requested(); });
    }
    // Stopping: what was read and not emitted stays queued for the next start; nothing to save.
    flush_counters();
    LOG_INFO("aggregator: stopping; %llu points stay queued for open buckets",
             static_cast<unsigned long long>(queue_->queued_lines()));
    return 0;
}

}  // namespace

int run_aggregator(const Heritage& heritage) {
    if (!heritage.rules || heritage.rules->aggregate_count() == 0) return kExitDoNotRestart;
    auto aggregator = std::make_unique<Aggregator>(heritage);  // the engine's buffers are large: not on the stack
    return aggregator->run();
}

}  // namespace polymur
