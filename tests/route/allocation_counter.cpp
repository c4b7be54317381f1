// Replaces global operator new for the route_tests binary to count allocations, so a test can
// prove that HashRing::lookup makes none. Kept in its own file so the compiler does not pair
// these malloc/free calls with new/delete expressions elsewhere.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<size_t> allocations {0};
}

size_t allocation_count() { return allocations.load(); }

void* operator new(size_t size) {
    ++allocations;
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
