// resilite demo: the main job in README.md. Opens a database with a declared table and a text
// archive, writes and reads data, shows what the library did on the way and how a failure is
// reported; then damages the database file, shows that it is refused rather than written over,
// and rebuilds it from the archive alone. (Automatic healing comes with the healing issue.)
//
//   resilite-demo [--dir DIRECTORY]     (default: a new directory under the system temp dir)
#include <resilite/resilite.hpp>
#include <resilite/testing/corruption.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace {
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

bool hide_statement_events = false;  // set while the demo writes in bulk

// Every event the library emits, printed in line with the narrative.
void print_event(const resilite::event& e) {
    if (hide_statement_events && e.name == "exec") return;
    fmt::print("     [event] {:<12} {:<7} rows={:<5} {:>8.3f} ms{}{}\n", e.name, to_string(e.result), e.rows,
               std::chrono::duration<double, std::milli>(e.duration).count(), e.detail.empty() ? "" : "  ",
               e.result == resilite::outcome::failed ? std::string{"(detail below)"} : std::string{e.detail});
}

struct Reading {
    BOOST_HANA_DEFINE_STRUCT(Reading, (std::int64_t, id), (std::string, sensor), (double, value),
                             (std::string, taken_at));
};
using readings = resilite::table<"readings", Reading, resilite::primary_key<"id">>;
// A declared schema, every committed change archived as SQL text; all else the defaults.
using Db = resilite::Database<resilite::schema<readings>, resilite::archive<>, resilite::callback_observer>;

Db::options demo_options() {
    Db::options o;
    o.observer.callback = print_event;
    return o;
}
}  // namespace

int main(int argc, char** argv) try {
    const auto dir = demo_directory(argc, argv);
    const auto path = dir / "demo.db";
    for (const char* suffix : {"", "-wal", "-shm", "-resilite", ".damaged"})
        std::filesystem::remove(path.string() + suffix);
    std::filesystem::remove_all(path.string() + ".archive");
    fmt::print("resilite {}.{}.{} demo, SQLite {}\n", resilite::version.major, resilite::version.minor,
               resilite::version.patch, sqlite3_libversion());
    fmt::print("database: {}\n\n", path.string());

    std::int64_t rows = 0;
    {
        fmt::print("1. open: the declared table is created, archiving starts\n");
        Db db{path, demo_options()};
        fmt::print("   journal_mode={}, synchronous={} (2 = FULL), read back after open\n",
                   db.query_one<std::string>("PRAGMA journal_mode").value_or("?"),
                   db.query_one<int>("PRAGMA synchronous").value_or(-1));

        fmt::print("2. write 1000 readings in one transaction (BEGIN IMMEDIATE ... COMMIT)\n");
        hide_statement_events = true;
        db.transaction([](auto& tx) {
            for (int i = 0; i < 1000; ++i) {
                tx.exec("INSERT INTO readings(sensor, value, taken_at) VALUES(?, ?, datetime('now'))",
                        fmt::format("sensor-{}", i % 4), 20.0 + (i % 50) * 0.1);
            }
        });
        hide_statement_events = false;
        fmt::print(
            "   (one event for the transaction, one for each statement inside it: 1001 in all;\n"
            "    only the transaction's is shown here). The commit also appended the 1000 rows as\n"
            "   one record to {} and synced it.\n",
            (db.archive_directory() / "YYYY_MM.sql").string());

        fmt::print("3. read them back, typed\n");
        for (const auto& [sensor, n, avg] : db.query<std::string, int, double>(
                 "SELECT sensor, count(*), avg(value) FROM readings GROUP BY sensor")) {
            fmt::print("   {}: {} readings, average {:.2f}\n", sensor, n, avg);
        }

        fmt::print("4. a transaction that breaks a NOT NULL rule half-way\n");
        try {
            db.transaction([](auto& tx) {
                tx.exec("INSERT INTO readings(sensor, value, taken_at) VALUES('sensor-9', 1.0, 'now')");
                tx.exec("INSERT INTO readings(sensor, value, taken_at) VALUES(NULL, 2.0, 'now')");
            });
        } catch (const resilite::error& e) {
            fmt::print("   rolled back whole.\n");
            fmt::print("   what a user sees : {}\n", e.user_message());
            fmt::print("   what the log gets: {}\n", e.what());
        }
        rows = db.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(-1);
        fmt::print("   rows now: {} (the half-done transaction left nothing behind)\n", rows);
        fmt::print("5. close (WAL is {} bytes before)\n", db.wal_bytes());
    }
    std::error_code ec;
    const auto wal = std::filesystem::file_size(dir / "demo.db-wal", ec);
    fmt::print("   TRUNCATE checkpoint at close: WAL now {} bytes, database {} bytes\n", ec ? 0 : wal,
               std::filesystem::file_size(path));

    std::filesystem::path archive_dir;
    {
        fmt::print("6. reopen\n");
        Db again{path, demo_options()};
        const auto reopened = again.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(-1);
        const auto check = again.query_one<std::string>("PRAGMA integrity_check").value_or("?");
        fmt::print("   {} rows, integrity_check = {}\n", reopened, check);
        if (reopened != rows || rows != 1000 || check != "ok") {
            fmt::print("\ndemo FAILED: expected 1000 rows and a clean integrity check\n");
            return 1;
        }
        const auto report = again.check_archive();
        fmt::print("7. validate the archive and rebuild it on trial: {}\n",
                   report.reproduces_live == true ? "it reproduces the database table by table" : "MISMATCH");
        archive_dir = again.archive_directory();
    }

    fmt::print("8. damage the database file (its header overwritten, as a stray write would)\n");
    std::mt19937_64 rng{2026};
    resilite::testing::overwrite_header(path, rng);
    try {
        Db refused{path, demo_options()};
        fmt::print("\ndemo FAILED: a damaged database was opened\n");
        return 1;
    } catch (const resilite::error& e) {
        fmt::print("   open refuses it, nothing written over it.\n");
        fmt::print("   what a user sees : {}\n", e.user_message());
    }

    fmt::print("9. keep the damaged file aside and rebuild the database from the archive alone\n");
    std::filesystem::rename(path, path.string() + ".damaged");
    for (const char* suffix : {"-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix);
    const auto rebuilt = resilite::rebuild(archive_dir, path);
    fmt::print(
        "   {} records replayed (checksums verified, statements authorized), integrity and\n"
        "   foreign keys checked, renamed into place\n",
        rebuilt.applied_records);
    Db healed{path, demo_options()};
    const auto after = healed.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(-1);
    const auto check = healed.query_one<std::string>("PRAGMA integrity_check").value_or("?");
    fmt::print("   {} rows, integrity_check = {}\n", after, check);
    if (after != rows || check != "ok") {
        fmt::print("\ndemo FAILED: the rebuilt database lacks committed rows\n");
        return 1;
    }
    fmt::print("\ndemo finished: the database was damaged and rebuilt, all committed data present\n");
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "demo failed: {}\n", e.what());
    return 1;
}
