// resilite demo: the main job in README.md. Opens a database with the default policies, writes
// and reads data, shows what the library did on the way, and how a failure is reported.
// It will grow into the self-healing demo as healing lands.
//
//   resilite-demo [--dir DIRECTORY]     (default: a new directory under the system temp dir)
#include <resilite/resilite.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {
struct logged_event {
    std::string line;
};

std::filesystem::path demo_directory(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::string{argv[i]} == "--dir") {
            std::filesystem::create_directories(argv[i + 1]);
            return argv[i + 1];
        }
    }
    std::string templ = (std::filesystem::temp_directory_path() / "resilite-demo-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory");
    return templ;
}
}  // namespace

int main(int argc, char** argv) try {
    const auto dir = demo_directory(argc, argv);
    const auto path = dir / "demo.db";
    std::filesystem::remove(path);
    fmt::print("resilite {}.{}.{} demo, SQLite {}\n", resilite::version.major, resilite::version.minor,
               resilite::version.patch, sqlite3_libversion());
    fmt::print("database: {}\n\n", path.string());

    // The default policies with one change: every event is printed, not only problems.
    using Db = resilite::Database<resilite::stderr_observer<resilite::outcome::ok>>;
    std::int64_t rows = 0;
    {
        Db db{path};
        fmt::print("1. opened: journal_mode={}, synchronous={} (2 = FULL)\n",
                   db.query_one<std::string>("PRAGMA journal_mode").value_or("?"),
                   db.query_one<int>("PRAGMA synchronous").value_or(-1));

        db.exec_script(
            "CREATE TABLE IF NOT EXISTS readings("
            " id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, value REAL NOT NULL, taken_at TEXT NOT NULL)");

        db.transaction([](auto& tx) {
            for (int i = 0; i < 1000; ++i) {
                tx.exec("INSERT INTO readings(sensor, value, taken_at) VALUES(?, ?, datetime('now'))",
                        fmt::format("sensor-{}", i % 4), 20.0 + (i % 50) * 0.1);
            }
        });
        fmt::print("2. wrote 1000 readings in one transaction (BEGIN IMMEDIATE ... COMMIT)\n");

        for (const auto& [sensor, n, avg] :
             db.query<std::string, int, double>("SELECT sensor, count(*), avg(value) FROM readings GROUP BY sensor")) {
            fmt::print("   {}: {} readings, average {:.2f}\n", sensor, n, avg);
        }

        try {
            db.transaction([](auto& tx) {
                tx.exec("INSERT INTO readings(sensor, value, taken_at) VALUES('sensor-9', 1.0, 'now')");
                tx.exec("INSERT INTO readings(sensor, value, taken_at) VALUES(NULL, 2.0, 'now')");
            });
        } catch (const resilite::error& e) {
            fmt::print("3. a transaction broke a NOT NULL rule and was rolled back whole\n");
            fmt::print("   what a user sees : {}\n", e.user_message());
            fmt::print("   what the log gets: {}\n", e.what());
        }
        rows = db.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(-1);
        fmt::print("4. rows now: {} (the half-done transaction left nothing behind)\n", rows);
        fmt::print("5. WAL before close: {} bytes\n", db.wal_bytes());
    }
    std::error_code ec;
    const auto wal = std::filesystem::file_size(dir / "demo.db-wal", ec);
    fmt::print("6. closed with a TRUNCATE checkpoint: WAL now {} bytes, database {} bytes\n", ec ? 0 : wal,
               std::filesystem::file_size(path));

    // Reopen: everything committed is there.
    Db again{path};
    const auto reopened = again.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(-1);
    fmt::print("7. reopened: {} rows, integrity_check = {}\n", reopened,
               again.query_one<std::string>("PRAGMA integrity_check").value_or("?"));
    if (reopened != rows || rows != 1000) {
        fmt::print("demo FAILED: expected 1000 rows\n");
        return 1;
    }
    fmt::print("\ndemo finished: all committed data present\n");
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "demo failed: {}\n", e.what());
    return 1;
}
