#pragma once
// A database's identity: 128 random bits, stored in the database (table resilite_identity), in
// its sidecar and in its archive directory. A file at the path whose identity differs from the
// sidecar's (or that has none while the sidecar has one) is a new, emptied or different
// database: damage, never a database to write into, back up or archive.

#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/marker.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <utility>

namespace resilite::detail {

inline constexpr std::string_view identity_table = "resilite_identity";

[[nodiscard]] inline std::string new_identity() {
    std::random_device rd;
    std::string id;
    for (int i = 0; i < 4; ++i)
        id += resilite::detail::format("{:08x}", static_cast<std::uint32_t>(rd()));
    return id;
}

// The identity stored in the database, if any.
[[nodiscard]] inline std::optional<std::string> read_identity(sqlite::connection& c) {
    if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                         identity_table) != 1)
        return std::nullopt;
    return c.query_one<std::string>("SELECT identity FROM resilite_identity LIMIT 1");
}

// The database at `path` (open as `c`) against the identity its sidecar records. Written once
// for every caller: open and reconnect refuse the file with `problem`, the operator's command
// reports it as damage, in the same words.
struct identity_check {
    std::optional<std::string> identity;  // the one stored in the database, if any
    std::string problem;                  // empty: it is the database resilite keeps here (or one it never saw)
};

[[nodiscard]] inline identity_check check_identity(const std::filesystem::path& path, sqlite::connection& c) {
    const auto side = read_marker(path);
    identity_check r{read_identity(c), {}};
    if (side.identity.empty()) return r;
    if (r.identity && *r.identity != side.identity) {
        r.problem = resilite::detail::format(
            "a different database is at this path: its identity is {}, but the database "
            "resilite keeps here is {}; nothing was changed (if the replacement is intended, "
            "remove {})",
            *r.identity, side.identity, marker_path(path).string());
    } else if (!r.identity) {
        r.problem = resilite::detail::format(
            "the file at this path is not the database resilite keeps here (identity {}): it is "
            "new, emptied or another database; nothing was changed: restore it from a backup (or "
            "remove {} if the replacement is intended)",
            side.identity, marker_path(path).string());
    }
    return r;
}

// Stores the identity if the database has none yet (the caller is inside a write transaction or
// accepts autocommit).
inline void stamp_identity(sqlite::connection& c, const std::string& id) {
    c.exec_script("CREATE TABLE IF NOT EXISTS resilite_identity(identity TEXT NOT NULL)");
    c.exec("INSERT INTO resilite_identity(identity) SELECT ? WHERE NOT EXISTS(SELECT 1 FROM resilite_identity)",
           id);
}

// The identity file of an archive directory: which database the archive belongs to.
[[nodiscard]] inline std::filesystem::path archive_identity_path(const std::filesystem::path& dir) {
    return dir / "IDENTITY";
}

[[nodiscard]] inline std::optional<std::string> read_archive_identity(const std::filesystem::path& dir) {
    std::ifstream in(archive_identity_path(dir));
    std::string line;
    if (!in || !std::getline(in, line) || !line.starts_with("resilite database ")) return std::nullopt;
    return line.substr(18);
}

[[nodiscard]] inline bool write_archive_identity(const std::filesystem::path& dir, const std::string& id) {
    std::ofstream out(archive_identity_path(dir), std::ios::trunc);
    out << "resilite database " << id << '\n';
    out.flush();
    return static_cast<bool>(out);
}

}  // namespace resilite::detail
