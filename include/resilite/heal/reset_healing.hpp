#pragma once
// resilite::reset_healing(path): lets healing run again after the circuit breaker stopped it
// (max_attempts heals in a row did not succeed). Call it once the database is recovered by hand,
// or its backups or archive are repaired. Changes nothing else.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/monitor/detail/audit_fallback.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <fmt/format.h>

#include <filesystem>

namespace resilite {

inline void reset_healing(const std::filesystem::path& db) {
    if (!detail::read_marker(db).exists) return;
    const detail::sidecar_lock lock{db};  // never between a heal's read and write of the sidecar
    auto m = detail::read_marker(db);
    if (m.heal_attempts == 0) return;
    const auto failed = m.heal_attempts;
    m.heal_attempts = 0;  // (an unfinished heal stays recorded: the next open takes it up)
    if (!detail::write_marker(db, m)) {
        throw detail::library_failure(error_class::io, "reset_healing",
                                      "could not write the sidecar " + detail::marker_path(db).string(), db.string());
    }
    // The audit log: the entry waits in the fallback beside the database for its next open.
    static_cast<void>(detail::audit_without_database(
        db, "reset_healing",
        resilite::detail::format("healing may run again after {} heals in a row that did not succeed",
                                 failed)));
}

}  // namespace resilite
