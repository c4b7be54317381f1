// What the output loop (worker/output_loop.cpp) drives: a transport that carries whole lines from a
// destination's queue to the destination and says how much of them the destination confirmed. The
// loop owns the queue, batching, connect and backoff, heartbeats, failover and the commit; a
// transport owns the connection and the wire format.
//
// Two shapes of transport exist:
//   - stream: batches follow one another on one connection before the first is confirmed (plain
//     TCP lines today; pickle frames, TLS and compressed streams are the same shape). Built as
//     StreamTransport = Framing (what the bytes of a batch are) over ByteStream (how bytes travel
//     and when the destination has confirmed them), worker/stream_transport.hpp.
//   - exchange: one batch at a time, confirmed as a whole by an answer (HTTPS to a gateway).
#pragma once

#include <poll.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>

#include "shm/queue_reader.hpp"

namespace polymur {

enum class Io { ok, failed, aborted };  // aborted: deldest, or the drain deadline passed

// The loop's side, as a transport sees it while it waits on the network.
class OutputLink {
public:
    virtual ~OutputLink() = default;
    virtual void beat(int64_t now) = 0;              // still alive (heartbeat)
    virtual void progressed(int64_t now) = 0;        // the destination is taking data
    virtual bool must_abort(int64_t now) const = 0;  // removed, or the drain deadline passed
    virtual uint32_t connect_timeout_ms() const = 0;

    // Polls `fd` for `events` until `deadline` in short slices, beating the heartbeat.
    Io wait_fd(int fd, short events, int64_t deadline, std::string& error);
};

// What an attempt to send the batches added so far came to.
enum class Sent {
    ok,       // handed over; confirmed() follows as the destination confirms
    lost,     // the connection failed (`error` says how): reconnect, send what is unconfirmed again
    refused,  // the destination answered and did not take the batch: keep it, back off, send it again
    smaller,  // the destination wants smaller batches (batch_limit() shrank): read them again
    aborted,  // stopping or removed while waiting
};

enum class Delivery {
    // Batches are pipelined on a connection that stays open; a failure is a failed connect (what
    // --failover-after counts); retries come every --reconnect-interval, and each is logged.
    stream,
    // One batch in flight, confirmed as a whole; the transport keeps it across failures and sends
    // the same bytes again; it connects when it has something to send; a failure is any attempt
    // that did not deliver; retries back off exponentially and a streak is logged once a minute.
    exchange,
};

class Transport {
public:
    virtual ~Transport() = default;

    virtual Delivery delivery() const = 0;
    // Connects (blocking up to the connect timeout, through OutputLink::wait_fd).
    virtual Io open(std::string& error) = 0;
    virtual bool is_open() const = 0;
    // Drops the connection. `lost`: it failed under us (counted as a reconnect by the caller).
    virtual void close(bool lost) = 0;
    // For the "connected" log line: protocol details, e.g. " (TLSv1.3, TLS_AES_256_GCM_SHA384)".
    virtual std::string connection_info() const { return {}; }

    // Bytes of lines the loop may read for one round of batches, and per ring read.
    virtual uint64_t batch_limit() const = 0;
    virtual uint64_t read_limit() const = 0;
    // Takes a batch to send; returns the position just past it, in the units confirmed() counts.
    virtual uint64_t add(const shm::ReadBatch& batch) = 0;
    virtual bool has_unsent() const = 0;
    // Sends what was added and not sent yet.
    virtual Sent send(std::string& error) = 0;
    // The position up to which the destination confirmed what was sent.
    virtual uint64_t confirmed() = 0;
    // With batches sent and unconfirmed: waits up to `ms` for confirmations; false when the
    // destination closed the connection.
    virtual bool await_confirmation(int ms) = 0;
    // With nothing in flight: whether the destination closed the connection (a stream transport
    // treats that as a loss; an exchange transport closes quietly and reconnects when it sends).
    virtual bool closed_while_idle() = 0;
    // Forgets every batch added (the loop reads them again).
    virtual void reset() = 0;
};

// A byte stream to the destination: TCP, TLS, or compression over either.
class ByteStream {
public:
    virtual ~ByteStream() = default;
    virtual Io open(std::string& error) = 0;
    virtual bool is_open() const = 0;
    virtual void close() = 0;
    virtual std::string connection_info() const { return {}; }
    // Takes some of the bytes of `iov`: how many (> 0), 0 when it cannot take any now (wait for
    // wait_events()), -1 when the stream failed (`error` says how). A stream may hold bytes it
    // took (compression, TLS records) until flush().
    virtual ssize_t write(const struct iovec* iov, int count, std::string& error) = 0;
    // Whether the destination can confirm bytes only at batch ends (a compressed stream: at its flushes).
    // Such a stream is given one batch per write() and told where each ends (end_batch()).
    virtual bool confirms_at_batch_ends() const { return false; }
    // The bytes taken so far end a batch: make them decodable by the destination and confirmable.
    // False with `error` on failure.
    virtual bool end_batch(std::string&) { return true; }
    // Pushes every byte taken towards the destination: true when nothing is held back any more,
    // false with `error` empty when it must wait (wait_events()), false with `error` on failure.
    virtual bool flush(std::string& error) = 0;
    // The poll events the stream waits for when it cannot progress (POLLOUT, or POLLIN for TLS).
    virtual short wait_events() const { return POLLOUT; }
    // Of the bytes taken since open, how many the destination has confirmed (for TCP: its kernel
    // acknowledged them).
    virtual uint64_t confirmed() = 0;
    // Whether the destination closed or reset the connection (Graphite destinations never write back).
    virtual bool peer_closed() = 0;
    virtual int fd() const = 0;
};

}  // namespace polymur
