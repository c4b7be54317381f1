// Writes carbon's pickle framing as carbon-relay does (DESTINATION_PROTOCOL = pickle): frames of a
// 4-byte big-endian length, then a protocol 2 pickle of a list of (name, (timestamp, value)) with
// the name a unicode string and both numbers floats (carbon's own types). Pure code, no I/O; it
// appends to the caller's buffer, so a reused buffer allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace polymur::protocol {

class PickleFrameWriter {
public:
    // Frames hold at most `max_payload` bytes after the length prefix (carbon refuses frames over
    // its PICKLE_RECEIVER_MAX_LENGTH, 1 MiB by default).
    PickleFrameWriter(std::string& out, size_t max_payload) : out_(out), max_payload_(max_payload) {}

    // Bytes one metric takes in a frame; a name for which this exceeds what a frame holds fits no frame.
    static constexpr size_t metric_bytes(size_t name_size) { return name_size + 25; }
    bool fits_a_frame(std::string_view name) const {
        return kFrameOverhead + metric_bytes(name.size()) <= max_payload_;
    }

    // Adds a metric to the open frame, ending it and opening the next when it is full. The name
    // must fit a frame (fits_a_frame) and be valid UTF-8 (carbon decodes it as such).
    void add(std::string_view name, double timestamp, double value);
    // Ends the open frame, if it holds any metric.
    void finish();
    uint64_t frames() const { return frames_; }

private:
    static constexpr size_t kFrameOverhead = 6;  // PROTO 2, EMPTY_LIST, MARK ... APPENDS, STOP
    void open_frame();
    void put_double(double v);

    std::string& out_;
    const size_t max_payload_;
    size_t frame_start_ = 0;  // offset of the open frame's length prefix
    size_t metrics_ = 0;      // in the open frame
    uint64_t frames_ = 0;
    bool open_ = false;
};

}  // namespace polymur::protocol
