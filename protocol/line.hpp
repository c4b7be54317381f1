// Graphite plaintext: `name value timestamp`. Pure code, no I/O, no allocation.
//
// What is accepted is decided against carbon's own receiver (carbon/protocols.py, MetricLineReceiver):
// the README's "Input" section has the table, tests/unit/line_test.cpp a test per row and
// tests/process/test_carbon_differential.py the comparison with carbon itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace polymur::protocol {

enum class LineError { none, empty, field_count, bad_utf8, bad_name, bad_value, bad_timestamp };

struct ParsedLine {
    std::string_view name;
    std::string_view value;
    std::string_view timestamp;
    bool timestamp_is_now = false;  // -2 < timestamp <= -1: the relay stamps the time it received the line
    // True when the line is already `name value timestamp` with single spaces, so it can be
    // forwarded byte for byte.
    bool canonical = false;
};

// `line` is one line without its '\n'. Fields are separated by any run of what carbon (Python's
// str.split) calls whitespace: ASCII space, \t, \n, \v, \f, \r, \x1c-\x1f and the Unicode spaces
// (U+0085, U+00A0, U+2003, ...). The whole line must be valid UTF-8.
LineError parse_line(std::string_view line, ParsedLine& out);

// The general parser, without parse_line's fast path for the common form (for tests).
LineError parse_line_general(std::string_view line, ParsedLine& out);

// What a forwarded metric name must be (also a namespace prefix): valid UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF), no whitespace, no control character
// (U+0000-U+001F, U+007F-U+009F). Returns none, bad_utf8 or bad_name.
LineError check_name(std::string_view name);

// The number carbon's float() makes of a value or timestamp that parse_line accepted: overflow is
// +-inf (carbon reads 1e309 as inf), underflow +-0. False for text parse_line would refuse.
bool carbon_float(std::string_view text, double& out);

const char* describe(LineError error);

// A line scan_lines found: where its '\n' is and, for a line in the common form, its fields. A plain
// aggregate, so that an array of them is not written until used; `ScannedLine {}` is a line nothing is known of.
struct ScannedLine {
    uint32_t end;  // the offset of the line's '\n' in the scanned buffer
    // When canonical: the line (without its '\n') is one parse_line accepts as canonical, with its name
    // ending at offset `first` of the line and its value at `second` (the two spaces); nothing else is known
    // of a line that is not (parse_line decides it).
    uint8_t first, second;
    bool canonical;
};

// Every line of data[0, size) that ends with '\n', in order, into `out` (room for `size` entries: a line is
// at least its '\n'); returns how many. A line of at most 64 bytes before its '\n' is parsed on the way by
// parse_line's fast path, from vector masks of the whole buffer taken 64 bytes at a time (one pass for the
// newlines and the fields, no call per line). Pure code, no allocation.
size_t scan_lines(const char* data, size_t size, ScannedLine* out);

// The fields of a line scan_lines found canonical (`line` starts where the line does).
inline void scanned_fields(const char* line, const ScannedLine& s, size_t size, ParsedLine& out) {
    out.name = std::string_view(line, s.first);
    out.value = std::string_view(line + s.first + 1, size_t(s.second - s.first - 1));
    out.timestamp = std::string_view(line + s.second + 1, size - s.second - 1);
    out.timestamp_is_now = false;
    out.canonical = true;
}

// The registers parse_line's fast path reads a line of up to 64 bytes with: AVX2 where the CPU has it (chosen
// once, at start), SSE2 otherwise. Tests pick each in turn to check both (false: this CPU has no AVX2; nothing
// changes). Not for use while another thread parses.
enum class LineVectors { sse2, avx2 };
bool use_line_vectors(LineVectors vectors);

}  // namespace polymur::protocol
