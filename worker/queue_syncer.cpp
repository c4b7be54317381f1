#include "worker/queue_syncer.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace polymur {

QueueSyncer::QueueSyncer(shm::QueueFile& queue, int fd, uint32_t interval_s, std::string destination)
        : queue_(queue), fd_(fd), interval_s_(interval_s), destination_(std::move(destination)) {
    if (interval_s_ == 0 || fd_ < 0) return;
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        LOG_ERROR("destination %s: cannot start the queue sync thread (%s); syncing only at exit", destination_.c_str(),
                  e.what());
    }
}

QueueSyncer::~QueueSyncer() {
    if (interval_s_ == 0 || fd_ < 0) return;
    if (thread_.joinable()) {
        {
            std::lock_guard<std::mutex> guard(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    sync_once();
}

void QueueSyncer::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::seconds(interval_s_), [this] { return stop_; })) {
        lock.unlock();
        sync_once();
        lock.lock();
    }
}

void QueueSyncer::sync_once() {
    const int64_t started = monotonic_ms();
    const bool ok = queue_.sync_published(fd_);
    const int64_t took = monotonic_ms() - started;
    // One line when syncing starts failing and one when it works again, not one per interval.
    if (!ok && !failing_)
        LOG_ERROR(
            "destination %s: cannot sync queue %s: %s; lines queued since the last sync would not survive a power loss",
            destination_.c_str(), queue_.path().c_str(), std::strerror(errno));
    else if (ok && failing_)
        LOG_NOTICE("destination %s: queue %s syncs again", destination_.c_str(), queue_.path().c_str());
    else if (ok && took > static_cast<int64_t>(interval_s_) * 1000)
        LOG_WARN("destination %s: syncing queue %s took %lld ms, longer than --sync-interval", destination_.c_str(),
                 queue_.path().c_str(), static_cast<long long>(took));
    failing_ = !ok;
}

}  // namespace polymur
