// The reload table covers every option of --help, and docs/OPERATIONS.md prints it as it is.
#include "supervisor/reload_policy.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace polymur {
namespace {

std::set<std::string> options_of_help() {
    std::ostringstream captured;
    std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
    const char* argv[] = {"polymur", "--help", nullptr};
    Config config;
    const char* envp[] = {nullptr};
    ParseOutcome outcome = parse_config(2, argv, envp, config);
    std::cout.rdbuf(old);
    EXPECT_EQ(outcome, ParseOutcome::exit_ok);
    std::set<std::string> names;
    std::istringstream lines(captured.str());
    std::regex option(R"(^  (?:-\w \[ )?--([a-z][a-z0-9-]*))");
    for (std::string line; std::getline(lines, line);) {
        std::smatch m;
        if (std::regex_search(line, m, option)) names.insert(m[1]);
    }
    return names;
}

TEST(ReloadPolicy, EveryOptionOfHelpHasOneRow) {
    std::set<std::string> help = options_of_help();
    ASSERT_GT(help.size(), 40u);
    std::set<std::string> table;
    for (const ReloadRule& rule : reload_rules()) {
        EXPECT_TRUE(table.insert(rule.option).second) << rule.option << " has two rows";
        EXPECT_EQ(rule.on_reload == OnReload::fixed, rule.differs == nullptr) << rule.option;
    }
    for (const std::string& name : help)
        EXPECT_TRUE(table.count(name)) << "--" << name << " is missing from reload_policy.cpp";
    for (const std::string& name : table)
        EXPECT_TRUE(help.count(name)) << name << " is in the reload table but not in --help";
}

TEST(ReloadPolicy, OperationsGuidePrintsTheTable) {
    std::ifstream doc(POLYMUR_SOURCE_DIR "/docs/OPERATIONS.md");
    ASSERT_TRUE(doc) << "docs/OPERATIONS.md";
    std::map<std::string, std::string> documented;
    std::regex row(R"(^\| `--([a-z0-9-]+)` \| (applied|restart|-) \|)");
    for (std::string line; std::getline(doc, line);) {
        std::smatch m;
        if (std::regex_search(line, m, row)) documented[m[1]] = m[2];
    }
    for (const ReloadRule& rule : reload_rules()) {
        auto it = documented.find(rule.option);
        ASSERT_NE(it, documented.end()) << "--" << rule.option
                                        << " is missing from the reload table of docs/OPERATIONS.md";
        EXPECT_EQ(it->second, on_reload_name(rule.on_reload)) << "--" << rule.option;
    }
    EXPECT_EQ(documented.size(), reload_rules().size());
}

TEST(ReloadPolicy, AppliesCheapOptionsAndNamesTheRest) {
    Config running, next;
    next.stats_interval_s = 1;
    next.stall_timeout_s = 7;
    next.idle_timeout_s = 9;
    next.queue_cap = 5;
    next.cert = "/new.pem";
    ReloadChanges changes = apply_reloadable(running, next);
    EXPECT_EQ(changes.applied, (std::vector<std::string> {"idle-timeout", "stats-interval", "stall-timeout"}));
    EXPECT_EQ(changes.need_restart, (std::vector<std::string> {"queue-cap", "cert"}));
    EXPECT_EQ(running.stats_interval_s, 1u);
    EXPECT_EQ(running.stall_timeout_s, 7u);
    EXPECT_EQ(running.idle_timeout_s, 9u);
    EXPECT_EQ(running.queue_cap, 4000000u);  // still the running value
    EXPECT_EQ(running.cert, "");
}

TEST(ReloadPolicy, TwoOptionsOfOneSettingAreReportedOnce) {
    Config running, next;
    next.self_metrics_interval_s = 10;  // set by --self-metrics-interval or -metrics-flush
    ReloadChanges changes = apply_reloadable(running, next);
    EXPECT_EQ(changes.applied, (std::vector<std::string> {"self-metrics-interval"}));
    EXPECT_TRUE(changes.need_restart.empty());
}

}  // namespace
}  // namespace polymur
