// resilite::error: classes, the fixed user-message table (P8) and the technical record (P9).
#include "support.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <cctype>
#include <set>
#include <thread>

using resilite::error;
using resilite::error_class;

namespace {
constexpr int primary_codes[] = {
    SQLITE_OK,       SQLITE_ERROR,      SQLITE_INTERNAL, SQLITE_PERM,      SQLITE_ABORT,   SQLITE_BUSY,
    SQLITE_LOCKED,   SQLITE_NOMEM,      SQLITE_READONLY, SQLITE_INTERRUPT, SQLITE_IOERR,   SQLITE_CORRUPT,
    SQLITE_NOTFOUND, SQLITE_FULL,       SQLITE_CANTOPEN, SQLITE_PROTOCOL,  SQLITE_EMPTY,   SQLITE_SCHEMA,
    SQLITE_TOOBIG,   SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_MISUSE,    SQLITE_NOLFS,   SQLITE_AUTH,
    SQLITE_FORMAT,   SQLITE_RANGE,      SQLITE_NOTADB,   SQLITE_NOTICE,    SQLITE_WARNING, SQLITE_ROW,
    SQLITE_DONE};

bool contains(std::string_view haystack, std::string_view needle) {
    return !needle.empty() && haystack.find(needle) != std::string_view::npos;
}

// Generates identifiers and values unlikely to occur in any fixed message by chance.
rc::Gen<std::string> marker(const char* prefix) {
    return rc::gen::map(rc::gen::inRange<std::uint32_t>(100000, 999999),
                        [prefix](std::uint32_t n) { return fmt::format("{}{}", prefix, n); });
}

enum class failure_kind { unique, not_null, check, datatype, syntax, no_table, busy, range, count };

struct expected_failure {
    int code;
    std::string sql;
};

// Provokes one real failure of the chosen kind, with `value` bound where there is a value.
expected_failure provoke(test::recording_db& db, const std::filesystem::path& path, failure_kind kind,
                         const std::string& value, const std::string& table) {
    db.exec_script(
        fmt::format("CREATE TABLE IF NOT EXISTS \"{0}\"(id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE "
                    "CHECK (length(v) < 100), n INTEGER) STRICT",
                    table));
    db.exec(fmt::format("INSERT OR IGNORE INTO \"{}\"(v) VALUES(?)", table), value);
    expected_failure f{};
    {
        switch (kind) {
            case failure_kind::unique:
                f = {SQLITE_CONSTRAINT_UNIQUE, fmt::format("INSERT INTO \"{}\"(v) VALUES(?)", table)};
                db.exec(f.sql, value);
                break;
            case failure_kind::not_null:
                f = {SQLITE_CONSTRAINT_NOTNULL, fmt::format("INSERT INTO \"{}\"(v) VALUES(?)", table)};
                db.exec(f.sql, nullptr);
                break;
            case failure_kind::check:
                f = {SQLITE_CONSTRAINT_CHECK, fmt::format("INSERT INTO \"{}\"(v) VALUES(?)", table)};
                db.exec(f.sql, value + std::string(120, 'x'));
                break;
            case failure_kind::datatype:
                f = {SQLITE_CONSTRAINT_DATATYPE, fmt::format("INSERT INTO \"{}\"(v, n) VALUES(?, ?)", table)};
                db.exec(f.sql, value + "dt", value);
                break;
            case failure_kind::syntax:
                f = {SQLITE_ERROR, fmt::format("INSERT INTO \"{}\" VALUES ({}", table, value.size())};
                db.exec(f.sql);
                break;
            case failure_kind::no_table:
                f = {SQLITE_ERROR, fmt::format("SELECT v FROM \"{}_missing\" WHERE v = ?", table)};
                static_cast<void>(db.query<std::string>(f.sql, value));
                break;
            case failure_kind::busy: {
                // Another connection holds the write lock; with no busy wait SQLite says BUSY.
                resilite::sqlite::connection other{path};
                other.exec("BEGIN IMMEDIATE");
                auto s = db.current_settings();
                s.busy_timeout = std::chrono::milliseconds{0};
                db.reconfigure(s);
                f = {SQLITE_BUSY, fmt::format("INSERT INTO \"{}\"(v) VALUES(?)", table)};
                try {
                    db.exec(f.sql, value + "busy");
                } catch (...) {
                    s.busy_timeout = std::chrono::milliseconds{5000};
                    db.reconfigure(s);
                    throw;
                }
                break;
            }
            case failure_kind::range:
                f = {SQLITE_RANGE, fmt::format("SELECT v FROM \"{}\" WHERE v = ?", table)};
                static_cast<void>(db.query<std::string>(f.sql, value, value));
                break;
            case failure_kind::count:
                break;
        }
    }
    throw std::logic_error("the failure was not provoked");
}
}  // namespace

TEST_CASE("every primary result code maps to an error class with a name and message", "[error]") {
    std::set<int> seen;
    for (int code : primary_codes) {
        const auto c = resilite::classify(code);
        seen.insert(code);
        CHECK_FALSE(resilite::name(c).empty());
        CHECK_FALSE(resilite::user_message(c).empty());
        if (code != SQLITE_OK) CHECK(c != error_class::none);
        CHECK(resilite::detail::result_code_name(code) != "SQLITE_UNKNOWN");
    }
    CHECK(seen.size() == 31);
    CHECK(resilite::classify(SQLITE_BUSY_SNAPSHOT) == error_class::busy);
    CHECK(resilite::classify(SQLITE_IOERR_FSYNC) == error_class::io);
    CHECK(resilite::classify(SQLITE_CORRUPT_INDEX) == error_class::corrupt);
    CHECK(resilite::detail::result_code_name(SQLITE_BUSY_SNAPSHOT) == "SQLITE_BUSY_SNAPSHOT");
    CHECK(resilite::sqlite_category().message(SQLITE_CONSTRAINT_UNIQUE).find("SQLITE_CONSTRAINT_UNIQUE") !=
          std::string::npos);
}

TEST_CASE("error is a system_error carrying class, user message and technical detail", "[error]") {
    resilite::technical_detail d;
    d.operation = "exec";
    d.sql = "DELETE FROM t";
    d.extended_code = SQLITE_IOERR_FSYNC;
    d.code_name = "SQLITE_IOERR_FSYNC";
    d.sqlite_message = "disk I/O error";
    d.database_path = "/data/app.db";
    const error e{error_class::io, d};
    const std::system_error& base = e;
    CHECK(base.code().value() == SQLITE_IOERR_FSYNC);
    CHECK(base.code().category() == resilite::sqlite_category());
    CHECK(e.user_message() == resilite::user_message(error_class::io));
    CHECK_THAT(std::string{e.what()},
               Catch::Contains("SQLITE_IOERR_FSYNC") && Catch::Contains("/data/app.db"));
    static_assert(std::is_nothrow_copy_constructible_v<error>);
    error copy = e;
    copy.annotate(3, std::chrono::milliseconds{12});
    CHECK(e.technical().attempt == 3);  // shared state: every copy sees the annotation
    CHECK_THAT(std::string{copy.what()}, Catch::Contains("attempt 3"));

    const auto lib = resilite::detail::library_failure(error_class::invalid_setting, "reconfigure", "why");
    CHECK(lib.code().category() == resilite::resilite_category());
    CHECK(lib.code().value() == static_cast<int>(error_class::invalid_setting));
    CHECK(lib.code().message() == "invalid_setting");
}

TEST_CASE("P8 user-friendly error messages", "[error][property][P8]") {
    // Every class: a non-empty message from the fixed table, distinct per class.
    std::set<std::string_view> messages;
    for (std::size_t i = 0; i < resilite::error_class_count; ++i) {
        const auto c = static_cast<error_class>(i);
        CHECK_FALSE(resilite::user_message(c).empty());
        messages.insert(resilite::user_message(c));
    }
    CHECK(messages.size() == resilite::error_class_count);

    rc::prop("real failures show only the fixed message, never SQL, values or paths", [] {
        const auto kind = *rc::gen::inRange(0, static_cast<int>(failure_kind::count));
        const auto value = *marker("val");
        const auto table = *marker("tbl");
        const auto dir_name = *marker("dir");
        test::temp_dir dir;
        std::filesystem::create_directory(dir / dir_name);
        const auto path = dir / dir_name / "app.db";
        test::event_log log;
        test::recording_db db{path, test::recording(log)};
        try {
            provoke(db, path, static_cast<failure_kind>(kind), value, table);
            RC_FAIL("no failure");
        } catch (const error& e) {
            const auto msg = e.user_message();
            RC_ASSERT(!msg.empty());
            RC_ASSERT(msg == resilite::user_message(e.klass()));
            RC_ASSERT(!contains(msg, value));
            RC_ASSERT(!contains(msg, table));
            RC_ASSERT(!contains(msg, dir_name));
            RC_ASSERT(!contains(msg, path.string()));
            RC_ASSERT(!contains(msg, "INSERT"));
            RC_ASSERT(!contains(msg, "SELECT"));
            // ...while the technical record does name them.
            RC_ASSERT(contains(e.what(), table));
        }
    });
}

TEST_CASE("P9 detailed technical logging", "[error][property][P9]") {
    rc::prop("every failure records operation, SQL, code and name, message, attempt, elapsed", [] {
        const auto kind =
            static_cast<failure_kind>(*rc::gen::inRange(0, static_cast<int>(failure_kind::count)));
        const auto value = *marker("val");
        const auto table = *marker("tbl");
        test::temp_dir dir;
        const auto path = dir / "app.db";
        test::event_log log;
        test::recording_db db{path, test::recording(log)};
        try {
            provoke(db, path, kind, value, table);
            RC_FAIL("no failure");
        } catch (const error& e) {
            const auto& t = e.technical();
            RC_ASSERT(!t.operation.empty());
            RC_ASSERT(contains(t.sql, table));
            RC_ASSERT(!contains(t.sql, value));  // bound values stay out of the record
            RC_ASSERT(t.extended_code != SQLITE_OK);
            RC_ASSERT(t.code_name == resilite::detail::result_code_name(t.extended_code));
            RC_ASSERT(!t.sqlite_message.empty());
            // Busy is retried (test::fast_retry: 4 attempts), then reported as exhausted with
            // the busy error as its cause; nothing else is retried.
            const bool retried = kind == failure_kind::busy;
            RC_ASSERT(t.attempt == (retried ? 4 : 1));
            if (retried) {
                RC_ASSERT(e.klass() == resilite::error_class::retry_exhausted);
                const auto cause = e.cause();
                RC_ASSERT(cause.has_value());
                RC_ASSERT(cause->klass() == resilite::error_class::busy);
            } else {
                RC_ASSERT(!e.cause().has_value());
            }
            RC_ASSERT(t.elapsed > std::chrono::nanoseconds{0});
            RC_ASSERT(t.database_path == path.string());
            RC_ASSERT(e.code().value() == t.extended_code);
            switch (kind) {
                case failure_kind::unique:
                    RC_ASSERT(t.extended_code == SQLITE_CONSTRAINT_UNIQUE);
                    break;
                case failure_kind::not_null:
                    RC_ASSERT(t.extended_code == SQLITE_CONSTRAINT_NOTNULL);
                    break;
                case failure_kind::check:
                    RC_ASSERT(t.extended_code == SQLITE_CONSTRAINT_CHECK);
                    break;
                case failure_kind::datatype:
                    RC_ASSERT(t.extended_code == SQLITE_CONSTRAINT_DATATYPE);
                    break;
                case failure_kind::syntax:
                case failure_kind::no_table:
                    RC_ASSERT(t.extended_code == SQLITE_ERROR);
                    break;
                case failure_kind::busy:
                    RC_ASSERT((t.extended_code & 0xff) == SQLITE_BUSY);
                    break;
                case failure_kind::range:
                    RC_ASSERT(t.extended_code == SQLITE_RANGE);
                    break;
                case failure_kind::count:
                    break;
            }
            // The observer got the same record.
            const auto events = log.events();
            const auto failed = std::find_if(events.rbegin(), events.rend(), [](const auto& ev) {
                return ev.result == resilite::outcome::failed;
            });
            RC_ASSERT(failed != events.rend());
            RC_ASSERT(failed->error == e.klass());
            RC_ASSERT(failed->detail == std::string{e.what()});
        }
    });
}

TEST_CASE("errors resilite raises itself carry a RESILITE_ code name, one per class", "[error]") {
    std::set<std::string> names;
    for (std::size_t i = 1; i < resilite::error_class_count; ++i) {  // `none` is never thrown
        const auto c = static_cast<error_class>(i);
        std::string expected = "RESILITE_";
        for (char ch : resilite::name(c))
            expected += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        const auto lib = resilite::detail::library_failure(c, "op", "why");
        CHECK(lib.technical().code_name == expected);
        CHECK(resilite::detail::library_code_name(c) == expected);
        CHECK_THAT(std::string{lib.what()}, Catch::Contains(expected));
        names.insert(lib.technical().code_name);
        // Built directly, without a SQLite code, the same.
        CHECK(error(c, resilite::technical_detail{}).technical().code_name == expected);
    }
    CHECK(names.size() == resilite::error_class_count - 1);

    // A real one: a lossy read.
    test::temp_dir dir;
    resilite::sqlite::connection c{dir / "c.db"};
    try {
        static_cast<void>(c.query_one<std::int64_t>("SELECT 'abc'"));
        FAIL("no error");
    } catch (const error& e) {
        CHECK(e.technical().code_name == "RESILITE_MISMATCH");
        CHECK(e.technical().extended_code == SQLITE_OK);
    }
    // An error with a SQLite code keeps SQLite's name.
    resilite::technical_detail d;
    d.extended_code = SQLITE_BUSY;
    d.code_name = "SQLITE_BUSY";
    CHECK(error(error_class::retry_exhausted, d).technical().code_name == "SQLITE_BUSY");
}
