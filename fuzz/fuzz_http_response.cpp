// The proxy's reader of the gateway's answers (protocol/http_response): any bytes a gateway, or anyone
// who answers in its place, can send. The same bytes fed at once and in pieces must give the same
// answer, and the reader never takes more than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/http_response.hpp"

using polymur::protocol::HttpResponseReader;
using Result = HttpResponseReader::Result;

namespace {

struct Answer {
    Result result;
    int status;
    bool close_after;
    std::string body;
};

// Feeds `input` in pieces of `piece` bytes, keeping what the reader did not take, as the proxy's
// receive buffer does; then ends the stream.
Answer read(std::string_view input, size_t piece) {
    HttpResponseReader reader;
    reader.start();
    std::string buffer;
    Result result = Result::more;
    for (size_t at = 0; at < input.size() && result == Result::more; at += piece) {
        buffer.append(input.substr(at, piece));
        size_t used = 0;
        result = reader.feed(buffer, used);
        if (used > buffer.size()) std::abort();
        buffer.erase(0, used);
    }
    if (result == Result::more) result = reader.end_of_stream();
    if (result == Result::error && reader.error().empty()) std::abort();
    if (reader.body().size() > HttpResponseReader::kKeptBody) std::abort();
    return {result, result == Result::done ? reader.status() : 0, reader.close_after(), std::string(reader.body())};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t piece = data[0] % 16 + 1;
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    Answer whole = read(input, input.size() ? input.size() : 1);
    Answer pieces = read(input, piece);
    if (whole.result != pieces.result) std::abort();
    if (whole.result == Result::done &&
        (whole.status != pieces.status || whole.close_after != pieces.close_after || whole.body != pieces.body))
        std::abort();
    if (whole.result == Result::done && (whole.status < 200 || whole.status > 599)) std::abort();
    return 0;
}
