// Observer policies: stderr (default), callback, null.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

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

TEST_CASE("callback observer receives structured events; null observer costs nothing", "[observer]") {
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
