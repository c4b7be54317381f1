#include "protocol/line.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace polymur::protocol {
namespace {

bool is_digit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

// Printable ASCII other than space: a byte that is a character of its own, never whitespace or control.
bool is_plain(unsigned char c) { return static_cast<unsigned char>(c - '!') <= '~' - '!'; }

enum class CharClass { other, space, control };

// One character at `p` (p < end), read as carbon reads it: strict UTF-8 as Python's decoder
// (RFC 3629: no overlong form, no surrogate, nothing past U+10FFFF), whitespace as Python's
// str.isspace() (what str.split() splits on). Returns the character's length in bytes, or 0 when
// the bytes there are not well-formed UTF-8.
size_t classify(const unsigned char* p, const unsigned char* end, CharClass& kind) {
    const unsigned char c = p[0];
    if (c < 0x80) {
        bool space = c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
        kind = space ? CharClass::space : (c < 0x20 || c == 0x7f) ? CharClass::control : CharClass::other;
        return 1;
    }
    const size_t avail = static_cast<size_t>(end - p);
    auto continuation = [&](size_t i) { return i < avail && (p[i] & 0xC0) == 0x80; };
    char32_t cp;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        if (!continuation(1)) return 0;
        cp = (char32_t(c & 0x1F) << 6) | (p[1] & 0x3F);
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (!continuation(1) || !continuation(2)) return 0;
        cp = (char32_t(c & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
        cp = (char32_t(c & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        if (cp < 0x10000 || cp > 0x10FFFF) return 0;
        len = 4;
    } else {
        return 0;  // a stray continuation byte, an overlong lead (C0, C1) or F5-FF
    }
    bool space = cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    kind = space ? CharClass::space : cp <= 0x9F ? CharClass::control : CharClass::other;  // C1 controls
    return len;
}

enum class NumberKind { invalid, finite, infinite, nan };

// Python's float() grammar on ASCII, which is what carbon applies to values and timestamps, less
// '_' digit grouping: [+-] then digits [. [digits]] or . digits, then [(e|E) [+-] digits]; or inf,
// infinity, nan in any case. `magnitude` is the power of ten of the first significant digit
// (clamped), so an out-of-range conversion can be told apart: overflow when it is >= 0.
NumberKind scan_number(std::string_view text, int64_t& magnitude) {
    const char* p = text.data();
    const char* end = p + text.size();
    if (p < end && (*p == '+' || *p == '-')) ++p;
    auto word = [&](const char* w) {
        size_t n = std::strlen(w);
        if (static_cast<size_t>(end - p) != n) return false;
        for (size_t i = 0; i < n; ++i)
            if ((p[i] | 0x20) != w[i]) return false;
        return true;
    };
    if (p < end && ((*p | 0x20) == 'i' || (*p | 0x20) == 'n'))
        return word("inf") || word("infinity") ? NumberKind::infinite
            : word("nan")                      ? NumberKind::nan
                                               : NumberKind::invalid;
    size_t digits = 0;
    int64_t integer_significant = 0, fraction_zeros = 0;
    bool significant = false;
    for (; p < end && is_digit(*p); ++p, ++digits)
        if (significant || *p != '0') significant = true, ++integer_significant;
    if (p < end && *p == '.') {
        for (++p; p < end && is_digit(*p); ++p, ++digits)
            if (!significant && *p == '0') ++fraction_zeros;
            else significant = true;
    }
    if (!digits) return NumberKind::invalid;
    magnitude = integer_significant ? integer_significant - 1 : -(fraction_zeros + 1);
    if (p < end && (*p == 'e' || *p == 'E')) {
        ++p;
        bool negative = p < end && *p == '-';
        if (p < end && (*p == '+' || *p == '-')) ++p;
        int64_t exponent = 0;
        size_t exponent_digits = 0;
        for (; p < end && is_digit(*p); ++p, ++exponent_digits)
            if (exponent < 1'000'000'000) exponent = exponent * 10 + (*p - '0');
        if (!exponent_digits) return NumberKind::invalid;
        magnitude += negative ? -exponent : exponent;
    }
    return p == end ? NumberKind::finite : NumberKind::invalid;
}

// A value is any number carbon reads, infinities and overflow (carbon reads 1e309 as inf)
// included, but not NaN (carbon drops it).
bool valid_value(std::string_view text) {
    int64_t magnitude;
    NumberKind kind = scan_number(text, magnitude);
    return kind == NumberKind::finite || kind == NumberKind::infinite;
}

}  // namespace

bool carbon_float(std::string_view text, double& out) {
    int64_t magnitude = 0;
    NumberKind kind = scan_number(text, magnitude);
    if (kind == NumberKind::invalid) return false;
    const bool negative = text.front() == '-';
    if (text.front() == '+' || text.front() == '-') text.remove_prefix(1);
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ptr != text.data() + text.size()) return false;
    if (ec == std::errc::result_out_of_range) out = magnitude >= 0 ? std::numeric_limits<double>::infinity() : 0.0;
    else if (ec != std::errc()) return false;
    if (negative) out = -out;
    return true;
}

namespace {

// carbon turns a timestamp with int(ts) == -1 into "now" and fails on int(inf), dropping the
// connection: so finite only, -2 < ts <= -1 means now, other negative ones are refused.
bool valid_timestamp(std::string_view text, bool& now) {
    int64_t magnitude = 0;
    if (scan_number(text, magnitude) != NumberKind::finite) return false;
    if (text.front() == '+') text.remove_prefix(1);
    double timestamp = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), timestamp);
    if (ptr != text.data() + text.size()) return false;
    if (ec == std::errc::result_out_of_range) {
        if (magnitude >= 0) return false;  // overflows a double: carbon's int(ts) would raise
        timestamp = 0;                     // underflows to (-)0
    } else if (ec != std::errc()) {
        return false;
    }
    now = timestamp > -2 && timestamp <= -1;
    return now || timestamp >= 0;
}

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

// The fields of a canonical line once its two single spaces are found: a valid name (checked byte
// by byte only when `name_outside` says it holds a byte outside '!'..'~'), a plain decimal value and
// an unsigned integer timestamp of at most 18 digits (`stamp_digits`: the caller found all of its
// bytes are digits already).
bool canonical_fields(const char* begin, const char* first, const char* second, const char* end, bool name_outside,
                      bool stamp_digits, ParsedLine& out) {
    if (first == begin || second == first + 1 || second + 1 == end) return false;
    // A name with UTF-8 stays here when it is a valid name (so holds no whitespace to split on).
    if (name_outside && check_name(std::string_view(begin, static_cast<size_t>(first - begin))) != LineError::none)
        return false;
    if (!is_plain_decimal(first + 1, second)) return false;
    if (end - second - 1 > 18) return false;
    if (!stamp_digits)
        for (const char* p = second + 1; p < end; ++p)
            if (!is_digit(*p)) return false;
    out.name = std::string_view(begin, static_cast<size_t>(first - begin));
    out.value = std::string_view(first + 1, static_cast<size_t>(second - first - 1));
    out.timestamp = std::string_view(second + 1, static_cast<size_t>(end - second - 1));
    out.timestamp_is_now = false;
    out.canonical = true;
    return true;
}

#if defined(__SSE2__)
// Masks of a line's bytes: bit i set where byte i is a space / inside '!'..'~' / a digit / a '.'.
struct Masks {
    uint64_t spaces = 0, plain = 0, digits = 0, dots = 0;
};

// 16 or 32 bytes as GCC vectors: one source for both widths (AVX2 code where inlined into an avx2 function).
typedef unsigned char Bytes16 __attribute__((vector_size(16)));
typedef signed char Mask16 __attribute__((vector_size(16)));
inline __attribute__((always_inline)) uint32_t movemask(Mask16 m) {
    return static_cast<uint32_t>(_mm_movemask_epi8(reinterpret_cast<__m128i>(m)));
}

#if defined(__x86_64__)
typedef unsigned char Bytes32 __attribute__((vector_size(32)));
typedef signed char Mask32 __attribute__((vector_size(32)));
__attribute__((target("avx2"))) inline uint32_t movemask(const Mask32& m) {  // by reference: no AVX argument
    return static_cast<uint32_t>(_mm256_movemask_epi8(reinterpret_cast<__m256i>(m)));
}
#endif

// Adds the bytes at `p` (a Bytes16 or Bytes32 of them) to `m`, shifted to bit `at`.
template <class Bytes>
inline __attribute__((always_inline)) void classify(const char* p, unsigned at, Masks& m) {
    Bytes bytes;
    std::memcpy(&bytes, p, sizeof bytes);
    const Bytes from_bang = bytes - '!', from_0 = bytes - '0';  // unsigned: a range is one compare
    m.spaces |= uint64_t(movemask(bytes == ' ')) << at;
    m.plain |= uint64_t(movemask(from_bang <= '~' - '!')) << at;
    m.digits |= uint64_t(movemask(from_0 <= 9)) << at;
    m.dots |= uint64_t(movemask(bytes == '.')) << at;
}

// The fields of a line of at most 64 bytes from its masks `m`: the two spaces are found, their number
// checked, the name classified, the value's common form (digits with at most one '.', after an optional
// '-') and the timestamp's digits checked without a memchr call or a byte loop. What the masks do not
// settle (a name with bytes outside '!'..'~', a value with an exponent) is checked by canonical_fields as
// for longer lines.
inline __attribute__((always_inline)) bool canonical_from_masks(const char* begin, size_t size, const Masks& m,
                                                                ParsedLine& out) {
    const uint64_t spaces = m.spaces, plain = m.plain, digits = m.digits, dots = m.dots;
    if (!spaces) return false;
    const unsigned first = static_cast<unsigned>(__builtin_ctzll(spaces));
    const uint64_t rest = spaces & (spaces - 1);
    if (!rest || (rest & (rest - 1))) return false;  // not exactly two spaces
    const unsigned second = static_cast<unsigned>(__builtin_ctzll(rest));
    const uint64_t below_first = (uint64_t(1) << first) - 1;
    const uint64_t below_second = (uint64_t(1) << second) - 1;
    const uint64_t all = size == 64 ? ~uint64_t(0) : (uint64_t(1) << size) - 1;
    const uint64_t stamp = all & ~(below_second | (uint64_t(1) << second));
    const uint64_t value = below_second & ~(below_first | (uint64_t(1) << first));
    const bool name_outside = (plain & below_first) != below_first;
    // The value's common form: only digits and dots, but for a leading '-'; at most one dot, a digit.
    uint64_t odd = value & ~(digits | dots);
    if (odd == (uint64_t(1) << (first + 1)) && begin[first + 1] == '-') odd = 0;
    const uint64_t value_dots = dots & value;
    const bool plain_value = value && !odd && !(value_dots & (value_dots - 1)) && (digits & value);
    if (plain_value && !name_outside && first != 0 && stamp && size - second - 1 <= 18 && (digits & stamp) == stamp) {
        out.name = std::string_view(begin, first);
        out.value = std::string_view(begin + first + 1, second - first - 1);
        out.timestamp = std::string_view(begin + second + 1, size - second - 1);
        out.timestamp_is_now = false;
        out.canonical = true;
        return true;
    }
    return canonical_fields(begin, begin + first, begin + second, begin + size, name_outside, (digits & stamp) == stamp,
                            out);
}

// A line of 16 to 64 bytes in 16-byte loads (the last one ending at the line's end, overlapping the one
// before).
bool parse_canonical_short(const char* begin, size_t size, ParsedLine& out) {
    Masks m;
    unsigned at = 0;
    for (; at + 16 < size; at += 16) classify<Bytes16>(begin + at, at, m);
    classify<Bytes16>(begin + size - 16, static_cast<unsigned>(size - 16), m);
    return canonical_from_masks(begin, size, m, out);
}

// The newlines of 64 bytes at `p`.
template <class Bytes>
inline __attribute__((always_inline)) uint64_t newlines_of(const char* p) {
    uint64_t newlines = 0;
    for (unsigned at = 0; at < 64; at += sizeof(Bytes)) {
        Bytes bytes;
        std::memcpy(&bytes, p + at, sizeof bytes);
        newlines |= uint64_t(movemask(bytes == '\n')) << at;
    }
    return newlines;
}

// The newlines are found a 64-byte block at a time; each line of at most 64 bytes is then classified from
// its first byte (as parse_canonical does, without the call), reading at most 64 bytes from there: within
// the buffer, or from a zero-padded copy for a line that starts less than 64 bytes before its end.
template <class Bytes>
inline __attribute__((always_inline)) size_t scan_lines_with(const char* data, size_t size, ScannedLine* out) {
    size_t count = 0, start = 0;
    for (size_t base = 0; base < size; base += 64) {
        const char* block = data + base;
        char last[64];
        if (size - base < 64) {  // the last, partial block: zeros past the end (no newline)
            std::memset(last, 0, sizeof last);
            std::memcpy(last, block, size - base);
            block = last;
        }
        for (uint64_t newlines = newlines_of<Bytes>(block); newlines; newlines &= newlines - 1) {
            const size_t end = base + static_cast<size_t>(__builtin_ctzll(newlines));
            const size_t length = end - start;
            ScannedLine& line = out[count++];
            line.end = static_cast<uint32_t>(end);
            line.canonical = false;
            if (length <= 64) {
                const char* from = data + start;
                char near_end[64];
                if (size - start < 64) {
                    std::memset(near_end, 0, sizeof near_end);
                    std::memcpy(near_end, from, size - start);
                    from = near_end;
                }
                Masks m;
                for (unsigned at = 0; at < length; at += sizeof(Bytes)) classify<Bytes>(from + at, at, m);
                const uint64_t keep = length == 64 ? ~uint64_t(0) : (uint64_t(1) << length) - 1;
                m.spaces &= keep, m.plain &= keep, m.digits &= keep, m.dots &= keep;  // not the next line's
                ParsedLine parsed;
                if (canonical_from_masks(data + start, length, m, parsed)) {
                    line.first = static_cast<uint8_t>(parsed.name.size());
                    line.second = static_cast<uint8_t>(parsed.name.size() + 1 + parsed.value.size());
                    line.canonical = true;
                }
            }
            start = end + 1;
        }
    }
    return count;
}

size_t scan_lines_sse2(const char* data, size_t size, ScannedLine* out) {
    return scan_lines_with<Bytes16>(data, size, out);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) size_t scan_lines_avx2(const char* data, size_t size, ScannedLine* out) {
    return scan_lines_with<Bytes32>(data, size, out);
}
#endif

#if defined(__x86_64__)
// The same in two 32-byte loads, for a line of 32 to 64 bytes (the second ending at the line's end).
__attribute__((target("avx2"))) bool parse_canonical_avx2(const char* begin, size_t size, ParsedLine& out) {
    Masks m;
    classify<Bytes32>(begin, 0, m);
    classify<Bytes32>(begin + size - 32, static_cast<unsigned>(size - 32), m);
    return canonical_from_masks(begin, size, m, out);
}

bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

bool g_avx2 = cpu_has_avx2();  // chosen once, at start: the same binary runs on any x86-64
#endif
#endif

// The common case, `name value timestamp` with single spaces, a valid name, a plain decimal value
// and an unsigned integer timestamp, found without conversion: lines of 16 to 64 bytes with SSE2
// masks (parse_canonical_short), others with three memchr.
// It accepts only lines the general parser accepts with the same result (every other line
// returns false and goes to the general parser, which decides); tests/unit/line_test.cpp runs
// both on every case.
bool parse_canonical(std::string_view line, ParsedLine& out) {
    const char* begin = line.data();
    const char* end = begin + line.size();
#if defined(__SSE2__)
#if defined(__x86_64__)
    if (g_avx2 && line.size() >= 32 && line.size() <= 64) return parse_canonical_avx2(begin, line.size(), out);
#endif
    if (line.size() >= 16 && line.size() <= 64) return parse_canonical_short(begin, line.size(), out);
#endif
    const char* first = static_cast<const char*>(std::memchr(begin, ' ', line.size()));
    if (!first) return false;
    const char* second = static_cast<const char*>(std::memchr(first + 1, ' ', static_cast<size_t>(end - first - 1)));
    if (!second) return false;
    if (std::memchr(second + 1, ' ', static_cast<size_t>(end - second - 1))) return false;
    // Anything outside '!'..'~' (whitespace, control, UTF-8) is for the general parser. No early
    // exit, so the compiler can vectorise the scan.
    bool outside = false;
    for (const char* p = begin; p < first; ++p) outside |= !is_plain(static_cast<unsigned char>(*p));
    return canonical_fields(begin, first, second, end, outside, false, out);
}

std::string_view span(const unsigned char* from, const unsigned char* to) {
    return std::string_view(reinterpret_cast<const char*>(from), static_cast<size_t>(to - from));
}

// The general parser, on a line whose trailing '\r' (one) is already dropped.
LineError parse_fields(std::string_view line, ParsedLine& out) {
    const auto* p = reinterpret_cast<const unsigned char*>(line.data());
    const auto* end = p + line.size();
    std::string_view fields[3];
    size_t count = 0;
    bool name_control = false;
    CharClass kind;
    for (;;) {
        while (p < end && !is_plain(*p)) {  // separators
            size_t len = classify(p, end, kind);
            if (!len) return LineError::bad_utf8;
            if (kind != CharClass::space) break;
            p += len;
        }
        if (p == end) break;
        if (count == 3) return LineError::field_count;
        const unsigned char* start = p;
        while (p < end) {  // a field: printable ASCII in a tight loop, the rest one character at a time
            if (is_plain(*p)) {
                ++p;
                continue;
            }
            size_t len = classify(p, end, kind);
            if (!len) return LineError::bad_utf8;
            if (kind == CharClass::space) break;
            name_control |= count == 0 && kind == CharClass::control;
            p += len;
        }
        fields[count++] = span(start, p);
    }
    if (count == 0) return LineError::empty;
    if (count != 3) return LineError::field_count;
    if (name_control) return LineError::bad_name;
    if (!valid_value(fields[1])) return LineError::bad_value;
    bool now = false;
    if (!valid_timestamp(fields[2], now)) return LineError::bad_timestamp;

    out.name = fields[0];
    out.value = fields[1];
    out.timestamp = fields[2];
    out.timestamp_is_now = now;
    const char* name_end = fields[0].data() + fields[0].size();
    const char* value_end = fields[1].data() + fields[1].size();
    out.canonical = !now && fields[0].data() == line.data() && *name_end == ' ' && fields[1].data() == name_end + 1 &&
        *value_end == ' ' && fields[2].data() == value_end + 1 &&
        fields[2].data() + fields[2].size() == line.data() + line.size();
    return LineError::none;
}

}  // namespace

// '\r' is whitespace anyway; both parsers drop one trailing '\r' first so that "a 1 2\r\n", as
// sent by many clients, is canonical on either.
LineError parse_line(std::string_view line, ParsedLine& out) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (parse_canonical(line, out)) return LineError::none;
    return parse_fields(line, out);
}

LineError parse_line_general(std::string_view line, ParsedLine& out) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return parse_fields(line, out);
}

LineError check_name(std::string_view name) {
    if (name.empty()) return LineError::bad_name;
    const auto* begin = reinterpret_cast<const unsigned char*>(name.data());
    const auto* end = begin + name.size();
    for (const unsigned char* p = begin; p < end;) {
        if (is_plain(*p)) {
            ++p;
            continue;
        }
        CharClass kind;
        size_t len = classify(p, end, kind);
        if (!len) return LineError::bad_utf8;
        if (kind != CharClass::other) return LineError::bad_name;
        p += len;
    }
    return LineError::none;
}

size_t scan_lines(const char* data, size_t size, ScannedLine* out) {
#if defined(__SSE2__)
#if defined(__x86_64__)
    if (g_avx2) return scan_lines_avx2(data, size, out);
#endif
    return scan_lines_sse2(data, size, out);
#else
    size_t count = 0;
    for (const char* p = data; (p = static_cast<const char*>(std::memchr(p, '\n', size_t(data + size - p)))); ++p)
        out[count++].end = static_cast<uint32_t>(p - data), out[count - 1].canonical = false;
    return count;
#endif
}

bool use_line_vectors(LineVectors vectors) {
#if defined(__x86_64__)
    if (vectors == LineVectors::avx2 && !cpu_has_avx2()) return false;
    g_avx2 = vectors == LineVectors::avx2;
    return true;
#else
    return vectors == LineVectors::sse2;
#endif
}

const char* describe(LineError error) {
    switch (error) {
        case LineError::none: return "valid";
        case LineError::empty: return "empty line";
        case LineError::field_count: return "expected 3 fields: name value timestamp";
        case LineError::bad_utf8: return "not valid UTF-8";
        case LineError::bad_name: return "control character in metric name";
        case LineError::bad_value: return "value is not a number";
        case LineError::bad_timestamp: return "timestamp is not a non-negative number or -1";
    }
    return "unknown";
}

}  // namespace polymur::protocol
