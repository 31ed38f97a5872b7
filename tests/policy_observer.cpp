// Observer policies: stderr (default), callback, null.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace policy_observer_tests {

namespace {
// Captures what is written to file descriptor 2 while alive.
class stderr_capture {
public:
    explicit stderr_capture(std::filesystem::path file) : file_(std::move(file)) {
        std::fflush(stderr);
        saved_ = ::dup(2);
        std::FILE* f = std::fopen(file_.c_str(), "w");
        ::dup2(::fileno(f), 2);
        std::fclose(f);
    }
    std::string finish() {
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        std::ifstream in(file_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

private:
    std::filesystem::path file_;
    int saved_ = -1;
};
}  // namespace

TEST_CASE("stderr observer prints failures and warnings, not successes", "[observer]") {
    test::temp_dir dir;
    stderr_capture capture{dir / "stderr.txt"};
    std::string out;
    {
        resilite::Database<resilite::wal_durability<resilite::synchronous::full, 60, 64, false>> db{dir /
                                                                                                    "s.db"};
        db.exec_script("CREATE TABLE t(x NOT NULL)");
        db.exec("INSERT INTO t VALUES(1)");
        try {
            db.exec("INSERT INTO t VALUES(NULL)");
        } catch (const resilite::error&) {
        }
    }
    out = capture.finish();
    CHECK_THAT(out, Catch::Contains("resilite: exec failed"));
    CHECK_THAT(out, Catch::Contains("SQLITE_CONSTRAINT_NOTNULL"));
    CHECK_THAT(out, !Catch::Contains("exec ok"));
    CHECK_THAT(out, !Catch::Contains("open ok"));
}

TEST_CASE("stderr observer at level ok prints every operation", "[observer]") {
    test::temp_dir dir;
    stderr_capture capture{dir / "stderr.txt"};
    {
        resilite::Database<resilite::stderr_observer<resilite::outcome::ok>,
                           resilite::wal_durability<resilite::synchronous::full, 60, 64, false>>
            db{dir / "s.db"};
        db.exec_script("CREATE TABLE t(x)");
    }
    const auto out = capture.finish();
    CHECK_THAT(out, Catch::Contains("resilite: open ok"));
    CHECK_THAT(out, Catch::Contains("resilite: exec_script ok"));
    CHECK_THAT(out, Catch::Contains("resilite: close ok"));
}

TEST_CASE("callback observer receives structured events, null observer costs nothing", "[observer]") {
    test::temp_dir dir;
    test::event_log log;
    {
        test::recording_db db{dir / "c.db", test::recording(log)};
        db.exec_script("CREATE TABLE t(x)");
    }
    const auto events = log.events();
    REQUIRE(events.size() == 3);
    CHECK(events[0].name == "open");
    CHECK(events[1].name == "exec_script");
    CHECK(events[2].name == "close");
    STATIC_REQUIRE_FALSE(resilite::null_observer::enabled);
    STATIC_REQUIRE(std::is_empty_v<resilite::null_observer>);
    STATIC_REQUIRE(resilite::observer_policy<resilite::null_observer>);
    STATIC_REQUIRE(resilite::observer_policy<resilite::callback_observer>);
}

namespace {
// Runs one INSERT whose first `busy_attempts` attempts fail with SQLITE_BUSY (injected, so no
// timing is involved) under a stderr observer, and returns what was printed.
template <class Observer>
std::string retried_insert(const test::temp_dir& dir, int busy_attempts, bool expect_failure) {
    using Db = resilite::Database<Observer, test::manual_durability, test::fast_retry>;
    stderr_capture capture{dir / "stderr.txt"};
    {
        auto armed = std::make_shared<bool>(false);
        typename Db::options options;
        options.inject_failure = [armed, busy_attempts](std::string_view op, int attempt) {
            return *armed && op == "exec" && attempt <= busy_attempts ? SQLITE_BUSY : SQLITE_OK;
        };
        Db db{dir / "r.db", options};
        db.exec_script("CREATE TABLE IF NOT EXISTS t(x)");
        *armed = true;
        try {
            db.exec("INSERT INTO t VALUES(1)");
            CHECK_FALSE(expect_failure);
        } catch (const resilite::error& e) {
            CHECK(expect_failure);
            CHECK(e.klass() == resilite::error_class::retry_exhausted);
        }
        *armed = false;
    }
    return capture.finish();
}

std::size_t lines_containing(const std::string& text, std::string_view what) {
    std::size_t n = 0;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);)
        n += line.find(what) != std::string::npos ? 1 : 0;
    return n;
}
}  // namespace

TEST_CASE("stderr observer prints a retried operation once with its attempt count, not every retry",
          "[observer]") {
    test::temp_dir dir;
    SECTION("an operation that succeeds after retries: one line with the count") {
        const auto out = retried_insert<resilite::stderr_observer<>>(dir, 2, false);
        CHECK(lines_containing(out, "resilite: retry") == 0);
        CHECK(lines_containing(out, "resilite: exec ok (1 rows, 3 attempts") == 1);
        CHECK(lines_containing(out, "resilite:") == 1);
    }
    SECTION("an operation that finally fails: its failure line only") {
        const auto out = retried_insert<resilite::stderr_observer<>>(dir, 1000, true);
        CHECK(lines_containing(out, "resilite: retry") == 0);
        CHECK(lines_containing(out, "resilite: exec failed (0 rows, 4 attempts") == 1);
        CHECK(lines_containing(out, "resilite:") == 1);
    }
    SECTION("at level ok every retry is printed too") {
        const auto out = retried_insert<resilite::stderr_observer<resilite::outcome::ok>>(dir, 2, false);
        CHECK(lines_containing(out, "resilite: retry warning") == 2);
        CHECK(lines_containing(out, "resilite: exec ok (1 rows, 3 attempts") == 1);
    }
}

}  // namespace policy_observer_tests
