// Queue file validation (shm/queue): a file under --state-dir is trusted only after its header and ring
// positions are checked. The input is the start of the file; a file that claims a size up to 1 MiB is
// grown to it (zeros), so the checks after the size check are reached too. A file that is accepted is
// then used as a listener uses it: a producer on each ring appends and publishes a line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz/memory_file.hpp"
#include "shm/queue.hpp"

using namespace polymur::shm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static polymur::fuzz::MemoryFile file("polymur-fuzz-queue");
    uint64_t claimed = 0;
    if (size >= offsetof(QueueHeader, file_size) + sizeof claimed)
        std::memcpy(&claimed, data + offsetof(QueueHeader, file_size), sizeof claimed);
    file.write(data, size, claimed <= (1u << 20) ? static_cast<size_t>(claimed) : 0);

    std::string error;
    std::unique_ptr<QueueFile> queue = QueueFile::open(file.path(), error);
    if (!queue) {
        if (error.empty()) std::abort();  // a refusal always says why
        return 0;
    }
    queue->queued_lines();
    queue->queued_bytes();
    queue->dropped_lines();
    const std::string_view line = "fuzz.metric 1 1700000000\n";
    for (uint32_t ring = 0; ring < queue->ring_count() && ring < 4; ++ring) {
        RingProducer producer(*queue, ring, 1000);
        producer.refresh();
        if (producer.append(&line, 1, line.size())) producer.publish();
    }
    return 0;
}
