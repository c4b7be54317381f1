// The admin protocol (admin/command): one request line as a client sends it, executed against a
// backend that parses putdest/deldest arguments as the supervisor does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/command.hpp"
#include "fuzz/destination_parsers.hpp"

namespace {

class ParsingBackend final : public polymur::admin::Backend {
public:
    std::string getdest() override { return "{}\n"; }
    std::string putdest(const std::string& destination) override {
        polymur::fuzz::parse_destination_every_way(destination);
        return "Registered destination: " + destination + "\n";
    }
    std::string deldest(const std::string& destination) override {
        polymur::fuzz::parse_destination_every_way(destination);
        return "Unregistered destination: " + destination + "\n";
    }
    std::string stats() override { return "{}\n"; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    ParsingBackend backend;
    std::string reply = polymur::admin::execute(line, backend);
    // Every reply is at least one line and ends with one.
    if (reply.empty() || reply.back() != '\n') std::abort();
    polymur::admin::json_escape(line);
    return 0;
}
