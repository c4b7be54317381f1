// Graphite plaintext: `name value timestamp`. Pure code, no I/O, no allocation.
#pragma once

#include <string_view>

namespace polymur::protocol {

enum class LineError { none, empty, field_count, bad_name, bad_value, bad_timestamp };

struct ParsedLine {
    std::string_view name;
    std::string_view value;
    std::string_view timestamp;
    bool timestamp_is_now = false;  // "-1": the relay stamps the time it received the line
    // True when the line is already `name value timestamp` with single spaces, so it can be
    // forwarded byte for byte.
    bool canonical = false;
};

// `line` is one line without its '\n'; a trailing '\r' is accepted and dropped.
LineError parse_line(std::string_view line, ParsedLine& out);

// The general parser, without parse_line's fast path for the common form (for tests).
LineError parse_line_general(std::string_view line, ParsedLine& out);

const char* describe(LineError error);

}  // namespace polymur::protocol
