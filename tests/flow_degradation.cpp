// Degradation modes (docs/degradation.md): while the database is unavailable (a heal here or in
// another process, damage not healed, disk full, I/O errors past retry), fail_fast refuses at
// once with class degraded, read_only serves reads where the file is sound, queue_writes queues
// writes durably and replays them in order, exactly once. Nothing here waits on time: "at once"
// is counted (one attempt, no backoff sleep on the manual clock, no retry event).

#include "archive_support.hpp"

#include <resilite/resilite.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace flow_degradation_tests {

using namespace test::archive;
using resilite::error_class;
using test::manual_durability;

namespace {

using clock_t_ = resilite::manual_clock;
using fast = test::fast_retry;

template <class Mode>
using HealingDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>, resilite::healing<>,
                                     resilite::degradation<Mode>, common, manual_durability, fast, clock_t_>;
template <class Mode>
using PlainDb = resilite::Database<resilite::schema<items, logs>, resilite::degradation<Mode>, common,
                                   manual_durability, fast, clock_t_>;
using Queue8 = resilite::queue_writes<8>;
using Queue1000 = resilite::queue_writes<1000>;

// Another process's heal, as the gate sees it: the gate file held exclusively.
class foreign_heal {
public:
    explicit foreign_heal(const std::filesystem::path& db) {
        fd_ = ::open((db.string() + "-resilite-gate").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        REQUIRE(fd_ >= 0);
        REQUIRE(::flock(fd_, LOCK_EX) == 0);
    }
    foreign_heal(const foreign_heal&) = delete;
    foreign_heal& operator=(const foreign_heal&) = delete;
    ~foreign_heal() { end(); }
    void end() {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    int fd_ = -1;
};

template <class Db>
typename Db::options options_for(const test::event_log& log, const clock_t_& clock) {
    typename Db::options o;
    o.observer = log.observer();
    o.clock = clock;
    o.settings = Db::default_settings();
    return o;
}

Item item(std::int64_t id) { return Item{id, fmt::format("item {}", id), static_cast<double>(id) / 3.0, "t"}; }

// Expects class degraded from f, with one attempt and no backoff sleep: "at once".
template <class F>
void require_degraded_at_once(const clock_t_& clock, F&& f) {
    const auto sleeps = clock.sleeps().size();
    try {
        f();
        FAIL("expected class degraded");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::degraded);
        CHECK(e.technical().attempt <= 1);
    }
    CHECK(clock.sleeps().size() == sleeps);
}

std::size_t lines_in(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);)
        ++n;
    return n;
}

}  // namespace

TEST_CASE("fail_fast: while another process heals, every call fails at once with class degraded, then recovers",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<resilite::fail_fast>;
    Db db(dir.path() / "a.db", options_for<Db>(log, clock));
    db.insert(item(1));
    {
        foreign_heal heal{db.path()};
        require_degraded_at_once(clock, [&] { db.insert(item(2)); });
        require_degraded_at_once(clock, [&] { static_cast<void>(db.query_one<int>("SELECT count(*) FROM items")); });
        require_degraded_at_once(clock, [&] { db.transaction([](auto& tx) { tx.exec("DELETE FROM items"); }); });
        CHECK(log.count("retry") == 0);
        CHECK(log.count("degraded") == 1);  // one event when the state changed, not one per call
        const auto h = db.health();         // answers without the database
        CHECK_FALSE(h.available);
        CHECK(h.unavailable_reason == "healing_elsewhere");
        CHECK(h.unavailable_since.has_value());
        CHECK(h.to_json().find("\"available\":false") != std::string::npos);
    }
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 1);
    CHECK(log.count("recovered") == 1);
    CHECK(db.health().available);
    db.insert(item(2));
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 2);
}

TEST_CASE("read_only: disk full refuses writes until a probe after the backoff writes again", "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    std::atomic<bool> full{false};
    using Db = PlainDb<resilite::read_only>;
    auto o = options_for<Db>(log, clock);
    o.inject_failure = [&](std::string_view op, int) { return full && op != "query" ? SQLITE_FULL : SQLITE_OK; };
    Db db(dir.path() / "a.db", std::move(o));
    db.insert(item(1));
    full = true;
    CHECK_THROWS_MATCHES(db.insert(item(2)), resilite::error,
                         Catch::Predicate<resilite::error>([](const auto& e) { return e.klass() == error_class::full; }));
    CHECK(db.health().unavailable_reason == "disk_full");
    // Later writes do not touch SQLite: refused at once. Reads go on.
    require_degraded_at_once(clock, [&] { db.insert(item(3)); });
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 1);
    // Before the probe interval nothing probes; after it, maintain() probes and fails (still full).
    db.maintain();
    CHECK(log.count("probe") == 0);
    clock.advance(db.current_settings().degradation.probe_interval);
    db.maintain();
    CHECK(log.count("probe") == 1);
    CHECK_FALSE(db.health().available);
    // The next probe is twice as far off.
    clock.advance(db.current_settings().degradation.probe_interval);
    db.maintain();
    CHECK(log.count("probe") == 1);
    full = false;
    require_degraded_at_once(clock, [&] { db.insert(item(3)); });  // no probe due yet
    clock.advance(db.current_settings().degradation.probe_interval);
    db.maintain();
    CHECK(log.count("probe") == 2);
    CHECK(db.health().available);
    CHECK(log.count("recovered") == 1);
    db.insert(item(3));
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 2);
}

TEST_CASE("fail_fast: during disk full reads are served and each write is tried, the first that succeeds ends it",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    std::atomic<bool> full{false};
    using Db = PlainDb<resilite::fail_fast>;
    auto o = options_for<Db>(log, clock);
    o.inject_failure = [&](std::string_view op, int) { return full && op == "insert" ? SQLITE_FULL : SQLITE_OK; };
    Db db(dir.path() / "a.db", std::move(o));
    full = true;
    for (int i = 0; i < 3; ++i)
        CHECK_THROWS_MATCHES(db.insert(item(1)), resilite::error, Catch::Predicate<resilite::error>([](const auto& e) {
                                 return e.klass() == error_class::full;  // its own cause, every time
                             }));
    CHECK(db.health().unavailable_reason == "disk_full");
    CHECK(log.count("degraded") == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 0);
    // A call that writes nothing proves nothing about the disk: the state stays.
    CHECK(db.transaction([](auto& tx) { return tx.template query_one<int>("SELECT count(*) FROM items"); }) == 0);
    CHECK(db.exec("UPDATE items SET name = 'x' WHERE id = -1") == 0);
    CHECK(db.health().unavailable_reason == "disk_full");
    CHECK(log.count("recovered") == 0);
    full = false;
    db.insert(item(1));  // "free some space and try again": no wait for a probe
    CHECK(db.health().available);
    CHECK(log.count("recovered") == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 1);
    CHECK(clock.sleeps().empty());
}

TEST_CASE("fail_fast: damage seen without healing makes every call fail at once until a check finds the file sound", "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    std::atomic<bool> corrupt{false};
    using Db = PlainDb<resilite::fail_fast>;
    auto o = options_for<Db>(log, clock);
    o.inject_failure = [&](std::string_view op, int) { return corrupt && op == "query" ? SQLITE_CORRUPT : SQLITE_OK; };
    Db db(dir.path() / "a.db", std::move(o));
    db.insert(item(1));
    corrupt = true;
    CHECK_THROWS(db.query_one<int>("SELECT count(*) FROM items"));
    corrupt = false;
    require_degraded_at_once(clock, [&] { static_cast<void>(db.get<Item>(1)); });
    require_degraded_at_once(clock, [&] { db.insert(item(2)); });
    CHECK(db.health().unavailable_reason == "damaged");
    // Diagnostics still run: they say what they find. A check that finds the file sound (the
    // fault passed) ends the state; the damage stays in the log.
    CHECK(db.check().ok());
    CHECK(db.health().available);
    CHECK(log.count("recovered") == 1);
    CHECK(db.get<Item>(1).has_value());
}

TEST_CASE("read_only: damage repaired by hand while open: once a check finds the file sound, reads see the "
          "repaired pages, not the damaged ones this Database had read (also with read connections)",
          "[degradation]") {
    const std::size_t readers = GENERATE(0, 2);
    INFO("read_connections = " << readers);
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = PlainDb<resilite::read_only>;
    const auto path = dir.path() / "a.db";
    auto o = options_for<Db>(log, clock);
    o.settings->read_connections = readers;
    Db db(path, std::move(o));
    db.transaction([](auto& tx) {
        for (int i = 1; i <= 500; ++i) tx.insert(item(i));
    });
    static_cast<void>(db.checkpoint(resilite::checkpoint_mode::truncate));
    std::int64_t root = 0;
    {
        resilite::sqlite::connection reader{path, SQLITE_OPEN_READONLY};
        root = reader.query_one<std::int64_t>("SELECT rootpage FROM sqlite_master WHERE name = 'items'").value_or(0);
    }
    REQUIRE(root > 1);
    const auto page = resilite::testing::detail::page_size_of(path);
    std::string saved(page, '\0');
    {
        std::ifstream in{path, std::ios::binary};
        in.seekg(static_cast<std::streamoff>(root - 1) * page);
        in.read(saved.data(), static_cast<std::streamsize>(page));
        REQUIRE(in);
    }
    db.with_connection([](auto& c) { sqlite3_db_release_memory(c.native_handle()); });  // read from the file
    resilite::testing::zero_page(path, static_cast<std::uint32_t>(root));
    try {
        static_cast<void>(db.query_one<std::int64_t>("SELECT count(*) FROM items"));
        FAIL("a zeroed page was read without an error");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::corrupt);
    }
    CHECK(db.health().unavailable_reason == "damaged");
    {  // repaired by hand: the page's bytes put back
        std::fstream io{path, std::ios::binary | std::ios::in | std::ios::out};
        io.seekp(static_cast<std::streamoff>(root - 1) * page);
        io.write(saved.data(), static_cast<std::streamsize>(page));
        REQUIRE(io);
    }
    CHECK(db.check(resilite::check_level::quick).ok());
    CHECK(db.health().available);
    CHECK(log.count("recovered") == 1);
    CHECK(db.query_one<std::int64_t>("SELECT count(*) FROM items") == 500);
    CHECK(db.query_one<std::int64_t>("SELECT sum(id) FROM items") == 500 * 501 / 2);
    CHECK(db.health().available);
}

TEST_CASE("read_only: reads are served while writes fail (disk full), not while the file is in doubt",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    std::atomic<bool> full{false};
    using Db = HealingDb<resilite::read_only>;
    auto o = options_for<Db>(log, clock);
    o.inject_failure = [&](std::string_view op, int) {
        return full && op != "query" && op != "get" && op != "select" ? SQLITE_FULL : SQLITE_OK;
    };
    Db db(dir.path() / "a.db", std::move(o));
    db.insert(item(1));
    full = true;
    CHECK_THROWS(db.insert(item(2)));
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 1);
    CHECK(db.get<Item>(1).has_value());
    CHECK(db.select<Item>().size() == 1);
    require_degraded_at_once(clock, [&] { db.insert(item(3)); });
    require_degraded_at_once(clock, [&] { db.exec("DELETE FROM items"); });
    require_degraded_at_once(clock, [&] { db.transaction([](auto& tx) { tx.exec("DELETE FROM items"); }); });
    full = false;
    clock.advance(std::chrono::seconds{1});
    db.maintain();
    CHECK(db.health().available);
    {
        foreign_heal heal{db.path()};
        // The commit is refused at the gate (nothing committed), and the file is in doubt: no reads.
        require_degraded_at_once(clock, [&] { db.insert(item(3)); });
        require_degraded_at_once(clock, [&] { static_cast<void>(db.query_one<int>("SELECT count(*) FROM items")); });
    }
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 1);
}

TEST_CASE("queue_writes: writes while another process heals are queued durably and replayed in order, once",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue1000>;
    const auto path = dir.path() / "a.db";
    Db db(path, options_for<Db>(log, clock));
    const auto first = db.insert(item(1));
    CHECK(first.committed());
    CHECK(first.value == 1);
    std::filesystem::path queue_copy = dir.path() / "queue-copy";
    {
        foreign_heal heal{path};
        for (std::int64_t id = 2; id <= 6; ++id) {
            const auto r = db.insert(item(id));
            CHECK(r.queued());
            CHECK(r.queue_seq == static_cast<std::uint64_t>(id - 1));
        }
        CHECK(db.upsert(Item{2, "renamed", 0.5, "t"}).queued());
        CHECK(db.erase<Item>(std::int64_t{3}).queued());
        CHECK(db.exec("UPDATE items SET score = ?1 WHERE id = ?2", 0.1, std::int64_t{4}).queued());
        // A transaction runs arbitrary code: it cannot be queued.
        require_degraded_at_once(clock, [&] { db.transaction([](auto& tx) { tx.exec("DELETE FROM items"); }); });
        CHECK(db.health().queue_depth == 8);
        CHECK(lines_in(path.string() + "-resilite-queue") == 9);  // the header and 8 writes
        std::filesystem::copy_file(path.string() + "-resilite-queue", queue_copy);
    }
    // Back: the next call replays the queue first, in order.
    const auto names = db.query<std::int64_t, std::string, double>("SELECT id, name, score FROM items ORDER BY id");
    REQUIRE(names.size() == 5);  // 1, 2, 4, 5, 6
    CHECK(std::get<1>(names[1]) == "renamed");
    CHECK(std::get<0>(names[2]) == 4);
    CHECK(std::get<2>(names[2]) == 0.1);
    CHECK_FALSE(std::filesystem::exists(path.string() + "-resilite-queue"));
    CHECK(db.health().queue_depth == 0);
    CHECK(log.count("queue_replay") >= 8);
    // A crash after the replay committed but before the file went: the same file again is not
    // replayed twice (the database holds the last number replayed, per file generation).
    std::filesystem::copy_file(queue_copy, path.string() + "-resilite-queue");
    CHECK(db.insert(item(7)).committed());
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 6);
    CHECK(db.query_one<std::string>("SELECT name FROM items WHERE id = 2") == "renamed");
    CHECK_FALSE(std::filesystem::exists(path.string() + "-resilite-queue"));
}

TEST_CASE("queue_writes: an exec that could never be replayed (two statements, a syntax error, a transaction's "
          "own BEGIN or COMMIT, VACUUM) is refused at once, never answered queued",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue1000>;
    const auto path = dir.path() / "a.db";
    Db db(path, options_for<Db>(log, clock));
    CHECK(db.insert(item(1)).committed());
    const auto refused = [&](std::string_view sql, error_class expected) {
        INFO(sql);
        try {
            const auto r = db.exec(sql);
            FAIL("answered " << (r.queued() ? "queued" : "committed"));
        } catch (const resilite::error& e) {
            INFO(e.what());
            CHECK(e.klass() == expected);
        }
    };
    {
        foreign_heal heal{path};
        CHECK(db.insert(item(2)).queued());  // later writes are queued behind it, not tried
        refused("INSERT INTO items(id, name, score, token) VALUES(2, 'a', 0, 't'); "
                "INSERT INTO items(id, name, score, token) VALUES(3, 'b', 0, 't')",
                error_class::misuse);
        refused("INSERT INTO items VALUES(", error_class::sql);
        refused("INSERT INTO items(id name) VALUES(4)", error_class::sql);
        for (const char* control : {"COMMIT", "END", "ROLLBACK", "  begin immediate", "SAVEPOINT s1", "RELEASE s1",
                                    "VACUUM", "/* a comment */ ROLLBACK TO s1"})
            refused(control, error_class::misuse);
        for (const char* nothing : {"", "   ", "-- only a comment", "/* nothing */ ;"})  // no statement to replay
            refused(nothing, error_class::misuse);
        // What can be replayed is queued, a comment after it included.
        CHECK(db.exec("UPDATE items SET score = 2 WHERE id = 1; -- done").queued());
        CHECK(db.health().queue_depth == 2);
    }
    CHECK(db.query_one<double>("SELECT score FROM items WHERE id = 1") == 2.0);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 2);
    CHECK(log.count("queue_rejected") == 0);
}

TEST_CASE("queue_writes: health() of a Database whose queue another one replayed says no write waits",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue1000>;
    const auto path = dir.path() / "a.db";
    Db a(path, options_for<Db>(log, clock));
    CHECK(a.insert(item(1)).committed());
    {
        foreign_heal heal{path};
        for (std::int64_t id = 2; id <= 4; ++id) CHECK(a.insert(item(id)).queued());
        CHECK(a.health().queue_depth == 3);
    }
    {
        Db b(path, options_for<Db>(log, clock));  // its open replays the queue and removes the file
        CHECK(b.query_one<int>("SELECT count(*) FROM items") == 4);
    }
    CHECK_FALSE(std::filesystem::exists(path.string() + "-resilite-queue"));
    CHECK(a.health().queue_depth == 0);
    CHECK(a.query_one<int>("SELECT count(*) FROM items") == 4);
}

TEST_CASE("queue_writes: a queue replayed, then the database healed from its archive while the file was still "
          "there (a crash's window): nothing is replayed twice",
          "[degradation][heal]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue1000>;
    const auto path = dir.path() / "a.db";
    Db db(path, options_for<Db>(log, clock));
    db.exec_script("CREATE TABLE counters(id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counters VALUES(1, 0)");
    const auto queue = path.string() + "-resilite-queue";
    const auto copy = dir.path() / "queue-copy";
    {
        foreign_heal heal{path};
        for (int i = 0; i < 3; ++i)
            CHECK(db.exec("UPDATE counters SET n = n + 1 WHERE id = 1").queued());
        CHECK(db.insert(item(5)).queued());
        std::filesystem::copy_file(queue, copy);
    }
    CHECK(db.query_one<int>("SELECT n FROM counters") == 3);  // replayed, the file removed
    CHECK_FALSE(std::filesystem::exists(queue));
    const auto archive = db.check_archive();  // (the records say which entries were replayed: comments)
    INFO(archive.to_text());
    CHECK(archive.reproduces_live == true);
    const auto report = db.heal();  // no backup: from the archive alone
    INFO(report.to_text());
    REQUIRE(report.healed);
    CHECK(db.query_one<int>("SELECT n FROM counters") == 3);
    std::filesystem::copy_file(copy, queue);  // as if the process had died before removing it
    CHECK(db.insert(item(6)).committed());
    CHECK(db.query_one<int>("SELECT n FROM counters") == 3);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 2);
    CHECK_FALSE(std::filesystem::exists(queue));
}

TEST_CASE("queue_writes: a full queue is a degraded error, a write SQLite refuses on replay is kept aside, and a "
          "write tried, refused as unavailable and queued is one operation (its queued event, no failure)",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue8>;
    const auto path = dir.path() / "a.db";
    Db db(path, options_for<Db>(log, clock));
    CHECK(db.insert(item(1)).committed());
    {
        foreign_heal heal{path};
        const auto failures = db.health().failures;
        log.clear();
        CHECK(db.insert(item(2)).queued());  // (the refused commit tells the database it is unavailable)
        CHECK(log.count("queued") == 1);
        for (const auto& e : log.events()) {
            INFO(e.name << ": " << e.detail);
            CHECK(e.result != resilite::outcome::failed);
        }
        CHECK(db.health().failures == failures);
        CHECK(db.insert(item(1)).queued());  // a duplicate key: refused on replay
        for (std::int64_t id = 3; id <= 8; ++id)
            CHECK(db.insert(item(id)).queued());
        try {
            static_cast<void>(db.insert(item(9)));
            FAIL("a full queue must refuse");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == error_class::degraded);
            CHECK(std::string{e.what()}.find("full") != std::string::npos);
        }
    }
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 8);
    CHECK(db.health().queue_rejected == 1);
    CHECK(lines_in(path.string() + "-resilite-queue-rejected") == 1);
    CHECK(log.count("queue_rejected") == 1);
    // One write refused on replay is one failure (the replay's event counts it, not its echo).
    CHECK(db.health().failures_by_class[static_cast<std::size_t>(error_class::constraint)] == 1);
}

TEST_CASE("queue_writes: values come back exactly (REAL bits, text with NUL or not UTF-8, blobs, NULL, extremes)",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue1000>;
    const auto path = dir.path() / "a.db";
    Db db(path, options_for<Db>(log, clock));
    db.exec_script("CREATE TABLE v(k INTEGER PRIMARY KEY, x)");
    const std::vector<double> reals{-821182.317727955, 1e-310, std::numeric_limits<double>::max(),
                                    std::numeric_limits<double>::infinity(), -0.0, 0.1};
    const std::string nul{"a\0b", 3};
    const std::string latin1{"caf\xe9"};
    const resilite::blob bytes{std::byte{0}, std::byte{0xff}, std::byte{0x27}};
    {
        foreign_heal heal{path};
        std::int64_t k = 0;
        for (double d : reals)
            CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, d).queued());
        CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, nul).queued());
        CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, latin1).queued());
        CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, bytes).queued());
        CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, std::optional<int>{}).queued());
        CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, std::numeric_limits<std::int64_t>::min()).queued());
        CHECK(db.exec("INSERT INTO v VALUES(?1, ?2)", ++k, std::string{"it's"}).queued());
    }
    std::int64_t k = 0;
    for (double d : reals) {
        const auto got = db.query_one<double>("SELECT x FROM v WHERE k = ?", ++k);
        REQUIRE(got.has_value());
        CHECK(std::signbit(*got) == std::signbit(d));
        CHECK((*got == d || (std::isinf(d) && std::isinf(*got))));
    }
    CHECK(db.query_one<std::string>("SELECT x FROM v WHERE k = ?", ++k) == nul);
    CHECK(db.query_one<std::string>("SELECT x FROM v WHERE k = ?", ++k) == latin1);
    CHECK(db.query_one<resilite::blob>("SELECT x FROM v WHERE k = ?", ++k) == bytes);
    CHECK(db.query_one<std::string>("SELECT typeof(x) FROM v WHERE k = ?", ++k) == "null");
    CHECK(db.query_one<std::int64_t>("SELECT x FROM v WHERE k = ?", ++k) == std::numeric_limits<std::int64_t>::min());
    CHECK(db.query_one<std::string>("SELECT x FROM v WHERE k = ?", ++k) == "it's");
}

TEST_CASE("queue_writes: a write cut short by a crash is not replayed, a damaged queue is kept whole aside",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<Queue1000>;
    const auto path = dir.path() / "a.db";
    const auto queue = path.string() + "-resilite-queue";
    {
        Db db(path, options_for<Db>(log, clock));
        foreign_heal heal{path};
        CHECK(db.insert(item(1)).queued());
        CHECK(db.insert(item(2)).queued());
    }
    {  // the tail of an append a crash cut short
        std::ofstream out(queue, std::ios::app | std::ios::binary);
        out << "0badc0de {\"seq\":3,\"op\":\"ins";
    }
    {
        Db db(path, options_for<Db>(log, clock));  // replays at open
        CHECK(db.query_one<int>("SELECT count(*) FROM items") == 2);
        CHECK_FALSE(std::filesystem::exists(queue));
        foreign_heal heal{path};
        CHECK(db.insert(item(3)).queued());
        CHECK(db.insert(item(4)).queued());
    }
    {  // damage in the middle: the first entry's CRC no longer matches
        std::fstream f(queue, std::ios::in | std::ios::out | std::ios::binary);
        std::string header;
        std::getline(f, header);
        f.seekp(static_cast<std::streamoff>(header.size() + 1));
        f.put('f').put('f').put('f').put('f');
    }
    Db db(path, options_for<Db>(log, clock));
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 2);  // nothing of a damaged queue replayed
    CHECK_FALSE(std::filesystem::exists(queue));
    bool kept = false;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        kept = kept || e.path().filename().string().find("-resilite-queue.damaged-") != std::string::npos;
    CHECK(kept);
}

TEST_CASE("fail_fast: while this process heals, other threads fail at once and health() answers",
          "[degradation]") {
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    using Db = HealingDb<resilite::fail_fast>;
    std::mutex m;
    std::condition_variable cv;
    bool in_heal = false, release = false;
    auto o = options_for<Db>(log, clock);
    o.inject_failure = [&](std::string_view op, int) {
        if (op == "heal:verify") {
            std::unique_lock lock(m);
            in_heal = true;
            cv.notify_all();
            cv.wait(lock, [&] { return release; });
        }
        return SQLITE_OK;
    };
    Db db(dir.path() / "a.db", std::move(o));
    for (std::int64_t id = 1; id <= 5; ++id)
        db.insert(item(id));
    std::thread healer([&] { static_cast<void>(db.heal()); });
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return in_heal; });
    }
    require_degraded_at_once(clock, [&] { db.insert(item(6)); });
    require_degraded_at_once(clock, [&] { static_cast<void>(db.query_one<int>("SELECT 1")); });
    const auto h = db.health();
    CHECK(h.unavailable_reason == "healing");
    CHECK(db.current_settings() == db.current_settings());
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    healer.join();
    CHECK(db.health().available);
    CHECK(db.query_one<int>("SELECT count(*) FROM items") == 5);
}

namespace {

// P2: one mode under a random sequence of writes, reads and transactions while the database
// becomes unavailable (disk full, another process's heal) and available again, against a model.
template <class Mode>
void graceful_degradation() {
    constexpr bool tries_writes = resilite::degradation<Mode>::tries_writes;
    constexpr std::size_t capacity = resilite::degradation<Mode>::queue_capacity;
    constexpr bool queues = capacity > 0;
    test::temp_dir dir;
    test::event_log log;
    clock_t_ clock;
    std::atomic<bool> full{false};
    using Db = HealingDb<Mode>;
    auto o = options_for<Db>(log, clock);
    o.inject_failure = [&](std::string_view op, int) {
        return full && op != "query" && op != "get" && op != "select" ? SQLITE_FULL : SQLITE_OK;
    };
    Db db(dir.path() / "p2.db", std::move(o));
    db.exec_script("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    enum class state { available, disk_full, healing_elsewhere } st = state::available;
    bool known = false;  // the database has noticed (a write met the cause)
    std::optional<foreign_heal> heal;
    std::map<std::int64_t, std::string> committed;
    std::vector<std::pair<std::int64_t, std::string>> queued;
    const auto back = [&] {
        for (const auto& [k, v] : queued)
            committed[k] = v;
        queued.clear();
        st = state::available;
        known = false;
    };
    const auto degraded_class = [](const resilite::error& e) { return e.klass() == error_class::degraded; };
    // A write that meets the disk full gets `full`, and so does every write fail_fast tries
    // while it lasts; every other refusal is `degraded`.
    const auto write_error_expected = [&](const resilite::error& e) {
        if (st == state::disk_full && (!known || tries_writes)) return e.klass() == error_class::full;
        return degraded_class(e);
    };
    const auto steps = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 7));
    std::int64_t n = 0;
    for (const int step : steps) {
        ++n;
        const std::int64_t k = n % 5;
        const auto v = fmt::format("v{}", n);
        const bool unavailable = st != state::available;
        switch (step) {
            case 0:
            case 1: {  // a queueable write
                try {
                    const auto r = db.exec("INSERT INTO kv VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                                           k, v);
                    if constexpr (queues) {
                        if (unavailable) {
                            RC_ASSERT(r.queued());
                            RC_ASSERT(queued.size() < capacity);
                            RC_ASSERT(r.queue_seq >= 1);
                            queued.emplace_back(k, v);
                            known = true;
                        } else {
                            RC_ASSERT(r.committed());
                            committed[k] = v;
                        }
                    } else {
                        RC_ASSERT(!unavailable);
                        committed[k] = v;
                    }
                } catch (const resilite::error& e) {
                    RC_ASSERT(unavailable);
                    if (queues) RC_ASSERT(queued.size() == capacity);  // only a full queue refuses
                    RC_ASSERT(write_error_expected(e));
                    known = true;
                }
                break;
            }
            case 2: {  // a read
                try {
                    const auto count = db.template query_one<std::int64_t>("SELECT count(*) FROM kv");
                    RC_ASSERT(count == static_cast<std::int64_t>(committed.size()));
                    RC_ASSERT((!known || st != state::healing_elsewhere));
                } catch (const resilite::error& e) {
                    // Reads are refused only while the file is in doubt (a heal), never for disk full.
                    RC_ASSERT(degraded_class(e));
                    RC_ASSERT((known && st == state::healing_elsewhere));
                }
                break;
            }
            case 3: {  // a transaction: never queued
                try {
                    db.transaction([&](auto& tx) {
                        tx.exec("INSERT INTO kv VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v", k, v);
                    });
                    RC_ASSERT(!unavailable);
                    committed[k] = v;
                } catch (const resilite::error& e) {
                    RC_ASSERT(unavailable);
                    RC_ASSERT(write_error_expected(e));
                    known = true;
                }
                break;
            }
            case 4: {  // the disk fills up, or space is freed and a probe finds it
                if (st == state::available) {
                    full = true;
                    st = state::disk_full;
                } else if (st == state::disk_full) {
                    full = false;
                    clock.advance(db.current_settings().degradation.probe_max_interval);
                    db.maintain();
                    RC_ASSERT(db.health().available);
                    back();
                }
                break;
            }
            case 5: {  // another process starts or ends a heal
                if (st == state::available) {
                    heal.emplace(db.path());
                    st = state::healing_elsewhere;
                } else if (st == state::healing_elsewhere) {
                    heal.reset();
                    db.maintain();  // the background thread's round: finds the gate open, replays
                    RC_ASSERT(db.health().available);
                    back();
                }
                break;
            }
            default: {  // health() answers, and says what the database knows
                const auto h = db.health();
                RC_ASSERT(h.available == !(unavailable && known));
                RC_ASSERT(h.queue_depth == queued.size());
            }
        }
    }
    RC_ASSERT(clock.sleeps().empty());  // nothing waited: every refusal was at once
    heal.reset();
    full = false;
    clock.advance(db.current_settings().degradation.probe_max_interval);
    db.maintain();
    back();
    const auto rows = db.template query<std::int64_t, std::string>("SELECT k, v FROM kv ORDER BY k");
    std::map<std::int64_t, std::string> got;
    for (const auto& [k, v] : rows)
        got[k] = v;
    RC_ASSERT(got == committed);  // queued writes replayed in order, exactly once
    RC_ASSERT(db.health().available);
    RC_ASSERT(!std::filesystem::exists(db.path().string() + "-resilite-queue"));
}

}  // namespace

TEST_CASE("P2 graceful degradation", "[degradation][property][P2]") {
    rc::prop("fail_fast: refused at once during a heal, writes tried during disk full",
             [] { graceful_degradation<resilite::fail_fast>(); });
    rc::prop("read_only: reads served where the file is sound, writes refused until a probe",
             [] { graceful_degradation<resilite::read_only>(); });
    rc::prop("queue_writes: queued, replayed in order exactly once; a full queue an error",
             [] { graceful_degradation<resilite::queue_writes<4>>(); });
}

namespace {

// Reads 8-byte numbers from fd until EOF.
std::vector<std::int64_t> read_acks(int fd) {
    std::vector<std::int64_t> out;
    std::int64_t v = 0;
    std::size_t got = 0;
    char buf[8];
    for (;;) {
        const auto r = ::read(fd, buf + got, sizeof buf - got);
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
        if (got == sizeof buf) {
            std::memcpy(&v, buf, sizeof v);
            out.push_back(v);
            got = 0;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("queue_writes after sigkill at random moments: every acknowledged queued write is applied once, in order",
          "[degradation][sigkill]") {
    using Db = HealingDb<resilite::queue_writes<100000>>;
    std::mt19937_64 rng{20261203};
    for (int trial = 0; trial < 8; ++trial) {
        test::temp_dir dir;
        const auto path = dir.path() / "k.db";
        test::event_log log;
        {
            clock_t_ clock;
            Db db(path, options_for<Db>(log, clock));
            db.exec_script("CREATE TABLE seqlog(i INTEGER NOT NULL)");
        }
        int ready[2], go[2], acks[2];
        REQUIRE(::pipe(ready) == 0);
        REQUIRE(::pipe(go) == 0);
        REQUIRE(::pipe(acks) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {  // queues writes until killed; acknowledges each after it returned
            ::close(ready[0]);
            ::close(go[1]);
            ::close(acks[0]);
            try {
                clock_t_ clock;
                test::event_log child_log;
                Db db(path, options_for<Db>(child_log, clock));
                char c = 'r';
                if (::write(ready[1], &c, 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(3);
                for (std::int64_t i = 1;; ++i) {
                    const auto r = db.exec("INSERT INTO seqlog(i) VALUES(?1)", i);
                    if (!r.queued()) ::_exit(4);  // the gate is held: nothing may commit
                    if (::write(acks[1], &i, sizeof i) != sizeof i) ::_exit(5);
                }
            } catch (...) {
                ::_exit(6);
            }
        }
        ::close(ready[1]);
        ::close(go[0]);
        ::close(acks[1]);
        char c = 0;
        REQUIRE(::read(ready[0], &c, 1) == 1);
        {
            foreign_heal heal{path};  // from here on the database is unavailable to the child
            REQUIRE(::write(go[1], &c, 1) == 1);
            // Kill after a random number of acknowledgements (counted, not timed).
            const auto kill_after = std::uniform_int_distribution<std::int64_t>{1, 60}(rng);
            std::int64_t seen = 0;
            while (seen < kill_after) {
                std::int64_t v = 0;
                if (::read(acks[0], &v, sizeof v) != sizeof v) break;
                seen = v;
            }
            ::kill(child, SIGKILL);
            int status = 0;
            ::waitpid(child, &status, 0);
            REQUIRE(WIFSIGNALED(status));
            const auto rest = read_acks(acks[0]);
            const auto acked = rest.empty() ? seen : rest.back();
            ::close(acks[0]);
            ::close(ready[0]);
            ::close(go[1]);
            heal.end();
            // Replayed at open (a crash inside this replay is the next trial's concern below).
            clock_t_ clock;
            Db db(path, options_for<Db>(log, clock));
            const auto rows = db.query<std::int64_t>("SELECT i FROM seqlog ORDER BY rowid");
            INFO("trial " << trial << ", acknowledged " << acked << ", replayed " << rows.size());
            // Every acknowledged write, once, in order; the one in flight at the kill may be there too.
            REQUIRE((static_cast<std::int64_t>(rows.size()) == acked ||
                     static_cast<std::int64_t>(rows.size()) == acked + 1));
            for (std::size_t i = 0; i < rows.size(); ++i)
                CHECK(rows[i] == static_cast<std::int64_t>(i + 1));
            CHECK_FALSE(std::filesystem::exists(path.string() + "-resilite-queue"));
            CHECK_FALSE(std::filesystem::exists(path.string() + "-resilite-queue-rejected"));
        }
    }
}

TEST_CASE("queue_writes: a replay killed at a random moment, then replayed again, applies each write once",
          "[degradation][sigkill]") {
    using Db = HealingDb<resilite::queue_writes<100000>>;
    std::mt19937_64 rng{7};
    for (int trial = 0; trial < 8; ++trial) {
        test::temp_dir dir;
        const auto path = dir.path() / "r.db";
        test::event_log log;
        clock_t_ clock;
        constexpr std::int64_t writes = 100;
        {
            Db db(path, options_for<Db>(log, clock));
            db.exec_script("CREATE TABLE seqlog(i INTEGER NOT NULL)");
            foreign_heal heal{path};
            for (std::int64_t i = 1; i <= writes; ++i)
                REQUIRE(db.exec("INSERT INTO seqlog(i) VALUES(?1)", i).queued());
        }
        int acks[2];
        REQUIRE(::pipe(acks) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {  // replays at open, telling the parent how far it got
            ::close(acks[0]);
            try {
                clock_t_ child_clock;
                test::event_log child_log;
                auto o = options_for<Db>(child_log, child_clock);
                o.inject_failure = [fd = acks[1]](std::string_view op, int) {
                    if (op == "queue_replay") {
                        const std::int64_t one = 1;
                        static_cast<void>(::write(fd, &one, sizeof one));
                    }
                    return SQLITE_OK;
                };
                Db db(path, std::move(o));
            } catch (...) {
                ::_exit(6);
            }
            ::_exit(0);
        }
        ::close(acks[1]);
        const auto kill_after = std::uniform_int_distribution<int>{1, static_cast<int>(writes)}(rng);
        for (int seen = 0; seen < kill_after;) {
            std::int64_t v = 0;
            if (::read(acks[0], &v, sizeof v) != sizeof v) break;
            ++seen;
        }
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        ::close(acks[0]);
        Db db(path, options_for<Db>(log, clock));  // replays the rest
        const auto rows = db.query<std::int64_t>("SELECT i FROM seqlog ORDER BY rowid");
        INFO("trial " << trial << ", killed after " << kill_after << " replay steps");
        REQUIRE(static_cast<std::int64_t>(rows.size()) == writes);
        for (std::size_t i = 0; i < rows.size(); ++i)
            CHECK(rows[i] == static_cast<std::int64_t>(i + 1));
        CHECK_FALSE(std::filesystem::exists(path.string() + "-resilite-queue"));
    }
}

TEST_CASE("P14 non-database command continuity", "[degradation][property][P14]") {
    // While another thread holds the writer lock (a transaction, or a heal), every command that
    // does not need the database answers. Counted, not timed: the blocker lets go only after the
    // commands returned, so a command that waited for it would never return; the blocker's
    // 60-second limit only turns such a hang into a failure.
    rc::prop("health, metrics, settings (read and changed), queue acceptance and archive reading answer while the "
             "writer is held",
             [] {
        const bool heal = *rc::gen::arbitrary<bool>();
        const auto commands = *rc::gen::nonEmpty(rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 6)));
        test::temp_dir dir;
        test::event_log log;
        clock_t_ clock;
        using Db = HealingDb<Queue1000>;
        std::mutex m;
        std::condition_variable cv;
        bool held = false, release = false, gave_up = false;
        const auto hold = [&] {  // in the blocker: the writer lock is held here
            std::unique_lock lock(m);
            held = true;
            cv.notify_all();
            gave_up = !cv.wait_for(lock, std::chrono::seconds{60}, [&] { return release; });
        };
        auto o = options_for<Db>(log, clock);
        o.inject_failure = [&](std::string_view op, int) {
            if (heal && op == "heal:verify") hold();
            return SQLITE_OK;
        };
        Db db(dir.path() / "p14.db", std::move(o));
        for (std::int64_t id = 1; id <= 3; ++id)
            RC_ASSERT(db.insert(item(id)).committed());
        std::thread blocker([&] {
            if (heal) {
                static_cast<void>(db.heal());
            } else {
                db.transaction([&](auto& tx) {
                    tx.exec("UPDATE items SET score = score + 1");
                    hold();
                });
            }
        });
        {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return held; });
        }
        std::size_t answered = 0, queued = 0;
        for (const int c : commands) {
            switch (c) {
                case 0: {
                    const auto h = db.health();
                    RC_ASSERT((heal ? (!h.available && h.unavailable_reason == "healing") : h.database_busy));
                    break;
                }
                case 1:
                    RC_ASSERT(db.current_settings().retry.max_attempts >= 1);
                    break;
                case 2:
                    RC_ASSERT(db.health().operations >= 3);  // metrics
                    break;
                case 3: {
                    const auto report = resilite::inspect_archive(db.archive_directory());
                    RC_ASSERT(report.records >= 3);
                    break;
                }
                case 4: {  // settings accepted at once (applied when the writer lock is free)
                    auto next = db.current_settings();
                    next.statement_cache_capacity = 20 + answered;
                    db.reconfigure(next);
                    RC_ASSERT(db.current_settings().statement_cache_capacity == 20 + answered);
                    break;
                }
                default:
                    if (heal) {  // unavailable: a write is queued at once (busy is not unavailable)
                        RC_ASSERT(db.insert(item(100 + static_cast<std::int64_t>(answered))).queued());
                        ++queued;
                    }
            }
            ++answered;
        }
        {
            std::lock_guard lock(m);
            release = true;
        }
        cv.notify_all();
        blocker.join();
        RC_ASSERT(!gave_up);
        RC_ASSERT(answered == commands.size());
        RC_ASSERT(db.query_one<std::int64_t>("SELECT count(*) FROM items") == static_cast<std::int64_t>(3 + queued));
    });
}

TEST_CASE("P17 comprehensive operation logging: degradation and queue replay", "[degradation][property][P17]") {
    rc::prop("one event per refused, queued and replayed write; one per change of state", [] {
        const auto writes = *rc::gen::inRange(1, 12);
        const auto refused = *rc::gen::inRange(0, 4);
        test::temp_dir dir;
        test::event_log log;
        clock_t_ clock;
        using Db = HealingDb<Queue1000>;
        Db db(dir.path() / "p17.db", options_for<Db>(log, clock));
        log.clear();
        {
            foreign_heal heal{db.path()};
            for (int i = 1; i <= writes; ++i)
                RC_ASSERT(db.insert(item(i)).queued());
            for (int i = 0; i < refused; ++i) {
                try {
                    db.transaction([](auto& tx) { tx.exec("DELETE FROM items"); });
                    RC_FAIL("a transaction ran while another process heals");
                } catch (const resilite::error& e) {
                    RC_ASSERT(e.klass() == error_class::degraded);
                }
            }
        }
        RC_ASSERT(db.query_one<std::int64_t>("SELECT count(*) FROM items") == writes);
        const auto events = log.events();
        std::map<std::string, int> named;
        for (const auto& e : events) {
            ++named[e.name];
            if (e.name == "queue_replay") RC_ASSERT(e.result == resilite::outcome::ok);
            if (e.name == "transaction") {
                RC_ASSERT(e.result == resilite::outcome::failed);
                RC_ASSERT(e.error == error_class::degraded);
                RC_ASSERT(e.attempts == 1);
            }
        }
        // The first write met the refused commit, then was queued: one operation, its queued event.
        RC_ASSERT(named["insert"] == 0);
        RC_ASSERT(named["queued"] == writes);
        RC_ASSERT(named["transaction"] == refused);
        RC_ASSERT(named["degraded"] == 1);
        RC_ASSERT(named["recovered"] == 1);
        RC_ASSERT(named["queue_replay"] == writes + 2);  // the marker table, the marker read, each write
        RC_ASSERT(named["query"] == 1);
        RC_ASSERT(events.size() == static_cast<std::size_t>(writes + refused + 2 + writes + 2 + 1));
    });
}

}  // namespace flow_degradation_tests
