// pickle:// destinations: each batch of queued lines becomes carbon pickle frames (see
// protocol/pickle_writer.hpp), so polymur can feed a carbon-cache's PICKLE_RECEIVER_PORT as
// carbon-relay does. A batch's frames are written whole, so a connection lost between batches
// resumes at a frame boundary; a batch is confirmed once every byte of its frames was.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "protocol/pickle_writer.hpp"
#include "worker/stream_transport.hpp"

namespace polymur {

class PickleFraming final : public Framing {
public:
    // Lines that cannot be pickled (not a valid line, or a name longer than a frame holds) are left
    // out, added to `unsendable` and logged at most once a minute, naming `destination`.
    PickleFraming(std::string destination, std::atomic<uint64_t>& unsendable);

    void frame(const shm::ReadBatch& batch, std::string_view (&parts)[2]) override;
    void release_oldest() override;
    void reset() override;

    // A frame holds at most this much after its length prefix: a quarter of carbon's default
    // PICKLE_RECEIVER_MAX_LENGTH (1 MiB), as carbon-relay's 500-metric messages are far below it.
    static constexpr size_t kMaxPayload = 256 * 1024;

private:
    void add_line(std::string_view line, std::string& out, protocol::PickleFrameWriter& writer);
    void refuse(const char* why);

    std::string destination_;
    std::atomic<uint64_t>& unsendable_;
    std::deque<std::string> in_flight_;  // one buffer per framed batch, oldest first
    std::vector<std::string> spare_;     // written buffers, kept for their capacity
    std::string wrapped_;                // a line that wraps around the ring end is copied here
    uint64_t refused_since_log_ = 0;
    const char* first_reason_ = nullptr;
    int64_t last_log_ms_ = 0;
};

}  // namespace polymur
