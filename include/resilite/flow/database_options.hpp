#pragma once
// resilite::database_options: the run-time objects a Database is built with: the observer and
// clock instances (copies of a manual_clock share its timeline), optionally settings that
// replace the ones seeded from the policies, and a failure-injection hook for tests.

#include <resilite/core/progress.hpp>
#include <resilite/flow/settings.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace resilite {

namespace sqlite {
class connection;
}

template <class Observer, class Clock>
struct database_options {
    Observer observer{};
    Clock clock{};
    std::optional<resilite::settings> settings{};
    // A JSON settings file whose fields go over `settings` at open, read again whenever it
    // changes (docs/settings.md); the environment variable RESILITE_SETTINGS_FILE, when set,
    // names it instead. Empty: none.
    std::filesystem::path settings_file{};
    // The SQLite VFS to open the database with (empty: the default), e.g. a
    // resilite::testing::fault_vfs in tests.
    std::string vfs{};
    // Test hook: called before every attempt of every operation; a non-zero SQLite result code
    // makes that attempt fail with it, as if SQLite had returned it (e.g. SQLITE_BUSY). A heal
    // asks it at its phases too ("heal:quarantine", "heal:replay", "heal:verify", "heal:swap",
    // and "heal:reopen", an open Database's reopen of the healed file), and at "heal:flush",
    // where a non-zero code makes the restored copy's flush report EIO. A backup asks it at
    // "backup:promote", between the new backup's manifest line and its name.
    std::function<int(std::string_view operation, int attempt)> inject_failure{};
    // Test hook: called at each written-ahead record's archive sync, which runs beside the
    // COMMIT; true makes that sync report an I/O error after the COMMIT (docs/archive.md).
    std::function<bool()> inject_archive_sync_failure{};
    // Called once before the first pending migration runs, with the database's version and the
    // version it is about to be brought to (a backup belongs here).
    std::function<void(int from_version, int to_version)> before_migrations{};
    // Called on every connection the Database opens, after its durability settings: at open,
    // after a reconnect and after a heal, so per-connection settings hold for the Database's
    // whole life (a `PRAGMA foreign_keys = ON` sent through db.exec lasts only until the
    // connection is replaced). Put PRAGMAs, application functions or collations here; what it
    // throws fails the open (or the reconnect). It runs on the read connections too
    // (settings().read_connections; opened read-only), possibly on several threads at once and
    // without the writer lock: what it throws there only sends the reads to the writer
    // connection (and a `read_connection` event says why).
    std::function<void(sqlite::connection&)> on_connect{};
    // Told how far the Database's long operations have come (a backup's copy, a heal at open or
    // later: restoring, replaying, verifying), from the thread doing them (core/progress.hpp);
    // for a progress bar. It must not call into the Database.
    progress_fn on_progress{};
};

}  // namespace resilite
