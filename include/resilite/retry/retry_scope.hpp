#pragma once
// resilite::retry_scope: which failures a retry can cure, and what must be redone for it. A
// retry policy may replace the classification with its own `static retry_scope
// scope_of(const error&)` (see resilite::default_retry_hooks).

#include <resilite/core/error.hpp>

namespace resilite {

enum class retry_scope {
    none,               // cannot succeed on retry: constraint, misuse, corrupt, ...
    statement,          // BUSY, LOCKED, PROTOCOL: run the same statement (or BEGIN/COMMIT) again
    whole_transaction,  // BUSY_SNAPSHOT: the snapshot is stale; only a new transaction helps
    reconnect,          // I/O error or CANTOPEN: close and reopen the connection, then retry
};

// The library's classification: busy and locked retry the statement, a stale snapshot the
// whole transaction, an I/O error reconnects first; everything else is not retried.
[[nodiscard]] inline retry_scope default_retry_scope(const error& e) noexcept {
    if (e.technical().extended_code == SQLITE_BUSY_SNAPSHOT) return retry_scope::whole_transaction;
    switch (e.klass()) {
        case error_class::busy:
        case error_class::locked:
        case error_class::protocol:
            return retry_scope::statement;
        case error_class::io:
        case error_class::cant_open:
            return retry_scope::reconnect;
        default:
            return retry_scope::none;
    }
}

}  // namespace resilite
