// A log line for an event that may come many times a second (a request, a connection, a failed accept):
// the first of each kind at once, then at most one a second per kind, carrying how many were held back.
#pragma once

#include <cstdint>
#include <vector>

#include "common/clock.hpp"

namespace polymur {

class RateLimitedLog {
public:
    template <typename Emit>
    void event(Emit emit, long kind = 0) {
        int64_t now = monotonic_ms();
        State* state = nullptr;
        for (State& s : states_)
            if (s.kind == kind) state = &s;
        if (!state) {
            if (states_.size() >= 32) states_.clear();  // bounded; forgetting only means logging sooner
            states_.push_back(State {kind, 0, 0});
            state = &states_.back();
        }
        if (state->last_ms && now - state->last_ms < 1000) {
            ++state->held;
            return;
        }
        emit(state->held);
        state->held = 0;
        state->last_ms = now;
    }

private:
    struct State {
        long kind;
        int64_t last_ms;
        unsigned long long held;
    };
    std::vector<State> states_;
};

}  // namespace polymur
