// Every row of the reference vectors in tests/data/vectors (see the README there) must come out
// the same from polymur's rings.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "route/hash_ring.hpp"

namespace polymur::route {
namespace {

const std::filesystem::path kVectors = std::filesystem::path(POLYMUR_TEST_DATA) / "vectors";
const std::filesystem::path kCarbon = kVectors / "graphite-carbon";
const std::filesystem::path kRelay = kVectors / "carbon-c-relay";

std::vector<std::string> read_lines(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in) << "cannot read " << path;
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::vector<std::string> split(std::string_view text, std::string_view separator) {
    std::vector<std::string> parts;
    for (size_t begin = 0;;) {
        const size_t end = text.find(separator, begin);
        parts.emplace_back(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
        if (end == std::string_view::npos) return parts;
        begin = end + separator.size();
    }
}

std::string between(std::string_view text, std::string_view open, std::string_view close) {
    const size_t begin = text.find(open);
    if (begin == std::string_view::npos) return "";
    const size_t end = text.find(close, begin + open.size());
    return std::string(text.substr(begin + open.size(), end - begin - open.size()));
}

// "['a:1', 'b:2']" as Python prints a list of plain strings.
std::vector<Destination> parse_python_destination_list(const std::string& list) {
    std::vector<Destination> destinations;
    for (std::string item : split(list, ", ")) {
        Destination d;
        std::string error;
        EXPECT_TRUE(parse_destination(item.substr(1, item.size() - 2), d, error)) << error;
        destinations.push_back(d);
    }
    return destinations;
}

std::string instance_text(const Destination& d) { return d.instance.value_or("None"); }

std::string join(const std::vector<std::string>& parts) {
    std::string joined;
    for (const auto& p : parts) joined += (joined.empty() ? "" : "|") + p;
    return joined;
}

template <typename Format>
std::string route(const HashRing& ring, const std::vector<Destination>& destinations, std::string_view metric,
                  size_t replication, bool diverse, Format format) {
    uint16_t out[kMaxReplication];
    const size_t count = ring.lookup(metric, replication, diverse, out);
    std::vector<std::string> parts;
    for (size_t k = 0; k < count; ++k) parts.push_back(format(destinations[out[k]]));
    return join(parts);
}

struct CarbonRingDefinition {
    std::string tag;  // e.g. carbon_ch_3n_inst_abc
    HashType type;
    std::vector<Destination> destinations;
    std::vector<std::vector<std::string>> table;  // position, server, instance
};

std::vector<CarbonRingDefinition> carbon_rings() {
    std::vector<CarbonRingDefinition> rings;
    for (const std::string& line : read_lines(kCarbon / "rings.txt")) {
        if (line.rfind("### ", 0) == 0) {
            CarbonRingDefinition ring;
            ring.tag = line.substr(4, line.find(' ', 4) - 4);
            EXPECT_TRUE(parse_hash_type(ring.tag.rfind("carbon_ch", 0) == 0 ? "carbon_ch" : "fnv1a_ch", ring.type));
            ring.destinations = parse_python_destination_list(between(line, "destinations=[", "]"));
            rings.push_back(std::move(ring));
        } else if (!line.empty() && !rings.empty()) {
            rings.back().table.push_back(split(line, "\t"));
        }
    }
    return rings;
}

void PrintTo(const CarbonRingDefinition& ring, std::ostream* os) { *os << ring.tag; }

class CarbonVectors : public testing::TestWithParam<CarbonRingDefinition> {
protected:
    void SetUp() override {
        std::string error;
        ring_ = HashRing::build(GetParam().type, GetParam().destinations, error);
        ASSERT_NE(ring_, nullptr) << error;
    }
    std::unique_ptr<HashRing> ring_;
};

TEST_P(CarbonVectors, RingTableMatchesCarbon) {
    const auto& table = GetParam().table;
    const auto entries = ring_->entries();
    ASSERT_EQ(entries.size(), table.size());
    for (size_t i = 0; i < table.size(); ++i) {
        const Destination& d = GetParam().destinations[entries[i].destination];
        EXPECT_EQ(std::to_string(entries[i].position), table[i][0]) << "entry " << i;
        EXPECT_EQ(d.host, table[i][1]) << "entry " << i;
        EXPECT_EQ(instance_text(d), table[i][2]) << "entry " << i;
    }
}

TEST_P(CarbonVectors, GetNode) {
    const auto lines = read_lines(kCarbon / ("vectors_" + GetParam().tag + ".tsv"));
    ASSERT_EQ(lines.size(), 1001u);  // header + 1000 metrics
    for (size_t i = 1; i < lines.size(); ++i) {
        const auto row = split(lines[i], "\t");
        ASSERT_EQ(row.size(), 4u) << lines[i];
        const std::string& metric = row[0];
        const uint32_t position =
            GetParam().type == HashType::carbon_ch ? carbon_ch_position(metric) : fnv1a_ch_position(metric);
        EXPECT_EQ(std::to_string(position), row[1]) << metric;
        EXPECT_EQ(route(*ring_, GetParam().destinations, metric, 1, true,
                        [](const Destination& d) { return d.host + "\t" + instance_text(d); }),
                  row[2] + "\t" + row[3])
            << metric;
    }
}

TEST_P(CarbonVectors, GetNodesWalk) {
    const auto lines = read_lines(kCarbon / ("getnodes_" + GetParam().tag + ".tsv"));
    ASSERT_EQ(lines.size(), 1000u);
    for (const std::string& line : lines) {
        const size_t tab = line.find('\t');
        const std::string metric = line.substr(0, tab);
        // Without diverse replicas and with replication above the node count, lookup returns
        // get_nodes' whole walk.
        EXPECT_EQ(route(*ring_, GetParam().destinations, metric, kMaxReplication, false,
                        [](const Destination& d) { return d.host + ":" + instance_text(d); }),
                  line.substr(tab + 1))
            << metric;
    }
}

INSTANTIATE_TEST_SUITE_P(Carbon, CarbonVectors, testing::ValuesIn(carbon_rings()),
                         [](const testing::TestParamInfo<CarbonRingDefinition>& info) { return info.param.tag; });

TEST(CarbonVectorFiles, EveryFileHasItsRing) {
    const auto rings = carbon_rings();
    EXPECT_EQ(rings.size(), 14u);
    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(kCarbon)) {
        const std::string name = entry.path().filename().string();
        for (const char* prefix : {"vectors_", "getnodes_"}) {
            if (name.rfind(prefix, 0) != 0) continue;
            ++files;
            const std::string tag =
                name.substr(std::string(prefix).size(), name.size() - 4 - std::string(prefix).size());
            bool found = false;
            for (const auto& r : rings) found |= r.tag == tag;
            EXPECT_TRUE(found) << name << " has no ring in rings.txt";
        }
    }
    EXPECT_EQ(files, 28u);
}

TEST(CarbonRouterVectors, ReplicationTwoDiverseOnAndOff) {
    std::unique_ptr<HashRing> ring;
    std::vector<Destination> destinations;
    bool diverse = false;
    size_t sections = 0, rows = 0;
    for (const std::string& line : read_lines(kCarbon / "router_rf2.tsv")) {
        if (line.rfind("### ", 0) == 0) {
            HashType type;
            ASSERT_TRUE(parse_hash_type(between(line, "hash=", " "), type)) << line;
            ASSERT_EQ(between(line, "RF=", " "), "2");
            diverse = between(line, "DIVERSE_REPLICAS=", " ") == "True";
            destinations = parse_python_destination_list(between(line, "dests=[", "]"));
            std::string error;
            ring = HashRing::build(type, destinations, error);
            ASSERT_NE(ring, nullptr) << error;
            ++sections;
            continue;
        }
        ASSERT_NE(ring, nullptr);
        const size_t tab = line.find('\t');
        const std::string metric = line.substr(0, tab);
        EXPECT_EQ(
            route(*ring, destinations, metric, 2, diverse,
                  [](const Destination& d) { return d.host + ":" + std::to_string(d.port) + ":" + instance_text(d); }),
            line.substr(tab + 1))
            << metric << (diverse ? " (diverse)" : "");
        ++rows;
    }
    EXPECT_EQ(sections, 4u);
    EXPECT_EQ(rows, 800u);
}

// --- destinations_parse.tsv: Python reprs on both sides --------------------------------------

// Reads one Python str literal ('...' or "...") from the front of `text`.
bool take_python_str(std::string_view& text, std::string& out) {
    if (text.empty() || (text[0] != '\'' && text[0] != '"')) return false;
    const char quote = text[0];
    out.clear();
    size_t i = 1;
    for (; i < text.size() && text[i] != quote; ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        const char c = text[++i];
        if (c == 'n') out += '\n';
        else if (c == 't') out += '\t';
        else if (c == 'r') out += '\r';
        else if (c == 'x') out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)), i += 2;
        else out += c;
    }
    text.remove_prefix(i + 1);
    return true;
}

TEST(CarbonDestinationVectors, ParseLikeCarbon) {
    size_t rows = 0;
    for (const std::string& line : read_lines(kCarbon / "destinations_parse.tsv")) {
        std::string_view rest = line;
        std::string input;
        ASSERT_TRUE(take_python_str(rest, input)) << line;
        ASSERT_EQ(rest.substr(0, 1), "\t");
        rest.remove_prefix(1);
        Destination d;
        std::string error;
        const bool ok = parse_destination(input, d, error);
        ++rows;
        if (rest.substr(0, 7) == "\"ERROR ") {
            EXPECT_FALSE(ok) << line;
            EXPECT_NE(error.find("'" + input + "'"), std::string::npos) << error;
            continue;
        }
        // ('host', 2004, 'instance' | None)
        ASSERT_TRUE(ok) << line << ": " << error;
        ASSERT_EQ(rest.substr(0, 1), "(");
        rest.remove_prefix(1);
        std::string host;
        ASSERT_TRUE(take_python_str(rest, host));
        EXPECT_EQ(d.host, host) << line;
        ASSERT_EQ(rest.substr(0, 2), ", ");
        rest.remove_prefix(2);
        const size_t comma = rest.find(", ");
        EXPECT_EQ(std::to_string(d.port), rest.substr(0, comma)) << line;
        rest.remove_prefix(comma + 2);
        if (rest == "None)") {
            EXPECT_FALSE(d.instance.has_value()) << line;
        } else {
            std::string instance;
            ASSERT_TRUE(take_python_str(rest, instance)) << line;
            EXPECT_EQ(d.instance, instance) << line;
            EXPECT_EQ(rest, ")");
        }
    }
    EXPECT_EQ(rows, 8u);
}

// --- carbon-c-relay: jump_fnv1a_ch, and carbon_ch / fnv1a_ch under --hash-compat=carbon-c-relay ---

// Checks every row of one file written by gen_jump_vectors.py or gen_compat_vectors.py: a
// "# cluster: TYPE [replication N] host:port[=instance] ..." line, a header, then
// metric<TAB>host:port|... as carbon-c-relay -t prints them (IPv6 hosts in brackets).
void check_relay_cluster_file(const std::filesystem::path& path, HashCompat compat, size_t& rows) {
    SCOPED_TRACE(path.filename().string());
    const auto lines = read_lines(path);
    ASSERT_GT(lines.size(), 1000u);
    std::istringstream cluster(lines[0].substr(lines[0].find(':') + 1));
    std::string word;
    cluster >> word;
    HashType type;
    ASSERT_TRUE(parse_hash_type(word, type)) << word;
    size_t replication = 1;
    std::vector<Destination> destinations;
    while (cluster >> word) {
        if (word == "replication") {
            cluster >> replication;
            continue;
        }
        // carbon-c-relay writes host:port=instance; ours is host:port:instance.
        if (const size_t equals = word.find('='); equals != std::string::npos) word[equals] = ':';
        Destination d;
        std::string error;
        ASSERT_TRUE(parse_destination(word, d, error)) << error;
        destinations.push_back(d);
    }
    std::string error;
    auto ring = HashRing::build(type, destinations, error, compat);
    ASSERT_NE(ring, nullptr) << error;
    for (size_t i = 2; i < lines.size(); ++i) {
        const size_t tab = lines[i].find('\t');
        const std::string metric = lines[i].substr(0, tab);
        EXPECT_EQ(
            route(*ring, destinations, metric, replication, true, [](const Destination& d) { return d.address(); }),
            lines[i].substr(tab + 1))
            << metric;
        ++rows;
    }
}

size_t check_relay_cluster_files(std::string_view prefix, HashCompat compat, size_t& rows) {
    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(kRelay)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) != 0 || entry.path().extension() != ".tsv") continue;
        ++files;
        check_relay_cluster_file(entry.path(), compat, rows);
    }
    return files;
}

TEST(RelayJumpVectors, EveryClusterEveryRow) {
    size_t rows = 0;
    EXPECT_EQ(check_relay_cluster_files("jump_", HashCompat::graphite, rows), 4u);
    EXPECT_EQ(rows, 4u * 999u);
    rows = 0;  // jump_fnv1a_ch is carbon-c-relay's under both
    EXPECT_EQ(check_relay_cluster_files("jump_", HashCompat::carbon_c_relay, rows), 4u);
}

TEST(RelayCompatVectors, EveryClusterEveryRow) {
    size_t rows = 0;
    EXPECT_EQ(check_relay_cluster_files("compat_", HashCompat::carbon_c_relay, rows), 39u);
    EXPECT_GE(rows, 39u * 1000u);
}

}  // namespace
}  // namespace polymur::route
