#pragma once
// The archive number a database stores (resilite_archive_state, written by the transaction whose
// records it names): what a backup, a restored copy or a damaged file holds of its archive.

#include <resilite/sqlite/connection.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>

namespace resilite::detail::archive {

// Nothing when the database never kept an archive (no state table).
[[nodiscard]] inline std::optional<std::int64_t> stored_archive_seq(sqlite::connection& c) {
    if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'resilite_archive_state'") != 1)
        return std::nullopt;
    return c.query_one<std::int64_t>("SELECT last_seq FROM resilite_archive_state");
}

// The captured changes the file's outbox holds that its archive has not received; nothing when
// it never kept an archive (no outbox). Read only.
[[nodiscard]] inline std::optional<std::int64_t> unarchived_in(const std::filesystem::path& db) {
    sqlite::connection c{db, SQLITE_OPEN_READONLY};
    if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'resilite_archive_outbox'") != 1)
        return std::nullopt;
    return c.query_one<std::int64_t>(
        "SELECT count(*) FROM resilite_archive_outbox WHERE id > (SELECT last_id FROM resilite_archive_state)");
}

}  // namespace resilite::detail::archive
