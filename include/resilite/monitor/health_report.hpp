#pragma once
// resilite::health_report: what a health check found.

#include <resilite/monitor/check_level.hpp>

#include <string>
#include <string_view>

namespace resilite {

struct health_report {
    enum class finding {
        ok,
        new_database,    // no file, or an empty one that resilite never initialised: nothing lost
        missing,         // resilite created this database, and the file is gone
        emptied,         // resilite created this database, and the file is now 0 bytes
        bad_header,      // the header is damaged, or the file is shorter than the header says
        bad_wal,         // a WAL frame in the middle of the log fails its checksum
        not_a_database,  // SQLite does not recognise the file
        corrupt,         // quick_check or integrity_check found damage
        io_error,        // the file could not be read
    };

    finding result = finding::ok;
    check_level level = check_level::header;  // the level the check ran at
    std::string detail;                       // what was found, for logs

    // True when the database can be used as it is (including a brand new one).
    [[nodiscard]] bool ok() const noexcept {
        return result == finding::ok || result == finding::new_database;
    }
};

[[nodiscard]] constexpr std::string_view to_string(health_report::finding f) noexcept {
    using F = health_report::finding;
    switch (f) {
        case F::ok:
            return "ok";
        case F::new_database:
            return "new database";
        case F::missing:
            return "missing";
        case F::emptied:
            return "emptied";
        case F::bad_header:
            return "bad header";
        case F::bad_wal:
            return "bad WAL";
        case F::not_a_database:
            return "not a database";
        case F::corrupt:
            return "corrupt";
        case F::io_error:
            return "I/O error";
    }
    return "?";
}

}  // namespace resilite
