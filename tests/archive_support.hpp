#pragma once
// Shared by the archive tests: the declared tables, Database types with and without archiving,
// and helpers to read segments, compare tables and imitate a crash.

#include "support.hpp"

#include <resilite/archive/detail/archive_replay.hpp>

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace test::archive {

struct Item {
    BOOST_HANA_DEFINE_STRUCT(Item, (std::int64_t, id), (std::string, name), (double, score),
                             (std::string, token));
};
struct ItemV2 {
    BOOST_HANA_DEFINE_STRUCT(ItemV2, (std::int64_t, id), (std::string, name), (double, score),
                             (std::string, token), (std::string, note));
};
struct ItemV3 {
    BOOST_HANA_DEFINE_STRUCT(ItemV3, (std::int64_t, id), (std::string, name), (double, score),
                             (std::string, token), (std::string, note), (std::int64_t, rank));
};
struct Log {
    BOOST_HANA_DEFINE_STRUCT(Log, (std::string, msg));
};
struct Tag {
    BOOST_HANA_DEFINE_STRUCT(Tag, (std::string, name));
};

// token is secret and NOT NULL without a default: archived inserts carry a placeholder.
using items = resilite::table<"items", Item, resilite::primary_key<"id">, resilite::secret<"token">>;
using items_v2 = resilite::table<"items", ItemV2, resilite::primary_key<"id">, resilite::secret<"token">,
                                 resilite::default_value<"note", "'none'">>;
using items_v3 =
    resilite::table<"items", ItemV3, resilite::primary_key<"id">, resilite::secret<"token">,
                    resilite::default_value<"note", "'none'">, resilite::default_value<"rank", "0">>;
using logs = resilite::table<"logs", Log>;  // no key: archived by rowid
using tags = resilite::table<"tags", Tag, resilite::primary_key<"name">>;

struct add_rank {
    static constexpr int version = 1;
    static constexpr std::string_view sql =
        "ALTER TABLE items ADD COLUMN rank INTEGER NOT NULL DEFAULT 0; UPDATE items SET rank = id * 10;";
};

using common = resilite::callback_observer;
using ItemsDb =
    resilite::Database<resilite::schema<items, logs>, resilite::archive<>, common, manual_durability>;
using ItemsV2Db = resilite::Database<resilite::schema<items_v2, logs, tags>, resilite::archive<>, common,
                                     manual_durability>;
using MigratedDb = resilite::Database<resilite::schema<items_v3, logs, tags>, resilite::migrations<add_rank>,
                                      resilite::archive<>, common, manual_durability>;
using PlainItemsDb = resilite::Database<resilite::schema<items, logs>, common, manual_durability>;
using BaseDb = resilite::Database<common, manual_durability>;
using BatchedDb =
    resilite::Database<resilite::schema<items, logs>, resilite::archive<resilite::flush_every_ms<1000>>,
                       common, manual_durability, resilite::manual_clock>;
using ItemsBackupDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>,
                                         resilite::backup<resilite::online_backup<>, resilite::on_demand>,
                                         common, manual_durability>;

template <class Db>
typename Db::options archive_options() {
    typename Db::options o;
    o.settings = Db::default_settings();
    return o;
}
inline ItemsDb::options items_options() {
    return archive_options<ItemsDb>();
}
inline ItemsV2Db::options items_options_v2() {
    return archive_options<ItemsV2Db>();
}
inline MigratedDb::options migrated_options() {
    return archive_options<MigratedDb>();
}
inline BatchedDb::options batched_options(const resilite::manual_clock& clock) {
    auto o = archive_options<BatchedDb>();
    o.clock = clock;
    return o;
}

inline std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline void write_all(const std::filesystem::path& p, std::string_view text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
}

// Every segment's text, oldest first.
inline std::string segments_text(const std::filesystem::path& dir) {
    std::string all;
    for (const auto& name : resilite::detail::archive::list_segments(dir))
        all += read_all(dir / name);
    return all;
}

inline std::size_t count_of(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + 1))
        ++n;
    return n;
}

inline std::pair<std::int64_t, std::string> table_hash(const std::filesystem::path& db,
                                                       const std::string& table,
                                                       const std::vector<std::string>& columns) {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    return resilite::detail::archive::content_hash(c, table, columns);
}

// The database's files as a crash would leave them while it is open and idle: the main file
// and the WAL with every committed frame (the shared-memory index is rebuilt at open).
inline void snapshot_database(const std::filesystem::path& db, const std::filesystem::path& to) {
    std::filesystem::create_directories(to);
    for (const char* suffix : {"", "-wal"}) {
        const std::filesystem::path from{db.string() + suffix};
        if (std::filesystem::exists(from)) {
            std::filesystem::copy_file(from, to / (db.filename().string() + suffix),
                                       std::filesystem::copy_options::overwrite_existing);
        }
    }
}

inline void restore_database(const std::filesystem::path& from, const std::filesystem::path& db) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(db.string() + suffix, ec);
    for (const char* suffix : {"", "-wal"}) {
        const auto saved = from / (db.filename().string() + suffix);
        if (std::filesystem::exists(saved))
            std::filesystem::copy_file(saved, std::filesystem::path{db.string() + suffix});
    }
}

}  // namespace test::archive
