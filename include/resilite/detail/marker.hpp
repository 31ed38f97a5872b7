#pragma once
// The marker beside a database that resilite initialised ("app.db-resilite"). It tells a file
// that was emptied (truncated to 0 bytes: data lost) from a brand new one (nothing lost).

#include <filesystem>
#include <fstream>
#include <string>

namespace resilite::detail {

[[nodiscard]] inline std::filesystem::path marker_path(const std::filesystem::path& db) {
    return std::filesystem::path{db.string() + "-resilite"};
}

// Written once, after the first successful open; never throws (a missing marker only costs
// the emptied-file diagnosis).
inline void write_marker(const std::filesystem::path& db) noexcept {
    try {
        const auto m = marker_path(db);
        std::error_code ec;
        if (std::filesystem::exists(m, ec)) return;
        std::ofstream out(m);
        out << "resilite marker: this database was initialised by resilite; if it is ever found empty, "
               "its data was lost (restore it, do not recreate it)\n";
    } catch (...) {
    }
}

}  // namespace resilite::detail
