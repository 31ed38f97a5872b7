#pragma once
// The same work done three ways: the raw SQLite C API, SQLiteCpp, and resilite with its default
// policies. Shared by the wall-clock benchmark (bench_core) and the instruction counter
// (bench_instructions), so both measure exactly the same code.
#include <resilite/resilite.hpp>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace bench {

inline constexpr int table_rows = 100'000;

inline const char* const create_table =
    "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL)";

inline void check(int rc, sqlite3* db) {
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fmt::print(stderr, "sqlite: {}\n", sqlite3_errmsg(db));
        std::abort();
    }
}

inline void remove_database(const std::filesystem::path& p) {
    for (const char* suffix : {"", "-wal", "-shm", "-resilite", "-resilite-lock", "-resilite-gate"})
        std::filesystem::remove(p.string() + suffix);
}

// Fills `path` with table_rows rows for the point selects (built once with the raw API).
inline void build_select_database(const std::filesystem::path& path) {
    remove_database(path);
    sqlite3* db = nullptr;
    check(sqlite3_open(path.c_str(), &db), db);
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; BEGIN;", nullptr, nullptr,
                       nullptr),
          db);
    check(sqlite3_exec(db, create_table, nullptr, nullptr, nullptr), db);
    sqlite3_stmt* s = nullptr;
    check(sqlite3_prepare_v2(db, "INSERT INTO t VALUES(?, ?, ?)", -1, &s, nullptr), db);
    for (int i = 1; i <= table_rows; ++i) {
        const auto name = fmt::format("name-{:06}", i);
        sqlite3_bind_int(s, 1, i);
        sqlite3_bind_text(s, 2, name.c_str(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
        sqlite3_bind_double(s, 3, i * 0.5);
        check(sqlite3_step(s), db);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    check(sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", nullptr, nullptr, nullptr), db);
    sqlite3_close(db);
}

// A pseudo-random walk over the keys, the same for every contender.
inline int next_id(int& i) {
    return (i = i * 7919 % table_rows) + 1;
}

// `sync` is the synchronous level ("OFF" to measure only the library's own cost, "FULL").
struct raw {
    static constexpr const char* name = "raw";
    sqlite3* db = nullptr;
    sqlite3_stmt* select = nullptr;
    sqlite3_stmt* insert = nullptr;

    raw(const std::filesystem::path& path, const char* sync) {
        check(sqlite3_open(path.c_str(), &db), db);
        check(sqlite3_exec(db, fmt::format("PRAGMA journal_mode=WAL; PRAGMA synchronous={}", sync).c_str(),
                           nullptr, nullptr, nullptr),
              db);
        check(sqlite3_exec(db, create_table, nullptr, nullptr, nullptr), db);
        check(sqlite3_prepare_v2(db, "SELECT name FROM t WHERE id = ?", -1, &select, nullptr), db);
        check(sqlite3_prepare_v2(db, "INSERT INTO t(name, v) VALUES(?, ?)", -1, &insert, nullptr), db);
    }
    ~raw() {
        sqlite3_finalize(select);
        sqlite3_finalize(insert);
        sqlite3_close(db);
    }
    std::string point_select(int id) {
        sqlite3_bind_int64(select, 1, id);
        check(sqlite3_step(select), db);
        std::string out{reinterpret_cast<const char*>(sqlite3_column_text(select, 0)),
                        static_cast<std::size_t>(sqlite3_column_bytes(select, 0))};
        sqlite3_reset(select);
        return out;
    }
    void insert_row(const std::string& name, double v) {
        sqlite3_bind_text(insert, 1, name.c_str(), static_cast<int>(name.size()), SQLITE_STATIC);
        sqlite3_bind_double(insert, 2, v);
        check(sqlite3_step(insert), db);
        sqlite3_reset(insert);
    }
    void insert_batch(int rows) {
        check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db);
        for (int i = 0; i < rows; ++i)
            insert_row("row", i * 0.25);
        check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db);
    }
    void commit_one(int i) {
        check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db);
        insert_row("commit", i);
        check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db);
    }
};

struct sqlitecpp {
    static constexpr const char* name = "sqlitecpp";
    SQLite::Database db;
    SQLite::Statement select;
    SQLite::Statement insert;

    static SQLite::Database open(const std::filesystem::path& path, const char* sync) {
        SQLite::Database d{path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
        d.exec("PRAGMA journal_mode=WAL");
        d.exec(fmt::format("PRAGMA synchronous={}", sync));
        d.exec(create_table);
        return d;
    }
    sqlitecpp(const std::filesystem::path& path, const char* sync)
        : db(open(path, sync)),
          select(db, "SELECT name FROM t WHERE id = ?"),
          insert(db, "INSERT INTO t(name, v) VALUES(?, ?)") {}

    std::string point_select(int id) {
        select.bind(1, static_cast<std::int64_t>(id));
        select.executeStep();
        std::string out = select.getColumn(0).getString();
        select.reset();
        return out;
    }
    void insert_row(const std::string& name, double v) {
        insert.bind(1, name);
        insert.bind(2, v);
        insert.exec();
        insert.reset();
    }
    void insert_batch(int rows) {
        SQLite::Transaction tx{db, SQLite::TransactionBehavior::IMMEDIATE};
        for (int i = 0; i < rows; ++i)
            insert_row("row", i * 0.25);
        tx.commit();
    }
    void commit_one(int i) {
        SQLite::Transaction tx{db, SQLite::TransactionBehavior::IMMEDIATE};
        insert_row("commit", i);
        tx.commit();
    }
};

template <class... Policies>
struct resilite_with {
    static constexpr const char* name = sizeof...(Policies) == 0 ? "resilite" : "resilite-healing";
    resilite::Database<Policies...> db;

    resilite_with(const std::filesystem::path& path, const char* sync) : db(path) {
        if (std::string{sync} == "OFF") {
            // OFF is outside what resilite's policies allow; set it underneath so that only the
            // library's own cost is measured, as for the other two.
            db.with_connection([](auto& c) { c.exec_script("PRAGMA synchronous=OFF"); });
        }
        db.exec_script(create_table);
    }
    std::string point_select(int id) {
        return db.template query_one<std::string>("SELECT name FROM t WHERE id = ?", id).value();
    }
    void insert_batch(int rows) {
        db.transaction([rows](auto& tx) {
            for (int i = 0; i < rows; ++i)
                tx.exec("INSERT INTO t(name, v) VALUES(?, ?)", std::string{"row"}, i * 0.25);
        });
    }
    void commit_one(int i) {
        db.transaction([i](auto& tx) {
            tx.exec("INSERT INTO t(name, v) VALUES(?, ?)", std::string{"commit"}, double(i));
        });
    }
};

using resilite_default = resilite_with<>;
// With healing<>: every operation also passes the gate (two flock calls) and stats the file.
using resilite_healing = resilite_with<resilite::healing<>>;

}  // namespace bench
