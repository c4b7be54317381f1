#include "protocol/line.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

namespace polymur::protocol {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Python's float() (what carbon uses) takes a leading '+'; from_chars does not.
bool parse_number(std::string_view text, double& value) {
    if (!text.empty() && text.front() == '+') {
        text.remove_prefix(1);
        if (!text.empty() && (text.front() == '-' || text.front() == '+')) return false;
    }
    if (text.empty()) return false;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    return ec == std::errc() && ptr == end;
}

bool is_digit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

// A plain decimal: -?digits[.digits][e[+-]digits], at least one digit before the exponent.
bool is_plain_decimal(const char* p, const char* end) {
    if (p < end && *p == '-') ++p;
    size_t digits = 0;
    while (p < end && is_digit(*p)) ++p, ++digits;
    if (p < end && *p == '.') {
        ++p;
        while (p < end && is_digit(*p)) ++p, ++digits;
    }
    if (!digits) return false;
    if (p < end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < end && (*p == '+' || *p == '-')) ++p;
        size_t exponent = 0;
        while (p < end && is_digit(*p)) ++p, ++exponent;
        if (!exponent) return false;
    }
    return p == end;
}

// The common case, `name value timestamp` with single spaces, a plain decimal value and an
// unsigned integer timestamp, found with three memchr and no conversion. Anything else returns
// false and goes through the general parser, which decides.
bool parse_canonical(std::string_view line, ParsedLine& out) {
    const char* begin = line.data();
    const char* end = begin + line.size();
    const char* first = static_cast<const char*>(std::memchr(begin, ' ', line.size()));
    if (!first || first == begin) return false;
    const char* second = static_cast<const char*>(std::memchr(first + 1, ' ', static_cast<size_t>(end - first - 1)));
    if (!second || second == first + 1 || second + 1 == end) return false;
    if (std::memchr(second + 1, ' ', static_cast<size_t>(end - second - 1))) return false;
    unsigned char control = 0;  // no early exit, so the compiler can vectorise the scan
    for (const char* p = begin; p < first; ++p) {
        unsigned char c = static_cast<unsigned char>(*p);
        control |= static_cast<unsigned char>((c < 0x20) | (c == 0x7f));
    }
    if (control) return false;
    if (!is_plain_decimal(first + 1, second)) return false;
    if (end - second - 1 > 18) return false;
    for (const char* p = second + 1; p < end; ++p)
        if (!is_digit(*p)) return false;
    out.name = std::string_view(begin, static_cast<size_t>(first - begin));
    out.value = std::string_view(first + 1, static_cast<size_t>(second - first - 1));
    out.timestamp = std::string_view(second + 1, static_cast<size_t>(end - second - 1));
    out.timestamp_is_now = false;
    out.canonical = true;
    return true;
}

}  // namespace

LineError parse_line(std::string_view line, ParsedLine& out) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (parse_canonical(line, out)) return LineError::none;
    return parse_line_general(line, out);
}

LineError parse_line_general(std::string_view line, ParsedLine& out) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view fields[3];
    size_t count = 0;
    size_t pos = 0;
    size_t separators = 0;
    const size_t size = line.size();
    while (pos < size) {
        while (pos < size && is_blank(line[pos])) ++pos, ++separators;
        if (pos == size) break;
        size_t start = pos;
        while (pos < size && !is_blank(line[pos])) ++pos;
        if (count == 3) return LineError::field_count;
        fields[count++] = line.substr(start, pos - start);
    }
    if (count == 0) return LineError::empty;
    if (count != 3) return LineError::field_count;

    for (unsigned char c : fields[0])
        if (c < 0x20 || c == 0x7f) return LineError::bad_name;

    double value = 0;
    if (!parse_number(fields[1], value) || std::isnan(value)) return LineError::bad_value;

    double timestamp = 0;
    if (!parse_number(fields[2], timestamp) || !std::isfinite(timestamp)) return LineError::bad_timestamp;
    bool now = timestamp == -1;
    if (timestamp < 0 && !now) return LineError::bad_timestamp;

    out.name = fields[0];
    out.value = fields[1];
    out.timestamp = fields[2];
    out.timestamp_is_now = now;
    out.canonical = !now && separators == 2 && fields[0].data() == line.data() &&
                    fields[2].data() + fields[2].size() == line.data() + line.size() && line[fields[0].size()] == ' ' &&
                    fields[1].data()[fields[1].size()] == ' ';
    return LineError::none;
}

const char* describe(LineError error) {
    switch (error) {
        case LineError::none: return "valid";
        case LineError::empty: return "empty line";
        case LineError::field_count: return "expected 3 fields: name value timestamp";
        case LineError::bad_name: return "control character in metric name";
        case LineError::bad_value: return "value is not a number";
        case LineError::bad_timestamp: return "timestamp is not a non-negative number or -1";
    }
    return "unknown";
}

}  // namespace polymur::protocol
