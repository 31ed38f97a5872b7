#pragma once
// resilite::retry_scope: which failures a retry can cure, and what must be redone for it. A
// retry policy may replace the classification with its own `static retry_scope
// scope_of(const error&)` (see resilite::default_retry_hooks).

#include <resilite/core/error.hpp>

#include <filesystem>
#include <system_error>

namespace resilite {

enum class retry_scope {
    none,               // cannot succeed on retry: constraint, misuse, corrupt, ...
    statement,          // BUSY, LOCKED, PROTOCOL: run the same statement (or BEGIN/COMMIT) again
    whole_transaction,  // BUSY_SNAPSHOT: the snapshot is stale; only a new transaction helps
    reconnect,          // I/O error or CANTOPEN: close and reopen the connection, then retry
};

namespace detail {
// CANTOPEN with nothing at the database's path (its file or its directory removed; a new
// database's directory missing): no reconnect brings it back, so retrying only held the caller
// for the whole deadline before the same answer.
[[nodiscard]] inline bool nothing_at_path(const error& e) noexcept {
    const auto& path = e.technical().database_path;
    if (path.empty() || path == ":memory:" || path.starts_with("file:")) return false;
    std::error_code ec;
    const auto st = std::filesystem::symlink_status(path, ec);
    return st.type() == std::filesystem::file_type::not_found;
}
}  // namespace detail

// The library's classification: busy and locked retry the statement, a stale snapshot the
// whole transaction, an I/O error reconnects first (CANTOPEN too, unless nothing is at the
// database's path any more); everything else is not retried.
[[nodiscard]] inline retry_scope default_retry_scope(const error& e) noexcept {
    if (e.technical().extended_code == SQLITE_BUSY_SNAPSHOT) return retry_scope::whole_transaction;
    switch (e.klass()) {
        case error_class::busy:
        case error_class::locked:
        case error_class::protocol:
            return retry_scope::statement;
        case error_class::io:
            return retry_scope::reconnect;
        case error_class::cant_open:
            return detail::nothing_at_path(e) ? retry_scope::none : retry_scope::reconnect;
        default:
            return retry_scope::none;
    }
}

}  // namespace resilite
