#include "protocol/pickle_writer.hpp"

#include <cstring>

namespace polymur::protocol {
namespace {

// The opcodes (Python's Lib/pickle.py names).
constexpr char kProto = '\x80';
constexpr char kEmptyList = ']';
constexpr char kMark = '(';
constexpr char kBinUnicode = 'X';
constexpr char kBinFloat = 'G';
constexpr char kTuple2 = '\x86';
constexpr char kAppends = 'e';
constexpr char kStop = '.';

}  // namespace

void PickleFrameWriter::open_frame() {
    frame_start_ = out_.size();
    const char head[] = {0, 0, 0, 0, kProto, 2, kEmptyList, kMark};
    out_.append(head, sizeof head);
    metrics_ = 0;
    open_ = true;
}

void PickleFrameWriter::put_double(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    char bytes[9] = {kBinFloat};
    for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>(bits >> (56 - 8 * i));  // big-endian
    out_.append(bytes, sizeof bytes);
}

void PickleFrameWriter::add(std::string_view name, double timestamp, double value) {
    if (open_ && out_.size() - frame_start_ - 4 + metric_bytes(name.size()) + 2 > max_payload_) finish();
    if (!open_) open_frame();
    const uint32_t size = static_cast<uint32_t>(name.size());
    const char head[] = {kBinUnicode, static_cast<char>(size), static_cast<char>(size >> 8),
                         static_cast<char>(size >> 16), static_cast<char>(size >> 24)};  // little-endian
    out_.append(head, sizeof head);
    out_.append(name);
    put_double(timestamp);
    put_double(value);
    out_.push_back(kTuple2);
    out_.push_back(kTuple2);
    ++metrics_;
}

void PickleFrameWriter::finish() {
    if (!open_) return;
    open_ = false;
    if (!metrics_) {
        out_.resize(frame_start_);
        return;
    }
    out_.push_back(kAppends);
    out_.push_back(kStop);
    const uint32_t length = static_cast<uint32_t>(out_.size() - frame_start_ - 4);
    for (int i = 0; i < 4; ++i) out_[frame_start_ + i] = static_cast<char>(length >> (24 - 8 * i));
    ++frames_;
}

}  // namespace polymur::protocol
