#include "route/position_slots.hpp"

#include <algorithm>

#include "route/routing_table.hpp"

namespace polymur::route {

PositionSlots::PositionSlots() : answer_of_(new uint8_t[65536]()) {}

bool PositionSlots::applies_to(const RoutingTable& table) {
    if (!table.routes_by_one_cluster()) return false;
    const size_t most = table.one_cluster_slots_by_position();
    return most > 0 && most <= kMaxSlots;
}

void PositionSlots::reset() {
    std::fill_n(answer_of_.get(), 65536, uint8_t(0));
    answer_count_ = 0;
}

// A position not known yet: the table answers, and its answer is kept (named in answers_) if there is room.
size_t PositionSlots::ask(const RoutingTable& table, std::string_view name, uint32_t position, const bool* up,
                          uint16_t* out) {
    const size_t count = table.one_cluster_slots(name, up, out);
    if (count > kMaxSlots) return count;  // not a table this applies to: nothing kept
    const auto same = [&](const Answer& answer) {
        return answer.count == count && std::equal(out, out + count, answer.slot);
    };
    size_t index = size_t(std::find_if(answers_, answers_ + answer_count_, same) - answers_);
    if (index == answer_count_) {
        if (answer_count_ == kMaxAnswers) return count;  // this position is asked again next time
        answers_[answer_count_].count = static_cast<uint16_t>(count);
        std::copy_n(out, count, answers_[answer_count_++].slot);
    }
    answer_of_[position] = static_cast<uint8_t>(index + 1);
    return count;
}

}  // namespace polymur::route
