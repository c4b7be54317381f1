// --sync-interval: a thread of the output process that makes its queue durable every interval,
// and once more when the output stops (after a clean stop nothing is given up at the next boot).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "shm/queue.hpp"

namespace polymur {

class QueueSyncer {
public:
    // `fd` is a descriptor of the queue file (the output's lock); `interval_s` 0 does nothing.
    QueueSyncer(shm::QueueFile& queue, int fd, uint32_t interval_s, std::string destination);
    ~QueueSyncer();
    QueueSyncer(const QueueSyncer&) = delete;
    QueueSyncer& operator=(const QueueSyncer&) = delete;

private:
    void run();
    void sync_once();

    shm::QueueFile& queue_;
    int fd_;
    uint32_t interval_s_;
    std::string destination_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    bool failing_ = false;
    std::thread thread_;
};

}  // namespace polymur
