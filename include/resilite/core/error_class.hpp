#pragma once
// resilite::error_class: what kind of failure happened, independent of SQLite's numbering,
// plus the fixed table of plain user messages (no SQL, no values, no paths: property P8).

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace resilite {

enum class error_class : std::uint8_t {
    none,             // not an error (SQLITE_OK); never carried by a thrown resilite::error
    sql,              // generic SQL error: syntax, missing table, ...
    internal,         // SQLite or resilite internal fault
    permission,       // access permission denied by the OS
    aborted,          // operation aborted (e.g. by a callback or ROLLBACK)
    busy,             // database file locked by another connection
    locked,           // table locked inside this process (shared cache) or deadlock
    no_memory,        // allocation failed
    read_only,        // write attempted on a read-only database
    interrupted,      // sqlite3_interrupt()
    io,               // disk I/O failure
    corrupt,          // database disk image is malformed
    not_found,        // file control / VFS lookup failed
    full,             // disk or database full
    cant_open,        // unable to open the database file
    protocol,         // locking protocol error
    schema,           // schema changed under a prepared statement, or schema drift
    too_big,          // string or blob too large
    constraint,       // constraint violation
    mismatch,         // data type mismatch
    misuse,           // library used incorrectly
    auth,             // authorization denied
    range,            // bind parameter index out of range
    not_a_database,   // file is not a database
    durability,       // the required durability mode (WAL, synchronous) could not be set
    invalid_setting,  // a runtime setting was refused; the old settings stay
    retry_exhausted,  // attempts or deadline ran out (the last cause is carried)
    degraded,         // the database is unavailable now (docs/degradation.md); nothing was changed
    migration,        // a migration failed and was rolled back (the version is unchanged)
    archive,          // the text archive is damaged, incomplete, hostile or cannot be written
};

inline constexpr std::size_t error_class_count = static_cast<std::size_t>(error_class::archive) + 1;

namespace detail {
struct error_class_info {
    std::string_view name;
    std::string_view user_message;
};

// The fixed table. Messages speak to a person using the application: what happened and,
// where there is one, what they can do. They never contain SQL, values or paths.
inline constexpr std::array<error_class_info, error_class_count> error_class_table{{
    {"none", "The operation completed."},
    {"sql", "The application sent the database a request it could not understand."},
    {"internal", "The database engine hit an internal fault."},
    {"permission", "The database file cannot be accessed with the current permissions."},
    {"aborted", "The operation was cancelled before it finished; nothing was changed."},
    {"busy", "The database is busy with another program; please try again shortly."},
    {"locked", "The data is locked by another operation; please try again shortly."},
    {"no_memory", "The system ran out of memory while working with the database."},
    {"read_only", "The database is read-only; changes cannot be saved right now."},
    {"interrupted", "The operation was interrupted; nothing was changed."},
    {"io", "The disk reported an error while reading or writing the database."},
    {"corrupt", "The database file is damaged."},
    {"not_found", "A required database component could not be found."},
    {"full", "The disk is full; free some space and try again."},
    {"cant_open", "The database file could not be opened."},
    {"protocol", "The database locking protocol failed; please try again."},
    {"schema", "The database structure does not match what the application expects."},
    {"too_big", "A value is too large to be stored in the database."},
    {"constraint", "The change was refused because it breaks a rule of the data."},
    {"mismatch", "A value does not have the type expected for it."},
    {"misuse", "The application used the database library incorrectly."},
    {"auth", "The operation is not allowed."},
    {"range", "The application passed the wrong number of values to the database."},
    {"not_a_database", "The file is not a database, or it is encrypted or damaged."},
    {"durability", "The database could not be switched to its safe storage mode."},
    {"invalid_setting", "A setting was refused; the settings in force (or, at open, none: the database was not opened) stay as they were."},
    {"retry_exhausted", "The database stayed unavailable for as long as the retry policy allows."},
    {"degraded", "The database is temporarily unavailable for this kind of operation."},
    {"migration",
     "The database could not be upgraded for this version of the application; the step that failed was undone, "
     "earlier steps stay applied."},
    {"archive", "The text archive is damaged or cannot be used."},
}};
}  // namespace detail

[[nodiscard]] constexpr std::string_view name(error_class c) noexcept {
    return detail::error_class_table[static_cast<std::size_t>(c)].name;
}

// The same name, under the name users try first (and for generic code that calls to_string).
[[nodiscard]] constexpr std::string_view to_string(error_class c) noexcept { return name(c); }

[[nodiscard]] constexpr std::string_view user_message(error_class c) noexcept {
    return detail::error_class_table[static_cast<std::size_t>(c)].user_message;
}

namespace detail {
// technical().code_name of a failure resilite raises itself (no SQLite code behind it), so that
// logs name every failure the same way: RESILITE_ and the class name in capitals.
inline constexpr std::array<std::string_view, error_class_count> library_code_names{{
    "RESILITE_NONE",        "RESILITE_SQL",           "RESILITE_INTERNAL",        "RESILITE_PERMISSION",
    "RESILITE_ABORTED",     "RESILITE_BUSY",          "RESILITE_LOCKED",          "RESILITE_NO_MEMORY",
    "RESILITE_READ_ONLY",   "RESILITE_INTERRUPTED",   "RESILITE_IO",              "RESILITE_CORRUPT",
    "RESILITE_NOT_FOUND",   "RESILITE_FULL",          "RESILITE_CANT_OPEN",       "RESILITE_PROTOCOL",
    "RESILITE_SCHEMA",      "RESILITE_TOO_BIG",       "RESILITE_CONSTRAINT",      "RESILITE_MISMATCH",
    "RESILITE_MISUSE",      "RESILITE_AUTH",          "RESILITE_RANGE",           "RESILITE_NOT_A_DATABASE",
    "RESILITE_DURABILITY",  "RESILITE_INVALID_SETTING", "RESILITE_RETRY_EXHAUSTED", "RESILITE_DEGRADED",
    "RESILITE_MIGRATION",   "RESILITE_ARCHIVE",
}};
static_assert(!library_code_names.back().empty(), "resilite: a new error_class needs its RESILITE_ code name");

[[nodiscard]] constexpr std::string_view library_code_name(error_class c) noexcept {
    return library_code_names[static_cast<std::size_t>(c)];
}
}  // namespace detail

// The portable condition (std::errc) a class corresponds to, where one clearly does; none for
// the rest (they compare equal to no std::errc). std::error_code's default_error_condition for
// both of resilite's categories (docs/errors.md).
[[nodiscard]] constexpr std::optional<std::errc> generic_condition(error_class c) noexcept {
    switch (c) {
        case error_class::busy:
        case error_class::locked:
        case error_class::degraded:
            return std::errc::resource_unavailable_try_again;
        case error_class::full:
            return std::errc::no_space_on_device;
        case error_class::permission:
            return std::errc::permission_denied;
        case error_class::no_memory:
            return std::errc::not_enough_memory;
        case error_class::io:
            return std::errc::io_error;
        case error_class::interrupted:
            return std::errc::interrupted;
        case error_class::retry_exhausted:
            return std::errc::timed_out;
        case error_class::too_big:
            return std::errc::value_too_large;
        default:
            return std::nullopt;
    }
}

// Every primary result code maps to exactly one class; extended codes map through their primary.
[[nodiscard]] constexpr error_class classify(int sqlite_code) noexcept {
    // NOLINTNEXTLINE(bugprone-branch-clone): one line per code, several codes share a class
    switch (sqlite_code & 0xff) {
        case SQLITE_OK:
            return error_class::none;
        case SQLITE_ERROR:
            return error_class::sql;
        case SQLITE_INTERNAL:
            return error_class::internal;
        case SQLITE_PERM:
            return error_class::permission;
        case SQLITE_ABORT:
            return error_class::aborted;
        case SQLITE_BUSY:
            return error_class::busy;
        case SQLITE_LOCKED:
            return error_class::locked;
        case SQLITE_NOMEM:
            return error_class::no_memory;
        case SQLITE_READONLY:
            return error_class::read_only;
        case SQLITE_INTERRUPT:
            return error_class::interrupted;
        case SQLITE_IOERR:
            return error_class::io;
        case SQLITE_CORRUPT:
            return error_class::corrupt;
        case SQLITE_NOTFOUND:
            return error_class::not_found;
        case SQLITE_FULL:
            return error_class::full;
        case SQLITE_CANTOPEN:
            return error_class::cant_open;
        case SQLITE_PROTOCOL:
            return error_class::protocol;
        case SQLITE_EMPTY:
            return error_class::internal;  // unused by SQLite
        case SQLITE_SCHEMA:
            return error_class::schema;
        case SQLITE_TOOBIG:
            return error_class::too_big;
        case SQLITE_CONSTRAINT:
            return error_class::constraint;
        case SQLITE_MISMATCH:
            return error_class::mismatch;
        case SQLITE_MISUSE:
            return error_class::misuse;
        case SQLITE_NOLFS:
            return error_class::io;
        case SQLITE_AUTH:
            return error_class::auth;
        case SQLITE_FORMAT:
            return error_class::internal;  // unused by SQLite
        case SQLITE_RANGE:
            return error_class::range;
        case SQLITE_NOTADB:
            return error_class::not_a_database;
        case SQLITE_NOTICE:
            return error_class::internal;  // log-only codes: seeing one
        case SQLITE_WARNING:
            return error_class::internal;  // as a result is a fault
        case SQLITE_ROW:
            return error_class::misuse;  // a row where none was expected
        case SQLITE_DONE:
            return error_class::misuse;  // no row where one was expected
        default:
            return error_class::internal;
    }
}

}  // namespace resilite
