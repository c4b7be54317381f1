// Carrying a queue over into another geometry at start: a machine resized during an outage (the
// default --workers follows the CPU count) or a new --queue-bytes must not strand queued lines.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/durable_file.hpp"
#include "shm/queue.hpp"

namespace polymur::shm {
namespace {

std::string describe(uint32_t rings, uint64_t capacity) {
    return std::to_string(rings) + " rings of " + std::to_string(capacity) + " bytes";
}

}  // namespace

std::unique_ptr<QueueFile> QueueFile::migrate(std::unique_ptr<QueueFile> old, std::string_view destination,
                                              QueueGeometry geometry, uint64_t max_bytes, QueueSpaceReport& space,
                                              std::string& error) {
    const std::string path = old->path();
    const std::string tmp = path + ".migrating";  // a crash leaves it behind; the old file is still whole
    const std::string from = describe(old->ring_count(), old->ring_capacity());
    const uint64_t queued_lines = old->queued_lines();
    auto refuse = [&](const std::string& why) {
        unlink(tmp.c_str());
        error = "queue file " + path + " holds " + std::to_string(queued_lines) +
            " queued lines in another geometry (" + from + ") and they cannot be carried over: " + why +
            "; start with the --workers and --queue-bytes it was made with to deliver them, or move the file away";
        return nullptr;
    };
    unlink(tmp.c_str());
    auto fresh = create(tmp, destination, geometry, max_bytes, space, error);
    if (!fresh) return refuse(error);

    // Each old ring's lines go, in order, into the new rings from the first on, a new ring taking
    // what fits of whole lines. A line cut by a producer that died mid-write is not carried.
    uint32_t target = 0;
    uint64_t moved_lines = 0, dropped = 0;
    const uint64_t old_capacity = old->ring_capacity();
    for (uint32_t i = 0; i < old->ring_count(); ++i) {
        const RingControl& r = old->ring(i);
        const char* src = old->ring_data(i);
        auto at = [&](uint64_t pos) { return src[pos % old_capacity]; };
        uint64_t read_pos = r.read_pos.load(std::memory_order_acquire);
        uint64_t write_pos = r.write_pos.load(std::memory_order_acquire);
        dropped += r.dropped_full.load(std::memory_order_relaxed);
        while (write_pos > read_pos && at(write_pos - 1) != '\n') --write_pos;
        while (read_pos < write_pos) {
            if (target >= fresh->ring_count())
                return refuse("the new geometry (" + describe(fresh->ring_count(), fresh->ring_capacity()) +
                              ") holds less");
            RingControl& t = fresh->ring(target);
            const uint64_t filled = t.write_pos.load(std::memory_order_relaxed);
            uint64_t take = std::min(write_pos - read_pos, fresh->ring_capacity() - filled);
            while (take && at(read_pos + take - 1) != '\n') --take;
            if (take == 0) {
                ++target;
                continue;
            }
            char* dst = fresh->ring_data(target) + filled;
            for (uint64_t done = 0; done < take;) {
                const uint64_t offset = (read_pos + done) % old_capacity;
                const uint64_t span = std::min(take - done, old_capacity - offset);
                std::memcpy(dst + done, src + offset, span);
                done += span;
            }
            uint64_t lines = 0;
            for (const char* p = dst; (p = static_cast<const char*>(std::memchr(p, '\n', dst + take - p))); ++p)
                ++lines;
            t.lines_written.store(t.lines_written.load(std::memory_order_relaxed) + lines, std::memory_order_relaxed);
            t.write_pos.store(filled + take, std::memory_order_release);
            moved_lines += lines;
            read_pos += take;
        }
    }
    fresh->ring(0).dropped_full.fetch_add(dropped, std::memory_order_relaxed);
    std::string sync_error;
    if (!fresh->sync(sync_error)) return refuse(sync_error);
    fresh.reset();
    old.reset();
    if (rename(tmp.c_str(), path.c_str()) != 0)
        return refuse(std::string("cannot rename the new file: ") + std::strerror(errno));
    sync_directory_of(path);
    space.migrated_lines = moved_lines;
    space.migrated_from = from;
    return open(path, error);
}

}  // namespace polymur::shm
