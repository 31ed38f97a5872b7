// resilite demo: the main job in README.md. Opens a database with a declared table and a text
// archive, writes and reads data, shows what the library did on the way and how a failure is
// reported; then damages the database file and the next open heals it by itself (quarantine,
// the backup plus the archive records after it, verified, swapped in), and damages a page
// under the open database: the call that meets it fails with a clear error, and the background
// thread heals it. Last, degradation modes: a writer keeps writing through a heal with
// queue_writes (what arrives during the heal is queued, then replayed once, in order), while a
// second process gets `degraded` at once instead of waiting out its retry deadline.
//
//   resilite-demo [--dir DIRECTORY]     (default: a new directory under the system temp dir)
#include <resilite/resilite.hpp>
#include <resilite/testing/corruption.hpp>

#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

// The operator's command (docs/cli.md), when the demo is told where it is (--cli PATH).
std::string cli_path(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string{argv[i]} == "--cli") return argv[i + 1];
    return {};
}

// Runs `resilite <args>` as an operator would, its output in line with the demo's; its exit code.
int run_cli(const std::string& cli, const std::vector<std::string>& args) {
    std::string shown = "resilite";
    for (const auto& a : args)
        shown += " " + a;
    fmt::print("   $ {}\n", shown);
    std::fflush(stdout);
    std::vector<char*> argv{const_cast<char*>(cli.c_str())};  // (built before fork: nothing allocates after it)
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
        ::execv(cli.c_str(), argv.data());
        std::_Exit(127);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    fmt::print("   (exit code {})\n", code);
    return code;
}

bool hide_statement_events = false;  // set while the demo writes in bulk

// Every event the library emits, printed in line with the narrative.
void print_event(const resilite::event& e) {
    if (hide_statement_events && (e.name == "exec" || e.name == "insert" || e.name == "queued" ||
                                  e.name == "queue_replay" || e.name == "transaction"))
        return;
    if (e.name == "heal_finished" || e.name == "heal_started") {  // the report is printed whole below
        fmt::print("     [event] {:<12} {}\n", e.name, to_string(e.result));
        return;
    }
    fmt::print("     [event] {:<12} {:<7} rows={:<5} {:>8.3f} ms{}{}\n", e.name, to_string(e.result), e.rows,
               std::chrono::duration<double, std::milli>(e.duration).count(), e.detail.empty() ? "" : "  ",
               e.result == resilite::outcome::failed ? std::string{"(detail below)"} : std::string{e.detail});
}

struct Reading {
    BOOST_HANA_DEFINE_STRUCT(Reading, (std::int64_t, id), (std::string, sensor), (double, value),
                             (std::string, taken_at));
};
using readings = resilite::table<"readings", Reading, resilite::primary_key<"id">>;
// A declared schema, every committed change archived as SQL text, backups when asked for,
// healing; all else the defaults.
// snippet-begin: healing
using Db = resilite::Database<resilite::schema<readings>, resilite::archive<>,
                              resilite::backup<resilite::online_backup<>, resilite::on_demand>, resilite::healing<>,
                              resilite::callback_observer>;
// snippet-end: healing

bool healed_ok(Db& db, std::int64_t expected) {
    const auto n = db.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(-1);
    const auto check = db.query_one<std::string>("PRAGMA integrity_check").value_or("?");
    fmt::print("   {} rows (expected {}), integrity_check = {}\n", n, expected, check);
    return n == expected && check == "ok";
}

Db::options demo_options() {
    Db::options o;
    o.observer.callback = print_event;
    return o;
}

// The same database, with writes queued while it is unavailable; and one that fails fast.
using QueueDb = resilite::Database<resilite::schema<readings>, resilite::archive<>,
                                   resilite::backup<resilite::online_backup<>, resilite::on_demand>,
                                   resilite::healing<>, resilite::degradation<resilite::queue_writes<100000>>,
                                   resilite::callback_observer>;
using StrictDb = resilite::Database<resilite::schema<readings>, resilite::archive<>,
                                    resilite::backup<resilite::online_backup<>, resilite::on_demand>,
                                    resilite::healing<>, resilite::degradation<resilite::fail_fast>,
                                    resilite::callback_observer>;

// The second process of step 10: opens the database, then, when told, tries one write and
// reports how it went and how long it took.
[[noreturn]] void second_process(const std::filesystem::path& path, int from_parent, int to_parent) {
    try {
        char c = 0;
        if (::read(from_parent, &c, 1) != 1) std::_Exit(2);
        StrictDb::options o;
        o.observer.callback = [](const resilite::event&) {};
        StrictDb db{path, std::move(o)};
        if (::write(to_parent, "r", 1) != 1 || ::read(from_parent, &c, 1) != 1) std::_Exit(2);
        const auto start = std::chrono::steady_clock::now();
        std::string outcome;
        try {
            db.exec("INSERT INTO readings(sensor, value, taken_at) VALUES(?, ?, datetime('now'))", "second-process", 1.0);
            outcome = "committed (unexpected during a heal)";
        } catch (const resilite::error& e) {
            outcome = fmt::format("class {}: {}", name(e.klass()), e.user_message());
        }
        const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        const auto line = fmt::format("{:.2f}|{}", ms, outcome);
        if (::write(to_parent, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(2);
        ::close(to_parent);
        std::_Exit(0);
    } catch (...) {
        std::_Exit(3);
    }
}
}  // namespace

int main(int argc, char** argv) try {
    const auto dir = demo_directory(argc, argv);
    const auto path = dir / "demo.db";
    // A fresh start: everything an earlier run left beside demo.db (the archive, backups, the
    // high-water mark, the queue, the audit fallback...), so the demo can run again in place.
    std::vector<std::filesystem::path> earlier;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
        if (entry.path().filename().string().starts_with("demo.db")) earlier.push_back(entry.path());
    for (const auto& p : earlier) std::filesystem::remove_all(p);
    std::filesystem::remove_all(dir / "quarantine");
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

    {
        fmt::print("6. reopen\n");
        Db again{path, demo_options()};
        if (!healed_ok(again, rows) || rows != 1000) {
            fmt::print("\ndemo FAILED: expected 1000 rows and a clean integrity check\n");
            return 1;
        }
        const auto report = again.check_archive();
        fmt::print("7. validate the archive and rebuild it on trial: {}\n",
                   report.reproduces_live == true ? "it reproduces the database table by table" : "MISMATCH");
        const auto backup = again.backup_now();
        fmt::print("   a backup: {} (it holds the archive up to record {})\n", backup.path.filename().string(),
                   backup.archive_seq.value_or(0));
        hide_statement_events = true;
        for (int i = 0; i < 200; ++i)
            again.exec("INSERT INTO readings(sensor, value, taken_at) VALUES('late', ?, datetime('now'))", i * 1.0);
        hide_statement_events = false;
        rows += 200;
        fmt::print("   200 more readings after the backup, one commit each: only the archive holds them\n");
    }

    fmt::print("8. damage the database file (its header overwritten, as a stray write would), then open\n");
    std::mt19937_64 rng{2026};
    resilite::testing::overwrite_header(path, rng);
    {
        Db db{path, demo_options()};
        fmt::print("   the open healed it by itself:\n");
        if (const auto heal = db.last_heal()) fmt::print("{}", heal->to_text());
        if (!healed_ok(db, rows)) {
            fmt::print("\ndemo FAILED: the healed database lacks committed rows\n");
            return 1;
        }

        fmt::print("9. damage a page while the database is open (the root page of readings zeroed)\n");
        static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
        db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });
        std::uint32_t root = 0;
        {
            resilite::sqlite::connection reader{path, SQLITE_OPEN_READONLY};
            root = static_cast<std::uint32_t>(
                reader.query_one<std::int64_t>("SELECT rootpage FROM sqlite_master WHERE name = 'readings'").value_or(0));
        }
        resilite::testing::zero_page(path, root);
        try {
            static_cast<void>(db.query_one<double>("SELECT sum(value) FROM readings"));
            fmt::print("\ndemo FAILED: a read of a damaged page succeeded\n");
            return 1;
        } catch (const resilite::error& e) {
            fmt::print("   the call that met it failed, never a wrong answer: {}\n", e.user_message());
        }
        fmt::print("   the background thread heals at once; meanwhile calls fail at once with class degraded\n");
        for (int i = 0; i < 3000 && !db.health().available; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds{10});
        if (!healed_ok(db, rows)) {
            fmt::print("\ndemo FAILED: the healed database lacks committed rows\n");
            return 1;
        }
        if (const auto heal = db.last_heal()) fmt::print("{}", heal->to_text());
    }
    {
        fmt::print("10. a heal while the application keeps writing (queue_writes), and a second process\n");
        int to_child[2], from_child[2];
        if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) throw std::runtime_error("pipe");
        const pid_t child = ::fork();  // (before this process starts any thread of its own)
        if (child < 0) throw std::runtime_error("fork");
        if (child == 0) second_process(path, to_child[0], from_child[1]);
        ::close(to_child[0]);
        ::close(from_child[1]);

        std::mutex m;
        std::condition_variable cv;
        std::atomic<std::int64_t> committed{0}, queued{0};
        bool second_done = false;
        std::string second_said;
        QueueDb::options o;
        o.observer.callback = print_event;
        // The heal is held at its verify step until the second process has tried and the writer
        // has queued 25 writes: the moment is counted, not left to chance.
        o.inject_failure = [&](std::string_view op, int) {
            if (op != "heal:verify") return SQLITE_OK;
            if (::write(to_child[1], "g", 1) != 1) return SQLITE_OK;
            char buf[512];
            const auto n = ::read(from_child[0], buf, sizeof buf);
            std::unique_lock lock(m);
            second_said = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string{"no answer"};
            second_done = true;
            cv.notify_all();
            cv.wait_for(lock, std::chrono::seconds{30}, [&] { return queued.load() >= 25; });
            return SQLITE_OK;
        };
        QueueDb db{path, std::move(o)};
        if (::write(to_child[1], "o", 1) != 1) throw std::runtime_error("pipe");
        char c = 0;
        if (::read(from_child[0], &c, 1) != 1) throw std::runtime_error("the second process did not open");
        const auto before = db.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(0);
        hide_statement_events = true;
        std::atomic<bool> stop{false};
        std::thread writer([&] {  // the application: one reading after another, never waiting
            for (int i = 0; !stop; ++i) {
                const resilite::write_result r = db.exec(
                    "INSERT INTO readings(sensor, value, taken_at) VALUES(?, ?, datetime('now'))", "writer", i * 0.5);
                (r.queued() ? queued : committed) += 1;  // queued: durable, replayed when the heal ends
                cv.notify_all();
                if (!second_done && queued == 0) std::this_thread::yield();
                if (second_done && queued >= 25 && committed >= 50 && db.health().available) stop = true;
            }
        });
        static_cast<void>(db.heal());
        writer.join();
        hide_statement_events = false;
        int status = 0;
        ::waitpid(child, &status, 0);
        const auto sep = second_said.find('|');
        fmt::print("   the second process (fail_fast) tried to write during the heal: after {} ms, {}\n",
                   sep == std::string::npos ? "?" : second_said.substr(0, sep),
                   sep == std::string::npos ? second_said : second_said.substr(sep + 1));
        const auto after = db.query_one<std::int64_t>("SELECT count(*) FROM readings").value_or(0);
        fmt::print("   the writer: {} writes committed, {} queued during the heal and replayed after it\n",
                   committed.load(), queued.load());
        fmt::print("   rows: {} before + {} written = {} expected, {} in the database; queue left: {}\n", before,
                   committed + queued, before + committed + queued, after, db.health().queue_depth);
        if (after != before + committed + queued || queued == 0 || second_said.find("class degraded") == std::string::npos) {
            fmt::print("\ndemo FAILED: a queued write was lost or applied twice, or the second process waited\n");
            return 1;
        }
    }
    if (const auto cli = cli_path(argc, argv); !cli.empty()) {
        fmt::print("\n11. the operator's view, with the resilite command (no C++): a check, what a heal would do "
                   "now, and the archive compared with the live database\n");
        const auto archive = path.string() + ".archive";
        const int check = run_cli(cli, {"check", path.string()});
        const int plan = run_cli(cli, {"heal", path.string(), "--dry-run"});
        const int report = run_cli(cli, {"archive", "report", archive, "--db", path.string()});
        if (check != 0 || plan != 0 || report != 0) {
            fmt::print("\ndemo FAILED: the command found a problem in the healed database or its archive\n");
            return 1;
        }
    } else {
        fmt::print("\n11. (the resilite command: run the demo with --cli PATH to see it check the database)\n");
    }
    fmt::print("\ndemo finished: the database was damaged twice and healed by itself, all committed data present;\n"
               "writes during a heal were queued and applied once; the damaged files are kept in {}\n",
               (dir / "quarantine").string());
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "demo failed: {}\n", e.what());
    return 1;
}
