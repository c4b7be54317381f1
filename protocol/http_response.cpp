#include "protocol/http_response.hpp"

#include <algorithm>
#include <cstring>

#include "protocol/http_fields.hpp"

namespace polymur::protocol {
namespace {

// For error messages: at most 60 bytes, control characters and non-ASCII shown as '?'.
std::string shown(std::string_view text) {
    std::string out;
    for (unsigned char c : text.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

void HttpResponseReader::start() {
    state_ = State::status_line;
    status_ = 0;
    http10_ = close_after_ = chunked_ = other_coding_ = have_length_ = false;
    length_ = remaining_ = 0;
    header_bytes_ = kept_len_ = 0;
    error_.clear();
}

HttpResponseReader::Result HttpResponseReader::fail(std::string why, std::string_view line) {
    state_ = State::failed;
    error_ = std::move(why);
    if (!line.empty() || error_.back() == ':') error_ += " '" + shown(line) + "'";
    return Result::error;
}

void HttpResponseReader::keep(std::string_view bytes) {
    size_t take = std::min(bytes.size(), kKeptBody - kept_len_);
    std::memcpy(kept_ + kept_len_, bytes.data(), take);
    kept_len_ += take;
}

// HTTP/1.1 200 OK
HttpResponseReader::Result HttpResponseReader::status_line(std::string_view line) {
    if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || !is_digit(line[5]) || line[6] != '.' ||
        !is_digit(line[7]) || line[8] != ' ')
        return fail("not an HTTP answer:", line);
    if (line[5] != '1') return fail("not an HTTP/1 answer:", line);
    if (!is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) || (line.size() > 12 && line[12] != ' '))
        return fail("bad HTTP status line:", line);
    status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status_ < 100 || status_ > 599) return fail("bad HTTP status line:", line);
    http10_ = line[7] == '0';
    close_after_ = http10_;
    chunked_ = other_coding_ = have_length_ = false;
    length_ = 0;
    state_ = State::headers;
    return Result::more;
}

HttpResponseReader::Result HttpResponseReader::header(std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line.front() == ' ' || line.front() == '\t')
        return fail("bad header line in the answer:", line);
    std::string_view name = line.substr(0, colon);
    if (name.back() == ' ' || name.back() == '\t') return fail("bad header line in the answer:", line);
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (same_token(name, "Content-Length")) {
        uint64_t length = 0;
        if (!parse_content_length(value, length)) return fail("bad Content-Length in the answer:", value);
        if (have_length_ && length != length_) return fail("two different Content-Length headers in the answer");
        have_length_ = true;
        length_ = length;
    } else if (same_token(name, "Transfer-Encoding")) {
        // The last coding decides: chunked frames the body; any other runs to the end of the connection.
        chunked_ = list_ends_with(value, "chunked");
        other_coding_ = !chunked_;
    } else if (same_token(name, "Connection")) {
        if (list_contains(value, "close")) close_after_ = true;
        else if (list_contains(value, "keep-alive")) close_after_ = false;
    }
    return Result::more;
}

HttpResponseReader::Result HttpResponseReader::headers_done() {
    if (status_ < 200) {  // 100 Continue and the like: the real answer follows
        state_ = State::status_line;
        return Result::more;
    }
    kept_len_ = 0;
    if (status_ == 204 || status_ == 304) {
        state_ = State::done;
    } else if (chunked_) {
        state_ = State::chunk_size;
    } else if (other_coding_ || !have_length_) {
        state_ = State::until_close;
        close_after_ = true;
    } else {
        remaining_ = length_;
        state_ = remaining_ ? State::body : State::done;
    }
    return state_ == State::done ? Result::done : Result::more;
}

HttpResponseReader::Result HttpResponseReader::feed(std::string_view data, size_t& used) {
    used = 0;
    while (true) {
        std::string_view rest = data.substr(used);
        switch (state_) {
            case State::done: return Result::done;
            case State::failed: return Result::error;
            case State::body:
            case State::chunk_data: {
                size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
                keep(rest.substr(0, take));
                used += take;
                remaining_ -= take;
                if (remaining_) return Result::more;
                state_ = state_ == State::body ? State::done : State::chunk_end;
                continue;
            }
            case State::until_close:
                keep(rest);
                used = data.size();
                return Result::more;
            default: break;
        }
        // Every other state reads one line.
        size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) {
            if (state_ == State::status_line || state_ == State::headers) {
                if (header_bytes_ + rest.size() > kMaxHeaderBytes)
                    return fail("the answer's headers are longer than 64 KiB");
            }
            return Result::more;
        }
        std::string_view line = rest.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        used += nl + 1;
        Result result = Result::more;
        switch (state_) {
            case State::status_line:
            case State::headers:
                header_bytes_ += nl + 1;
                if (header_bytes_ > kMaxHeaderBytes) return fail("the answer's headers are longer than 64 KiB");
                if (state_ == State::status_line) result = status_line(line);
                else result = line.empty() ? headers_done() : header(line);
                break;
            case State::chunk_size: {
                uint64_t size = 0;
                if (!parse_chunk_size(line, size)) return fail("bad chunk size in the answer:", line);
                remaining_ = size;
                state_ = size ? State::chunk_data : State::trailers;
                break;
            }
            case State::chunk_end:
                if (!line.empty()) return fail("a chunk of the answer is longer than its size");
                state_ = State::chunk_size;
                break;
            case State::trailers:
                if (line.empty()) state_ = State::done;
                break;
            default: break;
        }
        if (result != Result::more) return result;
    }
}

HttpResponseReader::Result HttpResponseReader::end_of_stream() {
    if (state_ == State::until_close) {
        state_ = State::done;
        return Result::done;
    }
    if (state_ == State::done) return Result::done;
    if (state_ == State::failed) return Result::error;
    return fail(state_ == State::status_line && header_bytes_ == 0
                    ? "the connection closed without an answer"
                    : "the connection closed in the middle of the answer");
}

}  // namespace polymur::protocol
