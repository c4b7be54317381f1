#include <cstring>

#include "common/log.hpp"
#include "route/lookup_command.hpp"
#include "supervisor/config.hpp"
#include "supervisor/proctitle.hpp"
#include "supervisor/supervisor.hpp"

extern char** environ;

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "lookup") == 0) return polymur::route::run_lookup(argc - 1, argv + 1);

    polymur::Config config;
    switch (polymur::parse_config(argc, argv, environ, config)) {
        case polymur::ParseOutcome::exit_ok: return 0;
        case polymur::ParseOutcome::exit_error: return 2;
        case polymur::ParseOutcome::run: break;
    }
    polymur::proctitle_init(argc, argv);
    polymur::Supervisor supervisor(std::move(config));
    return supervisor.run();
}
