#include "common/man_options.hpp"

#include <cstring>
#include <ostream>
#include <string>

namespace polymur {
namespace po = boost::program_options;

std::string roff_escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else out += c;
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
    return out;
}

void write_man_options(const po::options_description& options, ManStyle style, std::ostream& out) {
    for (const auto& option : options.options()) {
        const std::string& name = option->long_name();
        if (name.empty()) continue;
        if (style == ManStyle::config_file &&
            (name == "help" || name == "version" || name == "config" || name == "check-config"))
            continue;
        // Boost describes the value as " arg (=default)", " [=arg(=1)] (=0)" or nothing.
        std::string parameter = option->format_parameter();
        std::string default_value;
        size_t open = parameter.rfind("(=");
        if (open != std::string::npos && parameter.back() == ')')
            default_value = parameter.substr(open + 2, parameter.size() - open - 3);
        const auto& semantic = *option->semantic();
        bool takes_value = semantic.max_tokens() > 0;
        bool value_optional = takes_value && semantic.min_tokens() == 0;

        // Options with an implicit value are switches: Boost shows their defaults as 1 and 0.
        if (value_optional && (default_value == "1" || default_value == "0"))
            default_value = default_value == "1" ? "true" : "false";
        // format_name() is "-h [ --help ]" for an option with a short name.
        const std::string display = option->format_name();
        const bool has_short = display.size() > 2 && display[0] == '-' && display[1] != '-';

        out << ".TP\n";
        if (style == ManStyle::command_line) {
            if (has_short) out << "\\fB\\-" << roff_escape(display.substr(1, 1)) << "\\fR, ";
            out << "\\fB\\-\\-" << roff_escape(name) << "\\fR";
            if (value_optional) out << "[=\\fIbool\\fR]";
            else if (takes_value) out << "=\\fIvalue\\fR";
        } else {
            out << "\\fB" << roff_escape(name) << "\\fR = \\fI"
                << (takes_value && !value_optional ? "value" : "true|false") << "\\fR";
        }
        out << '\n' << roff_escape(option->description());
        if (!default_value.empty()) out << "\n(default: " << roff_escape(default_value) << ")";
        out << '\n';
    }
}

bool write_man_options_if_asked(int argc, const char* const* argv, const po::options_description& options,
                                std::ostream& out) {
    if (argc != 2) return false;
    if (std::strcmp(argv[1], "--man-options") == 0) {
        write_man_options(options, ManStyle::command_line, out);
        return true;
    }
    if (std::strcmp(argv[1], "--man-config-options") == 0) {
        write_man_options(options, ManStyle::config_file, out);
        return true;
    }
    return false;
}

}  // namespace polymur
