#include "worker/pickle_framing.hpp"

#include <algorithm>
#include <ctime>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "protocol/line.hpp"
#include "protocol/pickle_writer.hpp"
#include "shm/queue.hpp"

namespace polymur {
namespace {
constexpr int64_t kRefusedLogMs = 60000;
}

PickleFraming::PickleFraming(std::string destination, std::atomic<uint64_t>& unsendable)
        : destination_(std::move(destination)), unsendable_(unsendable) {
    // Room for the longest line any producer writes, so the copy never allocates.
    wrapped_.reserve(shm::kMaxQueuedLine);
}

void PickleFraming::refuse(const char* why) {
    unsendable_.fetch_add(1, std::memory_order_relaxed);
    if (!refused_since_log_++) first_reason_ = why;
    int64_t now = monotonic_ms();
    if (last_log_ms_ && now - last_log_ms_ < kRefusedLogMs) return;
    last_log_ms_ = now;
    LOG_WARN("destination %s: %llu queued lines cannot be pickled and were left out (counted as unsendable; first: %s)",
             destination_.c_str(), static_cast<unsigned long long>(refused_since_log_), first_reason_);
    refused_since_log_ = 0;
}

void PickleFraming::add_line(std::string_view line, std::string& out, protocol::PickleFrameWriter& writer) {
    protocol::ParsedLine parsed;
    // The listener validated every queued line; this holds against a queue file damaged on disk.
    if (protocol::parse_line(line, parsed) != protocol::LineError::none) return refuse("not a valid line");
    if (!writer.fits_a_frame(parsed.name)) return refuse("a name longer than a pickle frame holds");
    double timestamp = 0, value = 0;
    if (parsed.timestamp_is_now) timestamp = static_cast<double>(std::time(nullptr));
    else if (!protocol::carbon_float(parsed.timestamp, timestamp)) return refuse("a timestamp that is not a number");
    if (!protocol::carbon_float(parsed.value, value)) return refuse("a value that is not a number");
    writer.add(parsed.name, timestamp, value);
}

void PickleFraming::frame(const shm::ReadBatch& batch, std::string_view (&parts)[2]) {
    std::string out;
    if (!spare_.empty()) {
        out = std::move(spare_.back());
        spare_.pop_back();
    }
    out.clear();
    protocol::PickleFrameWriter writer(out, kMaxPayload);
    // Batches end at a line end; only the line across the wrap (end of spans[0], start of
    // spans[1]) is split, and it is copied whole.
    std::string_view first = batch.spans[0], second = batch.spans[1];
    while (!first.empty()) {
        size_t end = first.find('\n');
        if (end == std::string_view::npos) {
            size_t tail = std::min(second.find('\n'), second.size());
            wrapped_.assign(first);
            wrapped_.append(second.substr(0, tail));
            add_line(wrapped_, out, writer);
            second.remove_prefix(std::min(second.size(), tail + 1));
            break;
        }
        add_line(first.substr(0, end), out, writer);
        first.remove_prefix(end + 1);
    }
    while (!second.empty()) {
        size_t end = std::min(second.find('\n'), second.size());
        add_line(second.substr(0, end), out, writer);
        second.remove_prefix(std::min(second.size(), end + 1));
    }
    wrapped_.clear();
    writer.finish();
    in_flight_.push_back(std::move(out));
    parts[0] = in_flight_.back();
    parts[1] = {};
}

void PickleFraming::release_oldest() {
    if (in_flight_.empty()) return;
    spare_.push_back(std::move(in_flight_.front()));
    in_flight_.pop_front();
}

void PickleFraming::reset() {
    while (!in_flight_.empty()) release_oldest();
}

}  // namespace polymur
