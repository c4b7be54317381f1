// Reads one HTTP/1.x response as it arrives: the gateway's answer to the proxy's POST
// (worker/https_transport.cpp). Pure code: the caller owns the socket and the receive buffer, and feeds
// what has arrived; the reader takes whole lines and body bytes and says what it needs next.
// 1xx answers are skipped; the body is framed by chunked encoding, Content-Length or the end of the
// connection, and only its first bytes are kept (for the log of a refusal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace polymur::protocol {

class HttpResponseReader {
public:
    enum class Result { more, done, error };
    static constexpr size_t kKeptBody = 160;             // of the body, for log lines
    static constexpr size_t kMaxHeaderBytes = 64 << 10;  // status line and headers of one response

    // Prepares for the next response on the connection.
    void start();

    // Consumes the front of `data` (bytes received and not consumed yet); `used` is how many bytes
    // were taken. A partial line is never taken: the caller keeps it and feeds it again with more.
    // more: needs more bytes; done: the response is complete; error: not a valid response (error()).
    Result feed(std::string_view data, size_t& used);

    // The connection ended. Completes a body that runs to the end of the connection; anything else
    // is an error.
    Result end_of_stream();

    int status() const { return status_; }
    // The connection cannot carry another request after this response.
    bool close_after() const { return close_after_; }
    // The body ends only when the connection does (no length, not chunked).
    bool reads_until_close() const { return state_ == State::until_close; }
    // The first kKeptBody bytes of the final response's body.
    std::string_view body() const { return std::string_view(kept_, kept_len_); }
    const std::string& error() const { return error_; }

private:
    enum class State {
        status_line,
        headers,
        body,
        chunk_size,
        chunk_data,
        chunk_end,
        trailers,
        until_close,
        done,
        failed
    };

    Result fail(std::string why, std::string_view line = {});
    Result status_line(std::string_view line);
    Result header(std::string_view line);
    Result headers_done();
    void keep(std::string_view bytes);

    State state_ = State::status_line;
    int status_ = 0;
    bool http10_ = false;
    bool close_after_ = false;
    bool chunked_ = false;
    bool other_coding_ = false;
    bool have_length_ = false;
    uint64_t length_ = 0;
    uint64_t remaining_ = 0;
    size_t header_bytes_ = 0;
    char kept_[kKeptBody];
    size_t kept_len_ = 0;
    std::string error_;
};

}  // namespace polymur::protocol
