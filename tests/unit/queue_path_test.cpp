#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "common/heritage.hpp"
#include "shm/queue.hpp"

namespace polymur {
namespace {

std::string file_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

TEST(QueuePath, NamedAfterTheDestination) {
    EXPECT_EQ(queue_path("/var/lib/polymur", "carbon:2003"), "/var/lib/polymur/carbon_2003-99a99fb1.queue");
    EXPECT_EQ(queue_path("/s", "a:1"), "/s/a_1-dbbd3e69.queue");
    EXPECT_EQ(queue_path("/s", "a_1"), "/s/a_1-e8a41828.queue");
}

TEST(QueuePath, SameSanitizedNameGetsDifferentFiles) {
    std::string colon = queue_path("/s", "a:1");
    std::string underscore = queue_path("/s", "a_1");
    EXPECT_NE(colon, underscore);
    EXPECT_EQ(colon.substr(0, colon.size() - 15), underscore.substr(0, underscore.size() - 15));  // "/s/a_1"
    EXPECT_NE(queue_path("/s", "[::1]:2003"), queue_path("/s", "[__1]_2003"));
    EXPECT_NE(queue_path("/s", "h:1:a b"), queue_path("/s", "h:1:a/b"));
}

TEST(QueuePath, IsStable) {
    EXPECT_EQ(queue_path("/s", "host.example.com:2004:x"), queue_path("/s", "host.example.com:2004:x"));
}

TEST(QueuePath, KeepsSafeCharacters) {
    EXPECT_EQ(file_name(queue_path("/s", "Host-1.example.COM:2003")).substr(0, 23), "Host-1.example.COM_2003");
}

TEST(QueuePath, StaysInsideStateDir) {
    for (const char* destination : {"../../etc/passwd:1", "/etc/passwd:1", "..:1", "..", "a/../../b:1", "",
                                    "[::1]:2003", "a\\b:1", "\xff\xfe:1", "a\nb:1"}) {
        std::string path = queue_path("/var/lib/polymur", destination);
        EXPECT_EQ(std::filesystem::path(path).parent_path(), "/var/lib/polymur") << path;
        std::string name = file_name(path);
        EXPECT_EQ(name.find('/'), std::string::npos) << path;
        EXPECT_NE(name, "..");
        EXPECT_NE(name, ".");
        for (unsigned char c : name) EXPECT_TRUE(std::isalnum(c) || c == '.' || c == '-' || c == '_') << path;
        EXPECT_EQ(path.substr(path.size() - 6), ".queue");
    }
    EXPECT_EQ(queue_path("/s", "../../etc/passwd:1"), "/s/.._.._etc_passwd_1-e49ddb03.queue");
    EXPECT_EQ(queue_path("/s", ""), "/s/-811c9dc5.queue");
}

TEST(QueuePath, LongestHostNameStillGivesAUsableFileName) {
    // A DNS name may be 253 characters; with a port and an instance the destination is longer still.
    std::string host;
    while (host.size() < 253) host += "abcdefghi.";
    host.resize(253);
    const std::string destination = host + ":2003:instance";
    const std::string path = queue_path("/tmp", destination);

    char pattern[] = "/tmp/polymur-qpath-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    std::string error;
    auto queue = shm::QueueFile::open_or_create(queue_path(pattern, destination), destination, {1, 4096}, error);
    EXPECT_TRUE(queue) << error;
    queue.reset();
    std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace polymur
