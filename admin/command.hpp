// The admin protocol (Polymur-compatible): one command line per connection, one reply.
#pragma once

#include <string>
#include <string_view>

#include "admin/peer.hpp"

namespace polymur::admin {

enum class CommandKind { getdest, putdest, deldest, stats, help, empty, unknown };

struct Command {
    CommandKind kind = CommandKind::empty;
    std::string name;      // the command word as sent
    std::string argument;  // the first argument, if any
    std::string cluster;   // putdest DEST to CLUSTER, deldest DEST from CLUSTER (--rules)
    bool extra_arguments = false;
    std::string error;  // a malformed `to`/`from` clause: the reply's reason
    std::string token;  // from a "token=<secret>" word after the command, if any
};

Command parse_command(std::string_view line);

// What the supervisor does for each command.
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string getdest() = 0;
    virtual std::string putdest(const std::string& destination) = 0;
    virtual std::string deldest(const std::string& destination) = 0;
    // With a cluster named (--rules): add to / remove from that cluster only.
    virtual std::string putdest_to(const std::string& destination, const std::string& cluster);
    virtual std::string deldest_from(const std::string& destination, const std::string& cluster);
    virtual std::string stats() = 0;
};

// What the connection may do, decided by the server from the kernel's word on who the peer is.
struct Caller {
    bool may_change = true;               // putdest/deldest without a token
    std::string why_not;                  // when not: the reason given in the reply and the log
    const AdminPolicy* policy = nullptr;  // checks a token=<secret>; nullptr: none accepted
};

// The full reply for one request line, ending in '\n'. Errors are one line starting "error: ".
// A refused change sets `refused` (when given) to the reason, for the server's log line.
// Never throws: an exception from the backend is logged and answered with an error line.
std::string execute(std::string_view line, Backend& backend, const Caller& caller = {}, std::string* refused = nullptr);
// The same, letting exceptions through (execute() is this inside guarded()).
std::string execute_command(std::string_view line, Backend& backend, const Caller& caller = {},
                            std::string* refused = nullptr);

std::string help_text();

// Escapes a string for a JSON string literal (without the quotes).
std::string json_escape(std::string_view text);

// Go's time.RFC3339Nano in UTC, as Polymur's getdest printed registration times.
std::string rfc3339_nano(int64_t unix_ns);

}  // namespace polymur::admin
