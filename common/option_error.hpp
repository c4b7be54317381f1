// The text of a Boost.Program_options error, safe for any input.
//
// Boost builds what() by replacing each %placeholder% with its value until none is left, so a value
// that contains its own placeholder ("--workers %value%", "--%canonical_option%") made what() loop
// forever: --check-config hung, and a SIGHUP reload froze the supervisor. Every substitution is
// escaped ('%' and non-printable bytes as \xNN) before what() runs. Every option error we print
// goes through option_error_text().
#pragma once

#include <string>

#include <boost/program_options/errors.hpp>

#include "common/net.hpp"

namespace polymur {

namespace detail {
struct DefusedOptionError : boost::program_options::error_with_option_name {
    static void defuse(boost::program_options::error_with_option_name& e) {
        for (auto& [name, value] : e.*(&DefusedOptionError::m_substitutions)) {
            std::string safe;
            for (char c : net::printable(value)) safe += c == '%' ? std::string("\\x25") : std::string(1, c);
            value = std::move(safe);
        }
    }
};
}  // namespace detail

inline std::string option_error_text(boost::program_options::error& e) {
    if (auto* named = dynamic_cast<boost::program_options::error_with_option_name*>(&e))
        detail::DefusedOptionError::defuse(*named);
    return e.what();
}

}  // namespace polymur
