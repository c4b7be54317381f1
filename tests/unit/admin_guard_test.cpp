// A command whose backend throws is answered with an error line; nothing escapes execute().
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>

#include "admin/command.hpp"

namespace polymur::admin {
namespace {

class ThrowingBackend final : public Backend {
public:
    std::string getdest() override { throw std::bad_alloc(); }
    std::string putdest(const std::string& d) override {
        return std::to_string(std::stoul(d.substr(d.rfind(':') + 1)));
    }
    std::string deldest(const std::string&) override { throw 42; }
    std::string stats() override { throw std::runtime_error("boom \x1b[2J"); }
};

TEST(AdminGuard, EveryExceptionBecomesAnErrorLine) {
    ThrowingBackend backend;
    for (const char* line : {"putdest https://gw:99999999999999999999", "getdest", "deldest a:1", "stats"}) {
        std::string reply;
        EXPECT_NO_THROW(reply = execute(line, backend)) << line;
        EXPECT_EQ(reply.rfind("error: internal error", 0), 0u) << line << ": " << reply;
        EXPECT_EQ(reply.find('\n'), reply.size() - 1) << reply;
    }
    EXPECT_EQ(execute("putdest gw:2003", backend), "2003");
}

}  // namespace
}  // namespace polymur::admin
