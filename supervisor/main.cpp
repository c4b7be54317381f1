#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/guard.hpp"
#include "common/log.hpp"
#include "common/proctitle.hpp"
#include "common/validate.hpp"
#include "route/lookup_command.hpp"
#include "route/routing_table.hpp"
#include "route/test_command.hpp"
#include "supervisor/queue_space.hpp"
#include "supervisor/supervisor.hpp"
#include "worker/tls.hpp"

extern char** environ;

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "lookup") == 0) return polymur::route::run_lookup(argc - 1, argv + 1);
    if (argc > 1 && std::strcmp(argv[1], "test") == 0) return polymur::route::run_test(argc - 1, argv + 1);

    polymur::Config config;
    switch (polymur::parse_config(argc, argv, environ, config)) {
        case polymur::ParseOutcome::exit_ok: return 0;
        case polymur::ParseOutcome::exit_error: return 2;
        case polymur::ParseOutcome::run: break;
    }
    if (!config.tls_listen_addr
             .empty()) {  // a key that does not match, a CA file without a CA: refused before a child starts
        std::string error;
        SSL_CTX* context =
            polymur::new_line_listener_tls_context(config.tls_cert, config.tls_key, config.tls_client_ca, error);
        if (!context) {
            std::fprintf(stderr, "polymur: TLS listener: %s\n", error.c_str());
            return 2;
        }
        SSL_CTX_free(context);
    }
    if (config.check_config) {
        // parse_config ran the validation a start runs; the check adds a bind of every address.
        std::vector<std::string> warnings = polymur::config_warnings(config);
        if (!config.rules.empty()) {
            std::string ignored;  // validated already by parse_config; this collects the rules' warnings
            polymur::route::compile_rules_file(config.rules, ignored, &warnings);
        }
        // Not enough disk for the queues is a warning: polymur runs with smaller queues.
        for (std::string& problem : polymur::check_queue_space(config)) warnings.push_back(std::move(problem));
        std::string error = polymur::check_state_dir(config);
        if (error.empty()) error = polymur::try_binding(config, warnings);
        for (const std::string& warning : warnings) LOG_WARN("%s", warning.c_str());
        if (!error.empty()) {
            std::fprintf(stderr, "polymur: %s\n", error.c_str());
            return 2;
        }
        std::printf("polymur: configuration OK%s%s\n", config.config_file.empty() ? "" : ": ",
                    config.config_file.c_str());
        return 0;
    }
    std::vector<std::string> args(argv, argv + argc);  // kept for SIGHUP: the title overwrites argv
    polymur::proctitle_init(argc, argv);
    int code = 70;  // EX_SOFTWARE
    // Callbacks catch their own errors; this is for what escapes setup and shutdown.
    polymur::guarded("supervisor: stopped", [&] {
        polymur::Supervisor supervisor(std::move(config), std::move(args));
        code = supervisor.run();
    });
    return code;
}
