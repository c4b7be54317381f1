// The admin protocol (Polymur-compatible): one command line per connection, one reply.
#pragma once

#include <string>
#include <string_view>

namespace polymur::admin {

enum class CommandKind { getdest, putdest, deldest, stats, help, empty, unknown };

struct Command {
    CommandKind kind = CommandKind::empty;
    std::string name;      // the command word as sent
    std::string argument;  // the first argument, if any
    bool extra_arguments = false;
};

Command parse_command(std::string_view line);

// What the supervisor does for each command.
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string getdest() = 0;
    virtual std::string putdest(const std::string& destination) = 0;
    virtual std::string deldest(const std::string& destination) = 0;
    virtual std::string stats() = 0;
};

// The full reply for one request line, ending in '\n'. Errors are one line starting "error: ".
// Never throws: an exception from the backend is logged and answered with an error line.
std::string execute(std::string_view line, Backend& backend);
// The same, letting exceptions through (execute() is this inside guarded()).
std::string execute_command(std::string_view line, Backend& backend);

std::string help_text();

// Escapes a string for a JSON string literal (without the quotes).
std::string json_escape(std::string_view text);

// Go's time.RFC3339Nano in UTC, as Polymur's getdest printed registration times.
std::string rfc3339_nano(int64_t unix_ns);

}  // namespace polymur::admin
