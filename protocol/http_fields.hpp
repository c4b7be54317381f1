// Pieces of HTTP/1.1 message syntax (RFC 9110, 9112) shared by the gateway's request checks and the
// proxy's response reader. Pure code, no I/O, no allocation.
#pragma once

#include <cstdint>
#include <string_view>

namespace polymur::protocol {

// ASCII case-insensitive comparison, as header names and tokens compare.
bool same_token(std::string_view a, std::string_view b);

// `text` without leading and trailing spaces and tabs (optional whitespace around a field value).
std::string_view trim_ows(std::string_view text);

// Content-Length: one or more decimal digits and nothing else, at most 2^62 (no sign, no spaces
// inside, no list). False for anything else, including a value that would overflow.
bool parse_content_length(std::string_view text, uint64_t& out);

// A chunk-size line of a chunked body: hex digits, then optionally ';' and chunk extensions (ignored).
// False for anything else, including a size over 2^60.
bool parse_chunk_size(std::string_view line, uint64_t& out);

// Whether the comma-separated list `value` (Connection, Transfer-Encoding) holds `token`, or ends with it.
bool list_contains(std::string_view value, std::string_view token);
bool list_ends_with(std::string_view value, std::string_view token);

}  // namespace polymur::protocol
