// TagNormalizer against carbon's TAG_RELAY_NORMALIZED: fixed cases, and a differential test that
// asks graphite-carbon's own TaggedSeries (Debian's /usr/bin/python3) about generated names.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/tag_normalize.hpp"

namespace polymur::protocol {
namespace {

std::string normalized(std::string_view name) {
    TagNormalizer normalizer;
    return std::string(normalizer.normalize(name));
}

TEST(TagNormalize, SortsTagsAndKeepsUntaggedNames) {
    EXPECT_EQ(normalized("cpu;host=a;dc=x"), "cpu;dc=x;host=a");
    EXPECT_EQ(normalized("cpu;dc=x;host=a"), "cpu;dc=x;host=a");
    EXPECT_EQ(normalized("servers.web01.cpu"), "servers.web01.cpu");
    EXPECT_EQ(normalized("a.b=c"), "a.b=c");
}

TEST(TagNormalize, SortsTheTagValueStringsNotTheTags) {
    // ";a.b=1" < ";a=2" because '.' < '='.
    EXPECT_EQ(normalized("m;a=2;a.b=1"), "m;a.b=1;a=2");
}

TEST(TagNormalize, LastRepeatedTagWinsAndNameTagIsDropped) {
    EXPECT_EQ(normalized("m;b=1;a=1;b=2"), "m;a=1;b=2");
    EXPECT_EQ(normalized("m;name=other;z=1"), "m;z=1");
}

TEST(TagNormalize, StripsLeadingTildeFromTheName) {
    EXPECT_EQ(normalized("~~m;b=1"), "m;b=1");
    EXPECT_EQ(normalized("~m"), "m");
}

TEST(TagNormalize, OpenMetricsForm) {
    EXPECT_EQ(normalized("m{b=\"2\",a=\"1\"}"), "m;a=1;b=2");
    EXPECT_EQ(normalized("m{a=\"x\\\"y\\\\z\"}"), "m;a=x\"y\\z");
    EXPECT_EQ(normalized("m{a=\"1\":,b=\"2\"}"), "m;a=1;b=2");
}

TEST(TagNormalize, WhatCarbonCannotParseIsUnchanged) {
    for (const char* name :
         {"m;", "m;=1", "m;a=", "m;a", "m;a!b=1", "m;a^b=1", "m;a=~1", ";a=1", "~", "~;a=1", "m{a=\"1\"}{\"}",
          "{a=\"1\"}", "m{a=1\"}", "m{a=\"\"}", "m{a=\"1\" b=\"2\"}", "m{a=\"\\x\"}", "m{a=\"~1\"}", "m{a=\"1;2\"}"})
        EXPECT_EQ(normalized(name), name) << name;
}

TEST(TagNormalize, ReusesItsBuffersWithoutAllocatingPerName) {
    TagNormalizer normalizer;
    const std::string long_name = "m;z=1;y=2;x=3;w=4;v=5;u=6;t=7";
    const std::string first(normalizer.normalize(long_name));
    const char* buffer = normalizer.normalize(long_name).data();
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(normalizer.normalize("m;b=1;a=2"), "m;a=2;b=1");
        EXPECT_EQ(normalizer.normalize(long_name), first);
        EXPECT_EQ(normalizer.normalize(long_name).data(), buffer);  // the same buffer, not a new one
    }
}

// Names built from the pieces carbon's parser cares about, most of them tagged.
std::vector<std::string> generated_names(size_t count) {
    std::mt19937 random(20261121);
    // Mostly pieces carbon accepts, now and then one it refuses.
    const std::vector<std::string> metrics = {"cpu", "a.b", "~m", "disk.\xc3\xbc", "m=1", "n!", "x\"y"};
    const std::vector<std::string> bad_metrics = {"", "~~", "~"};
    const std::vector<std::string> tags = {"host",      "dc",   "a",  "a.b", "b",    "name",
                                           "z\xc3\xa9", "x\"y", "k,", "A",   "host2"};
    const std::vector<std::string> bad_tags = {"", "t!", "t^x"};
    const std::vector<std::string> values = {"1",   "a",   "x=y", "web01", "\xe6\xb8\xa9", "a\\\"b", "a\\\\",
                                             "q\"", "v,w", "2.5", "b~"};
    const std::vector<std::string> bad_values = {"~x", "", "a\\x", "a;b"};
    const auto pick_from = [&](const std::vector<std::string>& good, const std::vector<std::string>& bad) {
        return random() % 12 == 0 ? bad[random() % bad.size()] : good[random() % good.size()];
    };
    const auto metric = [&] { return pick_from(metrics, bad_metrics); };
    const auto tag = [&] { return pick_from(tags, bad_tags); };
    const auto value = [&] { return pick_from(values, bad_values); };
    std::vector<std::string> names;
    while (names.size() < count) {
        std::string name = metric();
        const size_t tag_count = random() % 5;
        const bool openmetrics = random() % 3 == 0;
        if (openmetrics) {
            name += '{';
            for (size_t k = 0; k < tag_count; ++k)
                name += (k ? (random() % 4 == 0 ? ":," : ",") : "") + tag() + "=\"" + value() + "\"";
            name += random() % 20 == 0 ? "\"" : "}";
        } else {
            for (size_t k = 0; k < tag_count; ++k) {
                name += ';' + tag();
                if (random() % 20) name += '=' + value();
            }
        }
        if (name.find('\n') == std::string::npos) names.push_back(name);
    }
    return names;
}

TEST(TagNormalize, AgreesWithCarbonsTaggedSeries) {
    if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
    const std::vector<std::string> names = generated_names(600);
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("polymur-tag-normalize-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream out(dir / "names", std::ios::binary);
        for (const std::string& name : names) out << name << '\n';
    }
    // What carbon-relay's RelayProcessor does with TAG_RELAY_NORMALIZED = True.
    const std::string command =
        "/usr/bin/python3 -c '\n"
        "import sys\n"
        "from carbon.util import TaggedSeries\n"
        "for name in open(sys.argv[1], encoding=\"utf-8\", newline=\"\\n\").read().split(\"\\n\")[:-1]:\n"
        "    try:\n"
        "        name = TaggedSeries.parse(name).path\n"
        "    except Exception:\n"
        "        pass\n"
        "    sys.stdout.buffer.write(name.encode(\"utf-8\") + b\"\\n\")\n"
        "' " +
        (dir / "names").string() + " > " + (dir / "carbon").string();
    ASSERT_EQ(std::system(command.c_str()), 0) << "carbon's TaggedSeries did not run (apt-get install graphite-carbon)";
    std::ifstream in(dir / "carbon", std::ios::binary);
    TagNormalizer normalizer;
    size_t rows = 0, changed = 0, refused = 0;
    for (std::string expected; std::getline(in, expected); ++rows) {
        ASSERT_LT(rows, names.size());
        const std::string_view got = normalizer.normalize(names[rows]);
        EXPECT_EQ(got, expected) << "name: " << names[rows];
        changed += expected != names[rows];
        refused += got.data() == names[rows].data() && names[rows].find(';') != std::string::npos;
    }
    EXPECT_EQ(rows, names.size());
    EXPECT_GT(changed, 150u);  // the generator must exercise normalization...
    EXPECT_GT(refused, 50u);   // ...and names carbon refuses
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace polymur::protocol
