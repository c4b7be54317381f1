// A routing table compiled from rules text, for the route tests (a failure is the test's failure).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "route/routing_table.hpp"

inline std::unique_ptr<polymur::route::RoutingTable> table_of(const std::string& text) {
    polymur::route::rules::RulesConfig config;
    std::string error;
    EXPECT_TRUE(polymur::route::rules::parse_rules_text(text, "t.conf", config, error)) << error;
    auto table = polymur::route::RoutingTable::build(config, error);
    EXPECT_TRUE(table) << error;
    return table;
}
