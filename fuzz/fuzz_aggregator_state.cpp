// The aggregator's state file and the records of its queue (aggregate/state_file): both are read back from
// --state-dir after a restart. Any input is either refused with a reason or read; what is read writes back to
// text that reads the same. Every line of the input is also tried as a queued record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "aggregate/state_file.hpp"

using namespace polymur::aggregate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    SavedState state;
    std::string error;
    if (!parse_state(text, state, error)) {
        if (error.empty()) std::abort();  // a refusal always says why
    } else {
        SavedState again;
        const std::string written = format_state(state);
        if (!parse_state(written, again, error) || again.emitted_through_ms != state.emitted_through_ms ||
            again.fingerprints != state.fingerprints || again.pending.size() != state.pending.size())
            std::abort();
        for (size_t i = 0; i < state.pending.size(); ++i)
            if (again.pending[i].target != state.pending[i].target ||
                again.pending[i].bytes != state.pending[i].bytes || again.pending[i].start != state.pending[i].start ||
                again.pending[i].lines != state.pending[i].lines)
                std::abort();
    }
    for (size_t start = 0; start < text.size();) {
        size_t nl = text.find('\n', start);
        if (nl == std::string_view::npos) nl = text.size();
        QueuedPoint point;
        const std::string_view line = text.substr(start, nl - start);
        if (parse_queued_point(line, point) &&
            (point.name.data() < line.data() || point.name.data() + point.name.size() > line.data() + line.size()))
            std::abort();
        start = nl + 1;
    }
    return 0;
}
