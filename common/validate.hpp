// What `--check-config` and the start share beyond the option values themselves: listen addresses
// that can be bound, that do not collide, destinations that are distinct, and the warnings an
// operator should see before metrics go missing. The check runs exactly these, then tries to bind.
#pragma once

#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/destination_spec.hpp"

namespace polymur {

// The listen addresses of `config`, named after their options ("listen-addr", "api-addr", ...).
struct ListenAddress {
    std::string option;
    std::string address;
};
std::vector<ListenAddress> listen_addresses(const Config& config);

// Each address parses and names a local address, no two collide, no destination is listed twice.
// Returns the first problem, or "" (called by validate_config, so start, check and reload agree).
std::string check_addresses_and_destinations(const Config& config);

// One destination as start and putdest take it: host:port[:instance] or https://host:port[/path],
// short enough for its slot. Returns the reason it is refused, or "" (and `parsed`, when given, set).
std::string check_destination_text(const std::string& destination, DestinationSpec* parsed = nullptr);

// Problems that do not stop polymur but lose or misplace metrics: a destination host that does not
// resolve now, fnv1a_ch without instances, broadcast to nobody. One line each, subject first.
std::vector<std::string> config_warnings(const Config& config);

// A warning when `host` of a destination (host:port[:instance] or https://host:port) does not
// resolve now; "" when it does or when the text does not parse.
std::string unresolvable_destination_warning(const std::string& destination);

// --check-config: binds every listen address and releases it. An address in use is a warning (the
// check runs beside the running service on reload); any other failure is the error start would give.
std::string try_binding(const Config& config, std::vector<std::string>& warnings);

// --check-config: the state directory is a directory, or can be created where it is named.
std::string check_state_dir(const Config& config);

}  // namespace polymur
