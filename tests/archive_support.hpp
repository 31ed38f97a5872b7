#pragma once
// Shared by the archive tests: the declared tables, Database types with and without archiving,
// and helpers to read segments, compare tables and imitate a crash.

#include "support.hpp"

#include <resilite/archive/detail/archive_replay.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>
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

// A child process runs `body` in a transaction of a Db opened with `o` and dies after its
// record is synced into the archive, before SQLite commits it (a crash between the two).
template <class Db, class F>
void killed_before_commit(const std::filesystem::path& db_path, typename Db::options o, F body) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        o.inject_failure = [](std::string_view op, int) -> int {
            if (op == "commit") ::_exit(0);
            return SQLITE_OK;
        };
        try {
            Db db{db_path, o};
            db.transaction(body);
        } catch (...) {
        }
        ::_exit(1);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
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

// Files in an archive directory whose name contains `marker` (".torn-", ".cancelled-").
inline std::vector<std::string> set_aside_files(const std::filesystem::path& dir, std::string_view marker) {
    std::vector<std::string> out;
    std::error_code ec;  // no directory: none
    for (std::filesystem::directory_iterator it{dir, ec}, end; !ec && it != end; it.increment(ec))
        if (it->path().filename().string().find(marker) != std::string::npos)
            out.push_back(it->path().string());
    return out;
}

// ---- Crash trials (SIGKILL, power loss) ---------------------------------------------------------
// Transaction k writes the items 4k.. (and a log line), so what a database holds of it can be
// told from its rows. One in five fails on purpose (a duplicate key in the middle of a multi-row
// transaction: rolled back), one in five is a single statement outside a transaction (its own
// BEGIN ... COMMIT inside the library), the rest are multi-row transactions that also update an
// older row.
enum class trial_kind { rows, single, fails };

inline trial_kind trial_kind_of(std::int64_t k) {
    return k % 5 == 3 ? trial_kind::fails : k % 5 == 1 ? trial_kind::single : trial_kind::rows;
}

// Runs transaction k as `kind`. True when it committed; false when it failed on purpose (the
// constraint violation, rolled back). Any other failure propagates.
template <class Db>
bool trial_transaction(Db& db, std::int64_t k, trial_kind kind) {
    static constexpr const char* insert =
        "INSERT INTO items(id, name, score, token) VALUES(?, ?, ?, 'secret')";
    switch (kind) {
        case trial_kind::single:
            db.exec(insert, 4 * k, fmt::format("one-{}", k), 1.0);
            return true;
        case trial_kind::rows:
            db.transaction([&](auto& tx) {
                for (std::int64_t j = 0; j < 3; ++j)
                    tx.exec(insert, 4 * k + j, fmt::format("rows-{}-{}", k, j),
                            0.25 * static_cast<double>(j));
                tx.exec("UPDATE items SET score = score + 1 WHERE id = ?", 4 * (k - 1));
                tx.exec("INSERT INTO logs(msg) VALUES(?)", fmt::format("tx {}", k));
            });
            return true;
        case trial_kind::fails:
            try {
                db.transaction([&](auto& tx) {
                    tx.exec(insert, 4 * k, fmt::format("fail-{}-0", k), 0.0);
                    tx.exec("INSERT INTO logs(msg) VALUES(?)", fmt::format("fail-log-{}", k));
                    tx.exec(insert, 4 * k + 1, fmt::format("fail-{}-1", k), 0.0);
                    tx.exec(insert, 4 * k, fmt::format("fail-{}-again", k), 0.0);  // the same key again
                });
            } catch (const resilite::error& e) {
                if (e.klass() != resilite::error_class::constraint) throw;
                return false;
            }
            throw std::logic_error("a duplicate key was accepted");
    }
    throw std::logic_error("unknown trial kind");
}

// What the trial's caller saw.
struct trial_outcomes {
    std::set<std::int64_t> acknowledged;     // committed: must be present
    std::set<std::int64_t> failed;           // failed on purpose: must be absent
    std::set<std::int64_t> never_committed;  // stopped before its COMMIT ran: must be absent
};

// The first way the database at `db` breaks the trial's rules (empty: none): it is sound, each
// transaction is there whole or not at all, every acknowledged one is there, no failed or never
// committed one is.
inline std::string trial_violation(const std::filesystem::path& db, std::string_view what,
                                   const trial_outcomes& o) {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    if (const auto qc = c.query_one<std::string>("PRAGMA quick_check"); qc != "ok")
        return fmt::format("{}: quick_check says {}", what, qc.value_or("nothing"));
    std::map<std::int64_t, int> rows;  // per transaction
    for (const auto& [id, name] : c.query_all<std::int64_t, std::string>("SELECT id, name FROM items")) {
        if (name.starts_with("fail-"))
            return fmt::format("{}: holds item {} ('{}') of a failed transaction", what, id, name);
        ++rows[id / 4];
    }
    std::set<std::int64_t> logged;
    for (const auto& msg : c.query_all<std::string>("SELECT msg FROM logs")) {
        if (!msg.starts_with("tx "))
            return fmt::format("{}: holds log '{}' of a failed transaction", what, msg);
        logged.insert(std::stoll(msg.substr(3)));
    }
    for (const auto& [k, n] : rows) {
        const bool multi = trial_kind_of(k) == trial_kind::rows;
        if (n != (multi ? 3 : 1) || multi != (logged.count(k) == 1))
            return fmt::format("{}: transaction {} is there in part ({} rows, logged: {})", what, k, n,
                               logged.count(k));
    }
    for (const auto k : logged)
        if (rows.count(k) == 0)
            return fmt::format("{}: transaction {} is there in part (its log only)", what, k);
    for (const auto k : o.acknowledged)
        if (rows.count(k) == 0) return fmt::format("{}: acknowledged transaction {} is missing", what, k);
    for (const auto k : o.failed)
        if (rows.count(k) != 0) return fmt::format("{}: holds transaction {}, which failed", what, k);
    for (const auto k : o.never_committed)
        if (rows.count(k) != 0)
            return fmt::format("{}: holds transaction {}, whose COMMIT never ran", what, k);
    return {};
}

// After a crash and an open that resolved it: the database keeps the rules above, so does a
// rebuild from `archive` alone, and the two are equal table by table. No file of the archive
// directory (segments, set-aside tails) holds anything of a transaction that failed on purpose.
inline std::string archive_trial_violation(const std::filesystem::path& db,
                                           const std::filesystem::path& archive, const trial_outcomes& o) {
    if (auto v = trial_violation(db, "database", o); !v.empty()) return v;
    test::temp_dir scratch;
    const auto rebuilt = scratch / "rebuilt.db";
    static_cast<void>(resilite::rebuild(archive, rebuilt));
    if (auto v = trial_violation(rebuilt, "rebuild from the archive", o); !v.empty()) return v;
    const std::vector<std::string> item_columns{"id", "name", "score"};  // token is secret: never archived
    if (table_hash(rebuilt, "items", item_columns) != table_hash(db, "items", item_columns))
        return "the rebuild's items differ from the database's";
    if (table_hash(rebuilt, "logs", {"msg"}) != table_hash(db, "logs", {"msg"}))
        return "the rebuild's logs differ from the database's";
    for (const auto& e : std::filesystem::directory_iterator(archive))
        if (read_all(e.path()).find("fail-") != std::string::npos)
            return fmt::format("{} holds a change of a transaction that failed",
                               e.path().filename().string());
    return {};
}

}  // namespace test::archive
