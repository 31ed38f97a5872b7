#pragma once
// resilite::progress: how far a long operation has come (a rebuild, a replay, a backup's copy,
// a heal, a full integrity check), for a progress bar or a log line. The library calls a
// progress_fn from the thread doing the work: at the start of each step, whenever another whole
// percent is done (or, when the total is not known, every `done` that is a multiple of a fixed
// stride), and at its end. It counts work done, never time, so what it reports does not depend
// on the machine's speed. It must not call back into the library; what it throws is ignored.

#include <cstdint>
#include <functional>
#include <string_view>

namespace resilite {

struct progress {
    std::string_view operation;  // "rebuild", "replay", "backup", "heal", "check"
    std::string_view step;       // what is being done now, e.g. "applying records", "copying pages"
    std::uint64_t done = 0;
    // 0: not known in advance (an integrity check counts SQLite's steps); at a step's end it is
    // set, at least 1, and done == total.
    std::uint64_t total = 0;
    std::string_view unit;    // "records", "pages", "steps", "files"
    [[nodiscard]] bool finished() const noexcept { return total != 0 && done >= total; }
};

using progress_fn = std::function<void(const progress&)>;

}  // namespace resilite
