// The optional spdlog observer: events reach an spdlog logger at the level their outcome says.
#include "support.hpp"

#include <resilite/policy/spdlog_observer.hpp>

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <sstream>
#include <string>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace policy_spdlog_observer_tests {

TEST_CASE("spdlog observer: failures as errors, successes as debug, filtered by the logger's level", "[observer]") {
    test::temp_dir dir;
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto logger = std::make_shared<spdlog::logger>("resilite-test", sink);
    logger->set_pattern("%l|%v");
    logger->set_level(spdlog::level::debug);
    using Db = resilite::Database<resilite::spdlog_observer, test::manual_durability>;
    Db::options o;
    o.observer.logger = logger;
    Db db{dir / "s.db", o};
    db.exec_script("CREATE TABLE t(x INTEGER PRIMARY KEY)");
    static_cast<void>(db.exec("INSERT INTO t VALUES(1)"));
    CHECK_THROWS_AS(db.exec("INSERT INTO t VALUES(1)"), resilite::error);  // a constraint
    logger->flush();
    const auto text = out.str();
    CHECK(text.find("debug|resilite: exec ok (1 rows, 1 attempt") != std::string::npos);
    CHECK(text.find("error|resilite: exec failed, class constraint") != std::string::npos);

    // At level warn, successes cost nothing and are not written.
    out.str("");
    logger->set_level(spdlog::level::warn);
    static_cast<void>(db.exec("INSERT INTO t VALUES(2)"));
    CHECK_THROWS_AS(db.exec("INSERT INTO t VALUES(2)"), resilite::error);
    logger->flush();
    CHECK(out.str().find("debug|") == std::string::npos);
    CHECK(out.str().find("error|resilite: exec failed") != std::string::npos);
    resilite::event retry;
    retry.name = "retry";
    CHECK(resilite::spdlog_observer::level_of(retry) == spdlog::level::trace);
}

}  // namespace policy_spdlog_observer_tests
