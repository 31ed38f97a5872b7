#pragma once
// resilite::transaction_mode: how BEGIN takes its locks.

#include <string_view>

namespace resilite {

// immediate (default) takes the write lock at BEGIN, so a write transaction cannot fail later
// with BUSY_SNAPSHOT when it upgrades; deferred waits until the first write; exclusive also
// keeps readers out in rollback-journal mode (same as immediate under WAL).
enum class transaction_mode { immediate, deferred, exclusive };

[[nodiscard]] constexpr std::string_view begin_statement(transaction_mode m) noexcept {
    switch (m) {
        case transaction_mode::deferred:
            return "BEGIN DEFERRED";
        case transaction_mode::exclusive:
            return "BEGIN EXCLUSIVE";
        case transaction_mode::immediate:
            break;
    }
    return "BEGIN IMMEDIATE";
}

}  // namespace resilite
