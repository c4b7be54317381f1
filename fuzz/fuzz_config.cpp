// The config file reader (supervisor/config): any file content, read as `polymur --config <file>`
// reads it, then checked as --check-config checks it. The same text also arrives as the value of an
// option on the command line and in the environment, which go through the same option parser.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config.hpp"
#include "fuzz/memory_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static polymur::fuzz::MemoryFile file("polymur-fuzz-config");
    file.write(data, size);
    {
        const char* argv[] = {"polymur", "--config", file.path().c_str(), nullptr};
        const char* environment[] = {nullptr};
        polymur::Config config;
        if (polymur::parse_config(3, argv, environment, config) == polymur::ParseOutcome::run)
            polymur::validate_config(config);
    }
    // The first line as a command-line value and as a POLYMUR_* variable.
    std::string value(reinterpret_cast<const char*>(data), size);
    value = value.substr(0, value.find('\n'));
    value = value.substr(0, value.find('\0'));
    {
        std::string option = "--queue-cap=" + value;
        const char* argv[] = {"polymur", option.c_str(), nullptr};
        const char* environment[] = {nullptr};
        polymur::Config config;
        polymur::parse_config(2, argv, environment, config);
    }
    {
        std::string variable = "POLYMUR_DESTINATIONS=" + value;
        const char* argv[] = {"polymur", nullptr};
        const char* environment[] = {variable.c_str(), nullptr};
        polymur::Config config;
        polymur::parse_config(1, argv, environment, config);
    }
    return 0;
}
