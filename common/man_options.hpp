// Renders a program's own option table as roff for its man pages, so the pages list exactly the
// options --help lists (the build runs `polymur --man-options` and friends; see man/).
#pragma once

#include <iosfwd>
#include <string_view>

#include <boost/program_options/options_description.hpp>

namespace polymur {

enum class ManStyle {
    command_line,  // .TP \-\-name=value
    config_file,   // .TP name = value (without help, version, config and check-config)
};

// If argv is exactly `program --man-options` or `program --man-config-options`, writes the option
// list in that style to `out` and returns true.
bool write_man_options_if_asked(int argc, const char* const* argv,
                                const boost::program_options::options_description& options, std::ostream& out);

void write_man_options(const boost::program_options::options_description& options, ManStyle style, std::ostream& out);

// Escapes text for roff: backslashes, dashes, and a leading '.' or '\''.
std::string roff_escape(std::string_view text);

}  // namespace polymur
