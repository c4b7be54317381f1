#include "protocol/http_fields.hpp"

namespace polymur::protocol {
namespace {

constexpr uint64_t kMaxContentLength = uint64_t {1} << 62;
constexpr uint64_t kMaxChunkSize = uint64_t {1} << 60;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Calls `each` with every trimmed element of a comma-separated list; stops when it returns true.
template <typename Each>
bool any_element(std::string_view value, Each each) {
    while (true) {
        size_t comma = value.find(',');
        if (each(trim_ows(value.substr(0, comma)))) return true;
        if (comma == std::string_view::npos) return false;
        value.remove_prefix(comma + 1);
    }
}

}  // namespace

bool same_token(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view trim_ows(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

bool parse_content_length(std::string_view text, uint64_t& out) {
    if (text.empty()) return false;
    uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        if (value > (kMaxContentLength - digit) / 10) return false;  // checked before it could wrap
        value = value * 10 + digit;
    }
    out = value;
    return true;
}

bool parse_chunk_size(std::string_view line, uint64_t& out) {
    uint64_t value = 0;
    size_t k = 0;
    for (; k < line.size(); ++k) {
        int digit = hex_digit(line[k]);
        if (digit < 0) break;
        if (value > (kMaxChunkSize - static_cast<uint64_t>(digit)) / 16) return false;  // before it could wrap
        value = value * 16 + static_cast<uint64_t>(digit);
    }
    if (k == 0) return false;
    std::string_view rest = trim_ows(line.substr(k));
    if (!rest.empty() && rest.front() != ';') return false;
    out = value;
    return true;
}

bool list_contains(std::string_view value, std::string_view token) {
    return any_element(value, [&](std::string_view element) { return same_token(element, token); });
}

bool list_ends_with(std::string_view value, std::string_view token) {
    size_t comma = value.rfind(',');
    return same_token(trim_ows(comma == std::string_view::npos ? value : value.substr(comma + 1)), token);
}

}  // namespace polymur::protocol
