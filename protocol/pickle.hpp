// Carbon's pickle protocol: a 4-byte big-endian length, then a pickled list of
// `(name, (timestamp, value))`. Pure code, no I/O; a reader keeps its buffers between frames, so a
// steady stream of frames allocates nothing.
//
// This is not an unpickler. It understands only the opcodes Python's pickle (protocols 0-5, Python 2
// and 3) emits for that structure: lists and tuples, memo puts and gets, ints, floats, longs, strings,
// bytes and unicode. Anything that would import, call or build an object (GLOBAL, STACK_GLOBAL,
// REDUCE, BUILD, INST, OBJ, NEWOBJ, EXT*, PERSID...) or any opcode it does not know makes the frame an
// error, as carbon's safe unpickler refuses them. Nothing in a frame is ever executed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace polymur::protocol {

// carbon's PICKLE_RECEIVER_MAX_LENGTH (2**20): a longer frame closes the connection there too.
inline constexpr uint32_t kPickleMaxFrame = 1u << 20;

enum class PickleError {
    none,
    empty,             // a frame of length 0
    truncated,         // the pickle ends before STOP or inside an opcode's argument
    forbidden_opcode,  // an opcode that imports or calls (GLOBAL, REDUCE, ...)
    unknown_opcode,    // an opcode this reader does not implement
    bad_argument,      // a malformed argument (INT that is not a number, bad quoting, bad memo index)
    bad_structure,     // stack or mark misuse, or the result is not a list
    trailing_bytes,    // bytes after STOP
};

const char* describe(PickleError error);

// One element of the list, as text a line parser can judge. `name`, `timestamp` and `value` stay
// valid until the next call of next() or decode().
struct PickleMetric {
    std::string_view name;
    std::string_view timestamp;
    std::string_view value;
};

class PickleReader {
public:
    // Decodes one frame's payload (without its length prefix). On success next() walks the list.
    PickleError decode(std::string_view payload);

    enum class Next { metric, malformed, end };
    // The next element: `metric` with `out` filled; `malformed` for an element that is not
    // (name, (timestamp, value)) with a str/bytes name and numbers (int, float, or str/bytes holding
    // one, as carbon's float() takes); `end` after the last.
    Next next(PickleMetric& out);

    // The opcode that made the last decode() fail (0 if none), for the log.
    uint8_t failed_opcode() const { return failed_opcode_; }

private:
    // numeral: the text of a number (protocol 0's INT, LONG, FLOAT), forwarded as written.
    enum class Kind : uint8_t { none, integer, numeral, real, text, tuple, list, boolean, unusable };
    struct Value {
        Kind kind = Kind::none;
        bool in_arena = false;  // text: in text_ (decoded escapes) rather than the payload
        bool memoized = false;  // a memo entry that was put
        uint32_t a = 0;         // text: offset; tuple: first item; list: list id
        uint32_t b = 0;         // text: length; tuple: count
        int64_t i = 0;          // integer
        double f = 0;           // real
    };
    struct ListNode {
        Value value;
        uint32_t next;
    };
    struct List {
        uint32_t head, tail, count;
    };
    static constexpr uint32_t kNil = ~0u;

    std::string_view text_of(const Value& v) const;
    bool number_text(const Value& v, char* buf, std::string_view& out) const;
    // The i-th item of a tuple or list, for the two small sequences of one metric.
    bool item(const Value& seq, uint32_t index, uint32_t expected_size, Value& out) const;
    void append_to_list(uint32_t list, const Value& v);

    std::string_view payload_;
    std::vector<Value> stack_;
    std::vector<uint32_t> marks_;
    std::vector<Value> memo_;
    std::vector<Value> items_;  // tuple items, contiguous per tuple
    std::vector<ListNode> nodes_;
    std::vector<List> lists_;
    std::string text_;
    Value result_;
    uint32_t cursor_ = kNil;     // next node of the result list
    uint32_t tuple_cursor_ = 0;  // next item when the result is a tuple
    uint8_t failed_opcode_ = 0;
    char timestamp_buf_[64];
    char value_buf_[64];
};

// Reads the 4-byte big-endian frame length at the start of `bytes` (at least 4 of them).
inline uint32_t pickle_frame_length(const char* bytes) {
    const auto* u = reinterpret_cast<const unsigned char*>(bytes);
    return (uint32_t(u[0]) << 24) | (uint32_t(u[1]) << 16) | (uint32_t(u[2]) << 8) | uint32_t(u[3]);
}

// Whether the start of a plaintext connection looks like a carbon pickle frame: a length below
// 16 MiB, then PROTO (protocol 2+), `(l` (protocol 0's MARK LIST) or `]` (protocol 1's EMPTY_LIST).
bool looks_like_pickle_frame(std::string_view start);

}  // namespace polymur::protocol
