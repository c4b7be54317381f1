// The lines of a gateway batch (a decompressed request body): LF-separated, each parsed as a
// plaintext line and its name prefixed with the client's namespace. Pure code, no allocation: the
// prefixed name is built in the caller's buffer.
#pragma once

#include <cstring>
#include <string_view>

#include "protocol/line.hpp"

namespace polymur::protocol {

// Calls visit(line, parsed, name) for every line of `lines`: `parsed` is nullptr for a line that is
// invalid, longer than `max_line_length` as received or as it will be forwarded (with the prefix, and
// with a timestamp of `now_length` characters for -1), or whose prefixed name does not fit
// `name_buffer`; `name` is the metric name with "<prefix>." in front when `prefix` is not empty. An
// empty last line (after the final '\n') is not a line. `map_name` may rewrite the (prefixed) name
// before the forwarded length is checked (tag normalization); by default it keeps it.
struct KeepName {
    std::string_view operator()(std::string_view name) const { return name; }
};
template <size_t N, typename Visit, typename MapName = KeepName>
void for_each_batch_line(std::string_view lines, std::string_view prefix, size_t max_line_length, size_t now_length,
                         char (&name_buffer)[N], Visit&& visit, MapName&& map_name = MapName()) {
    size_t start = 0;
    while (start < lines.size()) {
        size_t end = lines.find('\n', start);
        if (end == std::string_view::npos) end = lines.size();
        std::string_view line = lines.substr(start, end - start);
        start = end + 1;
        ParsedLine parsed;
        if (line.size() > max_line_length || parse_line(line, parsed) != LineError::none) {
            visit(line, static_cast<const ParsedLine*>(nullptr), std::string_view());
            continue;
        }
        std::string_view full = parsed.name;
        if (!prefix.empty()) {
            if (prefix.size() + 1 + parsed.name.size() > N) {
                visit(line, static_cast<const ParsedLine*>(nullptr), std::string_view());
                continue;
            }
            std::memcpy(name_buffer, prefix.data(), prefix.size());
            name_buffer[prefix.size()] = '.';
            std::memcpy(name_buffer + prefix.size() + 1, parsed.name.data(), parsed.name.size());
            full = std::string_view(name_buffer, prefix.size() + 1 + parsed.name.size());
        }
        full = map_name(full);
        if (full.size() + parsed.value.size() + (parsed.timestamp_is_now ? now_length : parsed.timestamp.size()) + 2 >
            max_line_length) {
            visit(line, static_cast<const ParsedLine*>(nullptr), std::string_view());
            continue;
        }
        visit(line, static_cast<const ParsedLine*>(&parsed), full);
    }
}

}  // namespace polymur::protocol
