// Corruption operators and the health check (P11), and what open does with a damaged file.
#include "support.hpp"

#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <random>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace testing_corruption_tests {

using resilite::check_health;
using resilite::check_level;
using F = resilite::health_report::finding;

namespace {
// A random database of a few tables, each with a single-column index and rows of varied sizes
// (with `overflow`, some spill onto overflow pages). No deletes, so every page is in use.
// Leaves the data in the main file (TRUNCATE checkpoint) unless `keep_wal`, when the last
// commits stay in the WAL.
void build(const std::filesystem::path& path, std::mt19937_64& rng, bool keep_wal, bool overflow) {
    resilite::sqlite::connection c{path};
    c.exec_script("PRAGMA journal_mode=WAL");
    const int tables = 1 + static_cast<int>(rng() % 3);
    for (int t = 0; t < tables; ++t) {
        c.exec_script(
            fmt::format("CREATE TABLE t{0}(id INTEGER PRIMARY KEY, a TEXT, b INTEGER);"
                        "CREATE INDEX t{0}_a ON t{0}(a);",
                        t));
        resilite::sqlite::transaction tx{c};
        const int rows = 20 + static_cast<int>(rng() % 200);
        for (int r = 0; r < rows; ++r) {
            c.exec(fmt::format("INSERT INTO t{}(a, b) VALUES(?, ?)", t),
                   std::string(1 + rng() % (overflow && r % 17 == 0 ? 6000 : 300),
                               static_cast<char>('a' + r % 26)),
                   static_cast<std::int64_t>(rng() % 1000));
        }
        tx.commit();
    }
    if (keep_wal) {
        sqlite3_db_config(c.native_handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        c.exec_script("PRAGMA wal_checkpoint(TRUNCATE)");
        for (int r = 0; r < 6; ++r) {
            c.exec("INSERT INTO t0(a, b) VALUES(?, ?)", std::string(500, 'w'), r);  // frames stay in the WAL
        }
    } else {
        c.exec_script("PRAGMA wal_checkpoint(TRUNCATE)");
    }
}

bool detected(const std::filesystem::path& path, check_level level) {
    return !check_health(path, level).ok();
}

std::uint32_t page_count(const std::filesystem::path& path) {
    resilite::sqlite::connection c{path, SQLITE_OPEN_READONLY};
    return static_cast<std::uint32_t>(c.query_one<std::int64_t>("PRAGMA page_count").value_or(0));
}
}  // namespace

TEST_CASE("P11 integrity checking", "[health][property][P11]") {
    test::temp_dir dir;
    int case_number = 0;
    rc::prop("untouched databases check ok; every corruption operator is detected at its level", [&] {
        std::mt19937_64 rng{*rc::gen::arbitrary<std::uint64_t>()};
        const int op = *rc::gen::inRange(0, 7);
        const auto path = dir / fmt::format("p11-{}.db", ++case_number);
        // zero_page is promised to be caught on b-tree pages; the content of the last page of an
        // overflow chain is not structure, so no check can see it zeroed: keep those out.
        build(path, rng, op == 5, op != 1);
        resilite::detail::write_marker(path);  // as if resilite had created it
        for (auto level : {check_level::header, check_level::quick, check_level::full}) {
            RC_ASSERT(check_health(path, level).result == F::ok);
        }
        switch (op) {
            case 0:
                resilite::testing::overwrite_header(path, rng);
                RC_ASSERT(detected(path, check_level::header));
                break;
            case 1: {
                const auto pages = page_count(path);
                RC_PRE(pages >= 3);
                resilite::testing::zero_page(path, 2 + static_cast<std::uint32_t>(rng() % (pages - 1)));
                RC_ASSERT(detected(path, check_level::quick));
                RC_ASSERT(detected(path, check_level::full));
                break;
            }
            case 2:
                RC_PRE(page_count(path) >= 2);
                resilite::testing::truncate_file(path, resilite::testing::truncation::half);
                RC_ASSERT(check_health(path, check_level::header).result == F::bad_header);
                break;
            case 3:
                resilite::testing::truncate_file(path, resilite::testing::truncation::fifty_bytes);
                RC_ASSERT(check_health(path, check_level::header).result == F::bad_header);
                break;
            case 4:
                resilite::testing::truncate_file(path, resilite::testing::truncation::zero);
                RC_ASSERT(check_health(path, check_level::header).result == F::emptied);
                break;
            case 5: {
                // A frame of any transaction but the last (see flip_wal_byte).
                const auto commits = resilite::testing::wal_commit_frames(path);
                RC_ASSERT(commits.size() >= 2);
                const auto before_last = commits[commits.size() - 2];
                resilite::testing::flip_wal_byte(path, 1 + static_cast<std::uint32_t>(rng() % before_last), rng);
                RC_ASSERT(check_health(path, check_level::header).result == F::bad_wal);
                break;
            }
            default: {
                resilite::testing::swap_index_definition(path);
                RC_ASSERT(check_health(path, check_level::full).result == F::corrupt);
                RC_ASSERT(check_health(path, check_level::quick).result ==
                          F::ok);  // only integrity_check sees it
                break;
            }
        }
    });
}

TEST_CASE("health: a new file, an emptied one and a missing one are told apart", "[health]") {
    test::temp_dir dir;
    const auto path = dir / "h.db";
    CHECK(check_health(path).result == F::new_database);
    { std::ofstream touch(path); }
    CHECK(check_health(path).result == F::new_database);  // empty, never initialised
    std::filesystem::remove(path);
    { resilite::Database<resilite::null_observer> db{path}; }
    CHECK(std::filesystem::exists(resilite::detail::marker_path(path)));
    CHECK(check_health(path, check_level::full).result == F::ok);
    resilite::testing::truncate_file(path, resilite::testing::truncation::zero);
    CHECK(check_health(path).result == F::emptied);
    std::filesystem::remove(path);
    CHECK(check_health(path).result == F::missing);
}

TEST_CASE("open refuses an emptied or damaged database instead of writing over it", "[health]") {
    test::temp_dir dir;
    const auto path = dir / "o.db";
    {
        resilite::Database<resilite::null_observer> db{path};
        db.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES(1);");
    }
    resilite::testing::truncate_file(path, resilite::testing::truncation::zero);
    try {
        resilite::Database<resilite::null_observer> db{path};
        FAIL("opened an emptied database");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::corrupt);
        CHECK_THAT(e.technical().note, Catch::Contains("emptied"));
    }
    CHECK(std::filesystem::file_size(path) == 0);  // left as found
    std::mt19937_64 rng{3};
    {
        std::filesystem::remove(path);
        std::filesystem::remove(resilite::detail::marker_path(path));
        resilite::Database<resilite::null_observer> db{path};
        db.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES(1);");
    }
    resilite::testing::overwrite_header(path, rng);
    try {
        resilite::Database<resilite::null_observer> db{path};
        FAIL("opened a database with a damaged header");
    } catch (const resilite::error& e) {
        CHECK((e.klass() == resilite::error_class::corrupt ||
               e.klass() == resilite::error_class::not_a_database));
    }
}

}  // namespace testing_corruption_tests
