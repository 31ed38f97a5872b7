// Backups: schedule and retention (P12), consistency under writes, refusal of a damaged source,
// a kill during a backup, the sink command, restore.
#include "support.hpp"

#include <resilite/testing/corruption.hpp>
#include <resilite/testing/kill_harness.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <future>
#include <csignal>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace backup_backups_tests {

using namespace std::chrono_literals;

namespace {
template <class Backup>
using backed_db =
    resilite::Database<Backup, resilite::callback_observer, resilite::manual_clock, test::manual_durability>;

std::vector<std::filesystem::path> backups_in(const std::filesystem::path& db, std::filesystem::path dir = {}) {
    if (dir.empty()) dir = db.string() + ".backups";
    std::vector<std::filesystem::path> out;
    for (const auto& b : resilite::detail::list_backups(db, dir))
        out.push_back(b.path);
    return out;
}

std::vector<std::int64_t> rows_of(const std::filesystem::path& file) {
    resilite::sqlite::connection c{file, SQLITE_OPEN_READONLY};
    return c.query_all<std::int64_t>("SELECT n FROM t ORDER BY n");
}
}  // namespace

TEST_CASE("P12 automatic backup creation", "[backup][property][P12]") {
    test::temp_dir dir;
    int case_number = 0;
    rc::prop(
        "backups follow the schedule, are consistent snapshots that pass their check, retention keeps "
        "exactly what it promises",
        [&] {
            using Db = backed_db<resilite::backup<resilite::online_backup<7>, resilite::every_minutes<10>,
                                                  resilite::keep_last<24>>>;
            const int keep = *rc::gen::inRange(1, 5);
            const bool generations = *rc::gen::arbitrary<bool>();
            const int hourly = *rc::gen::inRange(0, 3), daily = *rc::gen::inRange(0, 3),
                      weekly = *rc::gen::inRange(1, 3);
            test::event_log log;
            resilite::manual_clock clock;
            Db::options o;
            o.observer = log.observer();
            o.clock = clock;
            o.settings = Db::default_settings();
            o.settings->backup.keep_last = keep;
            if (generations) {
                o.settings->backup.keep_hourly = hourly;
                o.settings->backup.keep_daily = daily;
                o.settings->backup.keep_weekly = weekly;
            }
            const auto path = dir / fmt::format("p12-{}.db", ++case_number);
            Db db{path, o};
            db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad TEXT)");
            std::int64_t next = 1;
            auto since_last = 0min;  // clock time since open or the last backup
            std::vector<std::pair<std::chrono::system_clock::time_point, std::vector<std::int64_t>>> taken;
            const int steps = *rc::gen::inRange(1, 25);
            for (int step = 0; step < steps; ++step) {
                const int commits = *rc::gen::inRange(0, 4);
                for (int c = 0; c < commits; ++c) {
                    db.exec("INSERT INTO t VALUES(?, ?)", next++, std::string(300, 'x'));
                }
                const auto advance = std::chrono::minutes{*rc::gen::inRange(0, 6 * 60)};
                clock.advance(advance);
                since_last += advance;
                const auto count_before = log.count("backup");
                static_cast<void>(db.maintain());
                const bool due = since_last >= 10min;  // the schedule: every 10 minutes
                RC_ASSERT(log.count("backup") == count_before + (due ? 1u : 0u));
                if (due) {
                    since_last = 0min;
                    std::vector<std::int64_t> now_rows;
                    for (std::int64_t n = 1; n < next; ++n)
                        now_rows.push_back(n);
                    taken.emplace_back(clock.utc_now(), now_rows);
                }
            }
            // Each backup equals the database at the moment it was taken and passes its check.
            const auto files = backups_in(path);
            const auto all =
                resilite::detail::list_backups(path, std::filesystem::path{path.string() + ".backups"});
            for (const auto& b : all) {
                RC_ASSERT(resilite::check_health(b.path, resilite::check_level::full).result ==
                          resilite::health_report::finding::ok);
                const auto it = std::find_if(taken.begin(), taken.end(),
                                             [&](const auto& t) { return t.first == b.taken; });
                RC_ASSERT(it != taken.end());
                RC_ASSERT(rows_of(b.path) == it->second);
            }
            // Retention: computed here independently of the library.
            std::set<std::chrono::system_clock::time_point> expected;
            if (!taken.empty()) expected.insert(taken.back().first);
            if (!generations) {
                for (std::size_t i = taken.size() > static_cast<std::size_t>(keep) ? taken.size() - keep : 0;
                     i < taken.size(); ++i) {
                    expected.insert(taken[i].first);
                }
            } else {
                for (auto [width, count] :
                     {std::pair{1h, hourly}, std::pair{24h, daily}, std::pair{168h, weekly}}) {
                    std::map<std::int64_t, std::chrono::system_clock::time_point> newest;
                    for (const auto& t : taken)
                        newest[t.first.time_since_epoch() / width] = t.first;
                    int n = 0;
                    for (auto it = newest.rbegin(); it != newest.rend() && n < count; ++it, ++n) {
                        expected.insert(it->second);
                    }
                }
            }
            std::set<std::chrono::system_clock::time_point> kept;
            for (const auto& b : all)
                kept.insert(b.taken);
            RC_ASSERT(kept == expected);
        });
}

TEST_CASE("backup-under-writes: a backup taken while a writer commits holds exactly rows 1..S",
          "[backup][writes]") {
    test::temp_dir dir;
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<4, 1>, resilite::on_demand, resilite::keep_last<10>>,
        resilite::null_observer, test::manual_durability>;
    Db db{dir / "w.db"};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad TEXT)");
    for (int n = 1; n <= 2000; ++n) {
        if (n == 1) db.exec("BEGIN");
        db.exec("INSERT INTO t VALUES(?, ?)", n, std::string(200, 'p'));
        if (n == 2000) db.exec("COMMIT");
    }
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> committed{2000};
    std::thread writer([&] {
        for (std::int64_t n = 2001; !stop; ++n) {
            db.exec("INSERT INTO t VALUES(?, ?)", n, std::string(200, 'q'));
            committed = n;
        }
    });
    std::vector<resilite::backup_result> results;
    try {
        for (int i = 0; i < 3; ++i)
            results.push_back(db.backup_now());
    } catch (...) {
        stop = true;  // never leave the writer running (or joinable) on the way out
        writer.join();
        throw;
    }
    stop = true;
    writer.join();
    for (const auto& r : results) {
        CHECK(resilite::check_health(r.path, resilite::check_level::full).ok());
        const auto rows = rows_of(r.path);
        REQUIRE_FALSE(rows.empty());
        const auto s = rows.back();
        CHECK(static_cast<std::int64_t>(rows.size()) == s);  // 1..S, no gaps
        CHECK(rows.front() == 1);
        CHECK(s >= 2000);
        CHECK(s <= committed);
    }
}

TEST_CASE("backup progress: options.on_progress is told the pages copied, from 0 to the database's page count",
          "[backup]") {
    test::temp_dir dir;
    using Db = backed_db<resilite::backup<resilite::online_backup<7>, resilite::on_demand>>;
    std::vector<resilite::progress> calls;
    std::vector<std::string> steps;
    Db::options o;
    o.on_progress = [&](const resilite::progress& p) {
        calls.push_back(p);
        steps.emplace_back(p.step);
    };
    Db db{dir / "app.db", std::move(o)};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB)");
    db.transaction([](auto& tx) {
        for (int i = 0; i < 200; ++i)
            tx.exec("INSERT INTO t(n, pad) VALUES(?, randomblob(2000))", i);
    });
    const auto pages = db.query_one<std::int64_t>("PRAGMA page_count").value_or(0);
    static_cast<void>(db.backup_now());
    REQUIRE(calls.size() >= 3);  // 7 pages a step: the start, some percents, the end
    CHECK(calls.front().operation == "backup");
    CHECK(steps.front() == "copying pages");
    CHECK(calls.front().unit == "pages");
    CHECK(calls.back().done == static_cast<std::uint64_t>(pages));
    CHECK(calls.back().total == static_cast<std::uint64_t>(pages));
    CHECK(calls.size() <= 103);
    for (std::size_t i = 1; i < calls.size(); ++i)
        CHECK(calls[i].done >= calls[i - 1].done);
}

// The copy waited for the transaction the calling thread holds, until backup.time_limit (10 min),
// with every other thread of the process waiting behind it (a docs-only user found it).
TEST_CASE("backup_now() inside the caller's own transaction is refused at once (class misuse)", "[backup]") {
    test::temp_dir dir;
    using Db = backed_db<resilite::backup<resilite::online_backup<7>, resilite::on_demand>>;
    Db db{dir / "app.db"};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY)");
    int runs = 0;
    db.transaction([&](auto& tx) {
        ++runs;
        tx.exec("INSERT INTO t VALUES(1)");
        try {
            static_cast<void>(db.backup_now());
            FAIL("a backup ran inside the caller's transaction");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
            CHECK_THAT(e.what(), Catch::Contains("while a transaction is open"));
        }
    });
    CHECK(runs == 1);
    CHECK(backups_in(dir / "app.db").empty());
    const auto after = db.backup_now();  // after it, as usual, with the row
    CHECK(std::filesystem::exists(after.path));
    CHECK(backups_in(dir / "app.db").size() == 1);
}

// A maintenance round held the writer lock for its whole length, a scheduled backup included:
// the application's calls waited it out, and with their wait for a turn bounded by the retry
// deadline they would fail instead. The round's backup takes the lock for its steps only.
TEST_CASE("a scheduled backup in a maintenance round lets another thread's call run between its steps",
          "[backup][threads]") {
    test::temp_dir dir;
    using Db = backed_db<resilite::backup<resilite::online_backup<7>, resilite::every_minutes<10>>>;
    resilite::manual_clock clock;
    std::atomic<Db*> self{nullptr};
    std::atomic<int> tried{0};
    std::atomic<bool> wrote_between{false};
    Db::options o;
    o.clock = clock;
    o.on_progress = [&](const resilite::progress& p) {
        // Once, in the middle of the copy, on the maintaining thread: another thread writes.
        if (p.operation != "backup" || p.done == 0 || p.done >= p.total || tried.exchange(1) != 0) return;
        auto write = std::async(std::launch::async, [&] { self.load()->exec("INSERT INTO t(n) VALUES(1000)"); });
        // (Only a safety net: the write needs no time of its own, but waits for the lock if the
        // round holds it, until this returns.)
        wrote_between = write.wait_for(std::chrono::seconds{20}) == std::future_status::ready;
        if (!wrote_between) clock.advance(std::chrono::hours{1});  // (the write's deadline passes: it gives up)
        try {
            write.get();
        } catch (const resilite::error&) {
        }
    };
    Db db{dir / "app.db", std::move(o)};
    self = &db;
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad BLOB)");
    db.transaction([](auto& tx) {
        for (int i = 0; i < 100; ++i)
            tx.exec("INSERT INTO t(n, pad) VALUES(?, randomblob(2000))", i);
    });
    clock.advance(std::chrono::minutes{11});
    static_cast<void>(db.maintain());
    REQUIRE(tried == 1);
    CHECK(wrote_between);
    CHECK(backups_in(dir / "app.db").size() == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM t WHERE n = 1000") == 1);
}

TEST_CASE("health after a reopen shows the last backup from the directory, not nothing", "[backup]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    using Db = backed_db<resilite::backup<resilite::online_backup<>, resilite::on_demand>>;
    std::chrono::system_clock::time_point taken;
    {
        Db db{path};
        CHECK_FALSE(db.health().last_backup_time.has_value());
        db.exec_script("CREATE TABLE t(n INTEGER)");
        taken = db.backup_now().taken;
    }
    // A copy renamed by hand to a later time (not in the manifest) is not the last backup: its
    // age would silence an alert on the backups' age (it was negative for a name in 2099).
    const auto backup_dir = dir / "app.db.backups";
    REQUIRE(std::filesystem::exists(backup_dir / "MANIFEST"));
    for (const auto& e : std::filesystem::directory_iterator(backup_dir))
        if (e.path().extension() == ".db")
            std::filesystem::copy_file(e.path(), backup_dir / "app-20991231T000000.000Z.db");
    Db db{path};
    const auto h = db.health();
    REQUIRE(h.last_backup_time.has_value());
    CHECK(std::chrono::abs(*h.last_backup_time - taken) < std::chrono::milliseconds{2});
}

namespace {
// Each name in the manifest, with the number of lines that give it.
std::map<std::string, int> manifest_names(const std::filesystem::path& dir) {
    std::map<std::string, int> out;
    std::ifstream in(dir / "MANIFEST");
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line.front() != '#') ++out[line.substr(0, line.find('\t'))];
    return out;
}
}  // namespace

TEST_CASE("backup names: backups taken at one clock time each get a name never used before, the one just taken is "
          "kept, the manifest lists each name once",
          "[backup][retention]") {
    using Db = backed_db<
        resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_generations<2, 2, 1>>>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    resilite::manual_clock clock;  // never advanced: every backup is taken in the same millisecond
    Db::options o;
    o.clock = clock;
    o.settings = Db::default_settings();
    Db db{path, o};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY)");
    std::set<std::string> names;
    for (std::int64_t i = 1; i <= 4; ++i) {
        db.exec("INSERT INTO t VALUES(?)", i);
        const auto r = db.backup_now();
        INFO(r.path.string());
        CHECK(names.insert(r.path.filename().string()).second);  // (retention removes the older ones of the hour)
        REQUIRE(std::filesystem::exists(r.path));
        CHECK(rows_of(r.path).size() == static_cast<std::size_t>(i));
        CHECK(backups_in(path).back() == r.path);  // the newest: the one just taken
    }
    const auto listed = manifest_names(dir / "app.db.backups");
    CHECK(listed.size() == 4);
    for (const auto& [name, lines] : listed) {
        INFO(name);
        CHECK(names.contains(name));
        CHECK(lines == 1);
    }
}

TEST_CASE("backup retention: with the system clock set back, the backup just taken is kept", "[backup][retention]") {
    using Db = backed_db<resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<1>>>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    resilite::manual_clock clock;
    Db::options o;
    o.clock = clock;
    o.settings = Db::default_settings();
    Db db{path, o};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY); INSERT INTO t VALUES(1)");
    const auto before = db.backup_now();
    clock.advance(-std::chrono::hours{1});  // (NTP stepping the clock back, say)
    db.exec("INSERT INTO t VALUES(2)");
    const auto after = db.backup_now();
    INFO(after.path.string());
    REQUIRE(std::filesystem::exists(after.path));
    CHECK(rows_of(after.path) == std::vector<std::int64_t>{1, 2});
    CHECK(std::filesystem::exists(before.path));  // newest by its time: kept as well
}

TEST_CASE("backup retention: only backups that match their manifest entry are counted and removed, copies put there "
          "by hand, renamed or changed are left alone",
          "[backup][retention]") {
    using Db = backed_db<resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<2>>>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto backups = dir / "app.db.backups";
    resilite::manual_clock clock;
    Db::options o;
    o.clock = clock;
    o.settings = Db::default_settings();
    Db db{path, o};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY); INSERT INTO t VALUES(1)");
    const auto changed = db.backup_now().path;
    clock.advance(std::chrono::minutes{1});
    const auto second = db.backup_now().path;
    { std::ofstream{changed, std::ios::app} << 'x'; }  // unlike its manifest entry now
    // Copies of a real backup under later names (never in the manifest): by name, the newest.
    std::vector<std::filesystem::path> planted;
    for (int i = 1; i <= 3; ++i) {
        planted.push_back(backups / fmt::format("app-20270101T00000{}.000Z.db", i));
        std::filesystem::copy_file(second, planted.back());
    }
    const auto renamed = backups / "app-20270102T000000.000Z.db";
    clock.advance(std::chrono::minutes{1});
    const auto third = db.backup_now().path;
    std::filesystem::copy_file(third, renamed);  // (a rename: the file under a name the manifest never gave)
    clock.advance(std::chrono::minutes{1});
    const auto fourth = db.backup_now().path;
    // The trusted backups are second, third and fourth: keep_last<2> keeps the last two.
    CHECK(std::filesystem::exists(third));
    CHECK(std::filesystem::exists(fourth));
    CHECK_FALSE(std::filesystem::exists(second));
    // Not resilite's to count or to delete.
    CHECK(std::filesystem::exists(changed));
    for (const auto& p : planted)
        CHECK(std::filesystem::exists(p));
    CHECK(std::filesystem::exists(renamed));
}

namespace {
// Root writes into a directory whatever its mode, so a test run as root (CI) cannot see EACCES from
// a mode. Linux keeps capabilities per thread: without CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH)
// in this thread's effective set, root obeys the mode as any user does, deterministically, with
// no mount; the backup runs on this thread. Put back at scope exit (they stay permitted).
// Without root nothing is dropped: the mode alone refuses.
class obey_file_modes {
public:
    obey_file_modes() {
        if (::syscall(SYS_capget, &header_, saved_) != 0) return;
        std::array<__user_cap_data_struct, 2> lowered{saved_[0], saved_[1]};
        lowered[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
        active_ = ::syscall(SYS_capset, &header_, lowered.data()) == 0;
    }
    obey_file_modes(const obey_file_modes&) = delete;
    obey_file_modes& operator=(const obey_file_modes&) = delete;
    ~obey_file_modes() {
        if (active_) static_cast<void>(::syscall(SYS_capset, &header_, saved_));
    }

private:
    __user_cap_header_struct header_{_LINUX_CAPABILITY_VERSION_3, 0};  // (pid 0: this thread)
    __user_cap_data_struct saved_[2]{};
    bool active_ = false;
};

// A backup that fails because of its directory: the class that says why, the directory named,
// never the temporary file as "the database"; the database goes on.
template <class Db>
void refused_for_directory(Db& db, const std::filesystem::path& backups, resilite::error_class expected) {
    try {
        const auto r = db.backup_now();
        FAIL("backed up into a directory that cannot be written: " << r.path);
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == expected);
        CHECK_THAT(e.technical().note,
                   Catch::Contains(fmt::format("the backup directory {}", backups.string())));
        CHECK_THAT(std::string{e.what()}, !Catch::Contains(".tmp-"));
    }
    db.exec("INSERT INTO t VALUES(2)");  // the database itself is fine
}
}  // namespace

TEST_CASE("backup directory that cannot be written: class permission or read_only, the directory named, not the "
          "database",
          "[backup]") {
    using Db = resilite::Database<resilite::backup<resilite::online_backup<>, resilite::on_demand>,
                                  resilite::null_observer, test::manual_durability>;
    test::temp_dir dir;
    SECTION("no write permission (the directory, and one to be made in it)") {
        const auto locked = dir / "locked";
        std::filesystem::create_directory(locked);
        using std::filesystem::perms;
        std::filesystem::permissions(locked, perms::owner_read | perms::owner_exec);
        for (const auto& backups : {locked, locked / "deeper"}) {
            INFO(backups.string());
            Db::options o;
            o.settings = Db::default_settings();
            o.settings->backup.directory = backups.string();
            Db db{dir / "app.db", o};
            db.exec_script("CREATE TABLE IF NOT EXISTS t(n)");
            {
                const obey_file_modes as_any_user;
                refused_for_directory(db, backups, resilite::error_class::permission);
            }
        }
        std::filesystem::permissions(locked, perms::owner_all);
        CHECK(std::filesystem::is_empty(locked));  // nothing left behind
    }
    SECTION("a read-only file system") {
        const test::small_volume volume{dir.path(), "1m"};
        if (!volume.mounted()) {
            WARN("cannot mount a tmpfs here (needs root): the read-only file system case is not exercised");
            return;
        }
        const auto backups = volume.path() / "backups";
        std::filesystem::create_directory(backups);
        REQUIRE(std::system(fmt::format("mount -o remount,ro '{}'", volume.path().string()).c_str()) == 0);
        Db::options o;
        o.settings = Db::default_settings();
        o.settings->backup.directory = backups.string();
        Db db{dir / "app.db", o};
        db.exec_script("CREATE TABLE t(n)");
        refused_for_directory(db, backups, resilite::error_class::read_only);
    }
}

TEST_CASE("backup directory that is a symbolic link is never followed: the backup fails, nothing is written "
          "through it",
          "[backup]") {
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto elsewhere = dir / "elsewhere";
    std::filesystem::create_directories(elsewhere);
    std::filesystem::create_symlink(elsewhere, dir / "app.db.backups");
    using Db = backed_db<resilite::backup<resilite::online_backup<>, resilite::on_demand>>;
    Db db{path};
    db.exec_script("CREATE TABLE t(n INTEGER)");
    try {
        static_cast<void>(db.backup_now());
        FAIL("a backup was written through a symbolic link");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::permission);
        CHECK_THAT(std::string{e.what()}, Catch::Contains("symbolic link"));
    }
    CHECK(std::filesystem::is_empty(elsewhere));
}

TEST_CASE("refusal: a source that fails its check is never backed up", "[backup][refusal]") {
    test::temp_dir dir;
    const auto path = dir / "r.db";
    test::database_with_swapped_index(path, 100);  // only integrity_check sees it
    using Db = resilite::Database<resilite::backup<resilite::online_backup<>, resilite::on_demand,
                                                   resilite::keep_last<3>, resilite::check_level::full>,
                                  resilite::callback_observer, test::manual_durability>;
    test::event_log log;
    Db db{path, test::recording(log)};
    try {
        static_cast<void>(db.backup_now());
        FAIL("backed up a damaged database");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::corrupt);
        CHECK_THAT(e.technical().note, Catch::Contains("not backed up"));
    }
    CHECK(backups_in(path).empty());
    const auto events = log.events();
    CHECK(std::any_of(events.begin(), events.end(), [](const auto& e) {
        return e.name == "backup" && e.result == resilite::outcome::failed;
    }));
}

TEST_CASE("sigkill during a backup never leaves a partial file promoted, leftovers are cleaned",
          "[backup][sigkill]") {
    test::temp_dir dir;
    const auto path = dir / "k.db";
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<2, 1>, resilite::on_demand, resilite::keep_last<50>>,
        resilite::null_observer, test::manual_durability>;
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad TEXT)");
        db.transaction([](auto& tx) {
            for (int n = 1; n <= 3000; ++n)
                tx.exec("INSERT INTO t VALUES(?, ?)", n, std::string(300, 'k'));
        });
    }
    int interrupted = 0;  // kills that left a temporary file: they landed inside a backup
    for (int trial = 0; trial < 8; ++trial) {
        const pid_t child = ::fork();
        if (child == 0) {
            ::alarm(120);
            try {
                Db db{path};
                for (;;)
                    static_cast<void>(db.backup_now());
            } catch (...) {
            }
            ::_exit(2);
        }
        // Killed once the step is reached, not after a delay: its temporary copy exists, so a
        // backup is in flight (it takes many steps of 2 pages).
        const auto mine = fmt::format(".tmp-{}-", child);
        for (bool in_flight = false; !in_flight;) {
            std::error_code ec;
            for (const auto& e : std::filesystem::directory_iterator(path.string() + ".backups", ec))
                in_flight = in_flight || e.path().filename().string().find(mine) != std::string::npos;
            if (in_flight) break;
            int status = 0;
            REQUIRE(::waitpid(child, &status, WNOHANG) == 0);  // the child must still be backing up
            std::this_thread::sleep_for(std::chrono::microseconds{200});
        }
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        REQUIRE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
        for (const auto& b : backups_in(path)) {
            INFO(b);
            CHECK(
                resilite::check_health(b, resilite::check_level::full).ok());  // every promoted file is whole
        }
        std::error_code ec;  // a kill before the first backup started leaves no directory yet
        for (const auto& e : std::filesystem::directory_iterator(path.string() + ".backups", ec)) {
            if (e.path().filename().string().find(".tmp") != std::string::npos) {
                ++interrupted;
                break;
            }
        }
    }
    CHECK(interrupted > 0);
    Db db{path};
    const auto r = db.backup_now();
    for (const auto& e : std::filesystem::directory_iterator(path.string() + ".backups")) {
        CHECK(e.path().filename().string().find(".tmp") == std::string::npos);  // leftovers cleaned
    }
    CHECK(rows_of(r.path).size() == 3000);
}

TEST_CASE("sink: the finished backup is handed to a command, its failure is reported, the backup kept",
          "[backup][sink]") {
    test::temp_dir dir;
    const auto path = dir / "s.db";
    using Db = resilite::Database<
        resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<3>>,
        resilite::callback_observer, test::manual_durability>;
    test::event_log log;
    auto o = Db::options{};
    o.observer = log.observer();
    o.settings = Db::default_settings();
    std::filesystem::create_directories(dir / "offsite");
    const bool have_rclone = std::system("command -v rclone >/dev/null 2>&1") == 0;
    o.settings->backup.sink =
        have_rclone ? fmt::format("rclone copyto {{path}} {}/offsite/{{name}}", dir.path().string())
                    : fmt::format("cp {{path}} {}/offsite/{{name}}", dir.path().string());
    if (!have_rclone) WARN("rclone is not installed: the sink test uses cp");
    {
        Db db{path, o};
        db.exec_script("CREATE TABLE t(n INTEGER); INSERT INTO t VALUES(42);");
        const auto r = db.backup_now();
        CHECK(r.sink_error.empty());
        const auto shipped = dir / "offsite" / r.path.filename();
        REQUIRE(std::filesystem::exists(shipped));
        CHECK(std::filesystem::file_size(shipped) == r.bytes);
        CHECK(rows_of(shipped) == std::vector<std::int64_t>{42});
    }
    o.settings->backup.sink = "false";
    Db db{path, o};
    log.clear();
    const auto r = db.backup_now();
    CHECK_FALSE(r.sink_error.empty());
    CHECK(std::filesystem::exists(r.path));
    const auto events = log.events();
    CHECK(std::any_of(events.begin(), events.end(), [](const auto& e) {
        return e.name == "backup" && e.result == resilite::outcome::warning &&
               e.detail.find("sink command") != std::string::npos;
    }));
}

TEST_CASE("sink: a failing sink is reported with its exit code and its last stderr lines, one that hangs is killed",
          "[backup][sink]") {
    test::temp_dir dir;
    using Db = resilite::Database<resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<3>>,
                                  resilite::null_observer, test::manual_durability>;
    auto o = Db::options{};
    o.settings = Db::default_settings();
    // Exit code 1 reads as 1 (not a raw wait status of 256), with what the command said.
    o.settings->backup.sink = "echo 'remote: permission denied' >&2; exit 1";
    {
        Db db{dir / "a.db", o};
        db.exec_script("CREATE TABLE t(n INTEGER)");
        const auto r = db.backup_now();
        CHECK(r.sink_error.find("exited with code 1") != std::string::npos);
        CHECK(r.sink_error.find("remote: permission denied") != std::string::npos);
        CHECK(r.sink_error.find("256") == std::string::npos);
        CHECK(std::filesystem::exists(r.path));
    }
    // A command that does not exist: the shell's 127 and its message.
    o.settings->backup.sink = "no-such-sink-command {path}";
    {
        Db db{dir / "b.db", o};
        const auto r = db.backup_now();
        CHECK(r.sink_error.find("exited with code 127") != std::string::npos);
        CHECK(r.sink_error.find("not found") != std::string::npos);
    }
    // The wait is for the command itself: one that closes its stderr still reports its code, and
    // one that leaves a child holding its stderr ends when it ends (not at the timeout).
    o.settings->backup.sink = "exec 2>&-; exit 3";
    {
        Db db{dir / "d.db", o};
        CHECK(db.backup_now().sink_error.find("exited with code 3") != std::string::npos);
    }
    o.settings->backup.sink = "sleep 30 & exit 0";
    {
        Db db{dir / "e.db", o};
        CHECK(db.backup_now().sink_error.empty());  // (the old wait read stderr until the child let it go)
    }
    // One that never ends is killed at the timeout, with everything it started (its process group).
    o.settings->backup.sink = "sleep 600 & sleep 600; wait";
    o.settings->backup.sink_timeout = std::chrono::seconds{1};
    {
        Db db{dir / "c.db", o};
        const auto r = db.backup_now();
        CHECK(r.sink_error.find("timed out after 1 s") != std::string::npos);
        CHECK(std::filesystem::exists(r.path));
    }
}

TEST_CASE("restore: checks the backup, replaces the target atomically, refuses an open target",
          "[backup][restore]") {
    test::temp_dir dir;
    const auto path = dir / "live.db";
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, test::manual_durability>;
    resilite::backup_result saved;
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(n INTEGER)");
        db.exec("INSERT INTO t VALUES(1)");
        saved = db.backup_now();
        db.exec("INSERT INTO t VALUES(2)");
        try {
            resilite::restore(saved.path, path);
            FAIL("restored over an open database");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::busy);
        }
        CHECK(db.query_one<int>("SELECT count(*) FROM t") == 2);
    }
    resilite::restore(saved.path, path);
    {
        Db db{path};
        CHECK(db.query<std::int64_t>("SELECT n FROM t") == std::vector<std::int64_t>{1});
    }
    // A damaged backup is refused and the target left alone.
    const auto bad = dir / "bad.db";
    std::filesystem::copy_file(saved.path, bad);
    std::mt19937_64 rng{5};
    resilite::testing::overwrite_header(bad, rng);
    CHECK_THROWS_AS(resilite::restore(bad, path), resilite::error);
    Db db{path};
    CHECK(db.query<std::int64_t>("SELECT n FROM t") == std::vector<std::int64_t>{1});
}

TEST_CASE("a backup that cannot finish within its time limit says so and leaves nothing behind", "[backup]") {
    test::temp_dir dir;
    const auto path = dir / "slow.db";
    // One page per step and 5 ms between steps (on the manual clock): 300 pages take 1.5 s.
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<1, 5, 1>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, resilite::manual_clock, test::manual_durability>;
    Db db{path};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad TEXT)");
    db.transaction([](auto& tx) {
        for (int n = 1; n <= 1000; ++n)
            tx.exec("INSERT INTO t VALUES(?, ?)", n, std::string(1000, 's'));
    });
    try {
        static_cast<void>(db.backup_now());
        FAIL("a slow backup claimed success");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::busy);
        CHECK_THAT(e.technical().note, Catch::Contains("could not finish within 1 s"));
    }
    CHECK(backups_in(path).empty());
    for (const auto& entry : std::filesystem::directory_iterator(path.string() + ".backups")) {
        CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
    }
}

TEST_CASE("identity: a backup of a database replaced at the path never rotates out the last good backup",
          "[backup][identity]") {
    using Db = resilite::Database<resilite::null_observer, test::manual_durability,
                                  resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<1>>>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    Db db{path};
    db.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES('precious')");
    const auto good = db.backup_now();
    {
        resilite::sqlite::connection other{dir / "other.db"};
        other.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES('stranger')");
    }
    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));  // its WAL would mask the swap
    std::filesystem::rename(dir / "other.db", path);  // replaced while open
    try {
        static_cast<void>(db.backup_now());
        FAIL("backed up a different database in place of this one");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::corrupt);
    }
    REQUIRE(std::filesystem::exists(good.path));
    resilite::sqlite::connection c{good.path};
    CHECK(c.query_all<std::string>("SELECT x FROM t") == std::vector<std::string>{"precious"});
}

TEST_CASE("identity: retention never removes the backups of another database of the same file name sharing the "
          "directory",
          "[backup][identity]") {
    using Db = resilite::Database<resilite::null_observer, test::manual_durability,
                                  resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<1>>>;
    test::temp_dir dir;
    std::filesystem::create_directories(dir / "x");
    std::filesystem::create_directories(dir / "y");
    const auto shared = dir / "shared";
    Db::options o;
    o.settings = Db::default_settings();
    o.settings->backup.directory = shared.string();
    Db y{dir / "y" / "app.db", o};
    y.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES('y')");
    const auto kept = y.backup_now();
    Db x{dir / "x" / "app.db", o};
    x.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES('x')");
    for (int i = 0; i < 3; ++i)
        static_cast<void>(x.backup_now());
    CHECK(std::filesystem::exists(kept.path));  // y's only backup
    CHECK(backups_in(dir / "y" / "app.db", shared).size() == 2);  // x keeps its newest one, y its own
    const auto again = y.backup_now();  // y's retention keeps x's too
    CHECK_FALSE(std::filesystem::exists(kept.path));
    CHECK(std::filesystem::exists(again.path));
    CHECK(backups_in(dir / "y" / "app.db", shared).size() == 2);
}

namespace {
struct plain_row {
    BOOST_HANA_DEFINE_STRUCT(plain_row, (std::int64_t, id));
};
}  // namespace

TEST_CASE("backup retention of a database with no identity (report_only) still removes its old backups",
          "[backup][identity]") {
    using Db = resilite::Database<
        resilite::basic_schema<resilite::schema_mode::report_only,
                               resilite::table<"t", plain_row, resilite::primary_key<"id">>>,
        resilite::null_observer, test::manual_durability,
        resilite::backup<resilite::vacuum_into, resilite::on_demand, resilite::keep_last<1>>>;
    test::temp_dir dir;
    const auto path = dir / "app.db";
    Db db{path};
    db.exec_script("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY)");
    for (int i = 0; i < 3; ++i)
        static_cast<void>(db.backup_now());
    CHECK(backups_in(path).size() == 1);
}

TEST_CASE("restore: onto a target with a damaged header, the damaged files are quarantined, not refused",
          "[backup][restore]") {
    test::temp_dir dir;
    const auto path = dir / "live.db";
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, test::manual_durability>;
    resilite::backup_result saved;
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(n INTEGER); INSERT INTO t VALUES(7)");
        saved = db.backup_now();
    }
    std::mt19937_64 rng{9};
    resilite::testing::overwrite_header(path, rng);
    const auto damaged_bytes = std::filesystem::file_size(path);
    const auto aside = resilite::restore(saved.path, path);
    REQUIRE_FALSE(aside.empty());
    CHECK(std::filesystem::file_size(aside / "live.db") == damaged_bytes);  // kept, never deleted
    Db db{path};
    CHECK(db.query<std::int64_t>("SELECT n FROM t") == std::vector<std::int64_t>{7});
}

TEST_CASE("restore: a backup unlike its manifest entry, or another database's, is refused, and a sound target replaced "
          "is kept aside",
          "[backup][restore]") {
    test::temp_dir dir;
    const auto path = dir / "live.db";
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, test::manual_durability>;
    resilite::backup_result saved;
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(n INTEGER, s TEXT); INSERT INTO t VALUES(1, 'item1'), (3, 'item3')");
        saved = db.backup_now();
        db.exec("INSERT INTO t VALUES(4, 'item4')");
    }
    const auto rows_at = [](const std::filesystem::path& p) {
        resilite::sqlite::connection c{p};
        return c.query_all<std::string>("SELECT s FROM t ORDER BY n");
    };
    const std::vector<std::string> live{"item1", "item3", "item4"};
    SECTION("a copy changed after it was taken") {
        {
            std::fstream f{saved.path, std::ios::in | std::ios::out | std::ios::binary};
            std::string bytes{std::istreambuf_iterator<char>{f}, {}};
            const auto at = bytes.find("item3");
            REQUIRE(at != std::string::npos);
            f.seekp(static_cast<std::streamoff>(at + 4));
            f.put('X');  // still a sound database: only the manifest's checksum tells
        }
        try {
            static_cast<void>(resilite::restore(saved.path, path));
            FAIL("restored a backup that differs from its manifest entry");
        } catch (const resilite::error& e) {
            INFO(e.what());
            CHECK(e.klass() == resilite::error_class::corrupt);
            CHECK_THAT(e.technical().note, Catch::Contains("manifest"));
        }
        CHECK(rows_at(path) == live);
    }
    SECTION("another database's backup") {
        resilite::backup_result foreign;
        {
            Db other{dir / "other.db"};
            other.exec_script("CREATE TABLE t(n INTEGER, s TEXT); INSERT INTO t VALUES(9, 'stranger')");
            foreign = other.backup_now();
        }
        try {
            static_cast<void>(resilite::restore(foreign.path, path));
            FAIL("restored another database's backup");
        } catch (const resilite::error& e) {
            INFO(e.what());
            CHECK(e.klass() == resilite::error_class::misuse);
            CHECK_THAT(e.technical().note, Catch::Contains("another database"));
        }
        CHECK(rows_at(path) == live);
    }
    SECTION("a copy that cannot be made leaves a sound target where it was") {
        // The restore's temporary file cannot be written (a directory has its name).
        std::filesystem::create_directory(dir / fmt::format(".live.db.restore.tmp-{}", ::getpid()));
        CHECK_THROWS_AS(resilite::restore(saved.path, path), resilite::error);
        CHECK(rows_at(path) == live);
        for (const auto& e : std::filesystem::directory_iterator(dir.path()))
            CHECK(e.path().filename().string().find("quarantine") == std::string::npos);
    }
    SECTION("a sound target replaced on purpose is kept aside, with the commit since the backup") {
        const auto aside = resilite::restore(saved.path, path);
        REQUIRE_FALSE(aside.empty());
        CHECK(rows_at(aside / "live.db") == live);
        Db db{path};
        CHECK(db.query<std::string>("SELECT s FROM t ORDER BY n") == std::vector<std::string>{"item1", "item3"});
    }
}

TEST_CASE("restore: temporary files of a killed restore are removed by the next one", "[backup][restore]") {
    test::temp_dir dir;
    const auto path = dir / "live.db";
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, test::manual_durability>;
    resilite::backup_result saved;
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(n INTEGER); INSERT INTO t VALUES(1)");
        saved = db.backup_now();
    }
    // A process that died mid-restore (its pid no longer exists) left its copy behind.
    const pid_t dead = ::fork();
    if (dead == 0) ::_exit(0);
    ::waitpid(dead, nullptr, 0);
    const auto left = dir / fmt::format(".live.db.restore.tmp-{}", dead);
    { std::ofstream{left} << "partial"; }
    static_cast<void>(resilite::restore(saved.path, path));
    CHECK_FALSE(std::filesystem::exists(left));
}

TEST_CASE("restore: a target that is a directory or a symbolic link is refused before anything changes",
          "[backup][restore]") {
    test::temp_dir dir;
    const auto path = dir / "app" / "live.db";
    std::filesystem::create_directories(path.parent_path());
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, test::manual_durability>;
    resilite::backup_result saved;
    {
        Db db{path};
        db.exec_script("CREATE TABLE t(n INTEGER); INSERT INTO t VALUES(1)");
        saved = db.backup_now();
    }
    std::filesystem::create_symlink(path, dir / "link.db");
    const auto listing = [&] {
        std::set<std::string> out;
        for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path()))
            out.insert(std::filesystem::relative(e.path(), dir.path()).string());
        return out;
    };
    const auto before = listing();
    for (const auto& target : {path.parent_path(), dir / "link.db"}) {
        INFO(target.string());
        try {
            static_cast<void>(resilite::restore(saved.path, target));
            FAIL("restored over something that is not a database file");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::misuse);
            CHECK_THAT(e.technical().note, Catch::Contains("nothing was changed"));
        }
        CHECK(listing() == before);  // nothing quarantined, no temporary file
        CHECK(std::filesystem::is_symlink(dir / "link.db"));
    }
    Db db{path};
    CHECK(db.query<std::int64_t>("SELECT n FROM t") == std::vector<std::int64_t>{1});
}

TEST_CASE("backup: a full disk is a clear `full` error, not \"not an error\"", "[backup]") {
    test::temp_dir dir;
    const test::small_volume volume{dir.path(), "512k"};
    if (!volume.mounted()) {
        WARN("cannot mount a small tmpfs here (needs root): the full-disk case is not exercised");
        return;
    }
    const auto& mnt = volume.path();
    using Db = resilite::Database<resilite::backup<resilite::online_backup<>, resilite::on_demand, resilite::keep_last<3>>,
                                  resilite::null_observer, test::manual_durability>;
    Db::options o;
    o.settings = Db::default_settings();
    o.settings->backup.directory = mnt.string();
    Db db{dir / "big.db", o};
    db.exec_script(
        "CREATE TABLE t(b BLOB); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) "
        "INSERT INTO t SELECT randomblob(4096) FROM c");
    try {
        static_cast<void>(db.backup_now());
        FAIL("a 1.2 MB backup fit on a 512 kB volume");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::full);
        CHECK(std::string{e.what()}.find("not an error") == std::string::npos);
    }
}

TEST_CASE("backup-under-writes: another process writing never starves the default backup", "[backup][writes]") {
    // Every write of another process restarts the backup API's copy; after max_restarts the
    // backup is taken with VACUUM INTO, one snapshot no write can restart.
    test::temp_dir dir;
    const auto path = dir / "shared.db";
    using Db = resilite::Database<
        resilite::backup<resilite::online_backup<1, 1, 600, 2>, resilite::on_demand, resilite::keep_last<3>>,
        resilite::null_observer, test::manual_durability>;
    Db db{path};
    db.exec_script("CREATE TABLE t(n INTEGER PRIMARY KEY, pad TEXT)");
    db.transaction([](auto& tx) {
        for (int n = 1; n <= 1000; ++n)
            tx.exec("INSERT INTO t VALUES(?, ?)", n, std::string(1000, 'b'));
    });
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t writer = ::fork();
    if (writer == 0) {
        ::alarm(120);
        sqlite3* c = nullptr;
        sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr);
        sqlite3_busy_timeout(c, 5000);
        for (int n = 1001;; ++n) {
            const auto sql = fmt::format("INSERT INTO t VALUES({}, 'w')", n);
            sqlite3_exec(c, sql.c_str(), nullptr, nullptr, nullptr);
            if (n == 1010) static_cast<void>(::write(ready[1], "r", 1));  // writing for real now
        }
    }
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    std::optional<resilite::backup_result> r;
    std::string failure;
    try {
        r = db.backup_now();
    } catch (const resilite::error& e) {
        failure = e.what();
    }
    ::kill(writer, SIGKILL);
    ::waitpid(writer, nullptr, 0);
    INFO(failure);
    REQUIRE(r);
    CHECK(r->restarts <= 3);
    CHECK(resilite::check_health(r->path, resilite::check_level::full).ok());
    const auto rows = rows_of(r->path);
    CHECK(rows.size() >= 1010);
    CHECK(static_cast<std::int64_t>(rows.size()) == rows.back());  // one consistent snapshot: 1..S
}

}  // namespace backup_backups_tests
