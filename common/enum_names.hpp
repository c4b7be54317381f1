// Options and protocol words with a fixed set of values are enums with a name function (a switch); this
// reads a name back.
#pragma once

#include <cstddef>
#include <string_view>

namespace polymur {

// Finds the value among `values` whose name is `text`; false (and `out` untouched) when none is.
template <typename Enum, size_t N>
bool parse_by_name(std::string_view text, const Enum (&values)[N], const char* (*name)(Enum), Enum& out) {
    for (Enum value : values) {
        if (text == name(value)) {
            out = value;
            return true;
        }
    }
    return false;
}

}  // namespace polymur
