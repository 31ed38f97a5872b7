// Binding and reading back every supported type through resilite::sqlite::statement.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <limits>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace sqlite_statement_tests {

using resilite::sqlite::connection;

namespace {
// Writes one value into a fresh row and reads it back as T.
template <class T, class In>
T round_trip(connection& c, const In& value) {
    c.exec("DELETE FROM v");
    c.exec("INSERT INTO v(x) VALUES(?)", value);
    auto back = c.query_one<T>("SELECT x FROM v");
    REQUIRE(back.has_value());
    return *back;
}

struct fixture {
    test::temp_dir dir;
    connection c{dir / "values.db"};
    fixture() { c.exec("CREATE TABLE v(x)"); }
};
}  // namespace

TEST_CASE("binding round trips: integers, floating point and bool", "[sqlite][statement]") {
    fixture f;
    CHECK(round_trip<int>(f.c, 42) == 42);
    CHECK(round_trip<int>(f.c, -7) == -7);
    CHECK(round_trip<std::int64_t>(f.c, std::numeric_limits<std::int64_t>::max()) ==
          std::numeric_limits<std::int64_t>::max());
    CHECK(round_trip<std::int64_t>(f.c, std::numeric_limits<std::int64_t>::min()) ==
          std::numeric_limits<std::int64_t>::min());
    CHECK(round_trip<std::uint32_t>(f.c, std::uint32_t{4'000'000'000u}) == 4'000'000'000u);
    CHECK(round_trip<double>(f.c, 3.25) == 3.25);
    CHECK(round_trip<double>(f.c, -0.1) == -0.1);
    CHECK(round_trip<bool>(f.c, true) == true);
    CHECK(round_trip<bool>(f.c, false) == false);
    CHECK(f.c.query_one<std::string>("SELECT typeof(x) FROM v") == "integer");
}

TEST_CASE("binding round trips: text with embedded NULs, views and empty strings", "[sqlite][statement]") {
    fixture f;
    const std::string with_nul{"a\0b\0\0c", 6};
    CHECK(round_trip<std::string>(f.c, with_nul) == with_nul);
    CHECK(f.c.query_one<std::int64_t>("SELECT length(CAST(x AS BLOB)) FROM v") == 6);
    CHECK(round_trip<std::string>(f.c, std::string_view{"view"}) == "view");
    CHECK(round_trip<std::string>(f.c, "literal") == "literal");
    CHECK(round_trip<std::string>(f.c, std::string{}).empty());
    CHECK(f.c.query_one<std::string>("SELECT typeof(x) FROM v") == "text");  // '' is not NULL
    CHECK(round_trip<std::string>(f.c, std::string_view{}).empty());
    CHECK(f.c.query_one<std::string>("SELECT typeof(x) FROM v") == "text");
    const std::string utf8 = "Grüße, 世界";
    CHECK(round_trip<std::string>(f.c, utf8) == utf8);
    // A view read inside a lazy range is valid until the next step.
    for (auto v : f.c.query<std::string_view>("SELECT x FROM v"))
        CHECK(v == utf8);
}

TEST_CASE("binding round trips: blobs, empty and large", "[sqlite][statement]") {
    fixture f;
    resilite::blob all_bytes;
    for (int i = 0; i < 256; ++i)
        all_bytes.push_back(static_cast<std::byte>(i));
    CHECK(round_trip<resilite::blob>(f.c, all_bytes) == all_bytes);
    CHECK(round_trip<resilite::blob>(f.c, std::span<const std::byte>{all_bytes}) == all_bytes);
    const std::vector<std::uint8_t> small{0, 1, 255};
    CHECK(round_trip<std::vector<std::uint8_t>>(f.c, small) == small);
    CHECK(round_trip<resilite::blob>(f.c, resilite::blob{}).empty());
    CHECK(f.c.query_one<std::string>("SELECT typeof(x) FROM v") == "blob");  // not NULL

    resilite::blob large(16u << 20);
    for (std::size_t i = 0; i < large.size(); ++i)
        large[i] = static_cast<std::byte>((i * 131) ^ (i >> 9));
    CHECK(round_trip<resilite::blob>(f.c, large) == large);
}

TEST_CASE("binding round trips: optional and nullptr", "[sqlite][statement]") {
    fixture f;
    CHECK(round_trip<std::optional<int>>(f.c, std::optional<int>{5}) == 5);
    CHECK_FALSE(round_trip<std::optional<int>>(f.c, std::optional<int>{}).has_value());
    CHECK_FALSE(round_trip<std::optional<std::string>>(f.c, nullptr).has_value());
    CHECK(f.c.query_one<std::string>("SELECT typeof(x) FROM v") == "null");
    CHECK(round_trip<std::optional<std::string>>(f.c, std::optional<std::string>{"x"}) == "x");
    const char* none = nullptr;
    CHECK_FALSE(round_trip<std::optional<std::string>>(f.c, none).has_value());
}

TEST_CASE("reading NULL into a non-optional type is a mismatch error", "[sqlite][statement]") {
    fixture f;
    f.c.exec("INSERT INTO v(x) VALUES(NULL)");
    try {
        static_cast<void>(f.c.query_one<int>("SELECT x FROM v"));
        FAIL("no error");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::mismatch);
        CHECK_THAT(e.technical().note, Catch::Contains("std::optional"));
    }
}

namespace {
// The mismatch error of reading `sql`'s only column as T, or a failure when there is none.
template <class T>
resilite::error read_error(connection& c, const std::string& sql) {
    try {
        static_cast<void>(c.query_one<T>(sql));
    } catch (const resilite::error& e) {
        return e;
    }
    FAIL("reading " << sql << " gave no error");
    throw std::logic_error("unreachable");
}

void check_mismatch(const resilite::error& e, std::string_view storage, std::string_view cpp) {
    CHECK(e.klass() == resilite::error_class::mismatch);
    CHECK_THAT(e.technical().note, Catch::Contains("column 0 ('x')"));
    CHECK_THAT(e.technical().note, Catch::Contains(std::string{storage}));
    CHECK_THAT(e.technical().note, Catch::Contains(std::string{cpp}));
    CHECK(e.technical().operation == "read column");
}
}  // namespace

TEST_CASE("reads that cannot be exact are mismatch errors naming column and both types",
          "[sqlite][statement]") {
    fixture f;
    SECTION("text, blob or a fraction into an integer") {
        check_mismatch(read_error<std::int64_t>(f.c, "SELECT 'abc' AS x"), "TEXT", "std::int64_t");
        check_mismatch(read_error<int>(f.c, "SELECT '12' AS x"), "TEXT", "std::int32_t");
        check_mismatch(read_error<std::int64_t>(f.c, "SELECT x'01' AS x"), "BLOB", "std::int64_t");
        check_mismatch(read_error<std::int64_t>(f.c, "SELECT 2.75 AS x"), "REAL", "std::int64_t");
        check_mismatch(read_error<int>(f.c, "SELECT 1e300 AS x"), "REAL", "std::int32_t");
        check_mismatch(read_error<bool>(f.c, "SELECT 'yes' AS x"), "TEXT", "bool");
    }
    SECTION("integers out of the C++ type's range") {
        check_mismatch(read_error<int>(f.c, "SELECT 3000000000 AS x"), "INTEGER", "std::int32_t");
        check_mismatch(read_error<std::int16_t>(f.c, "SELECT -40000 AS x"), "INTEGER", "std::int16_t");
        check_mismatch(read_error<std::uint32_t>(f.c, "SELECT -1 AS x"), "INTEGER", "std::uint32_t");
        check_mismatch(read_error<std::uint8_t>(f.c, "SELECT 256 AS x"), "INTEGER", "std::uint8_t");
        check_mismatch(read_error<bool>(f.c, "SELECT 2 AS x"), "INTEGER", "bool");
        check_mismatch(read_error<std::optional<int>>(f.c, "SELECT 3000000000 AS x"), "INTEGER",
                       "std::int32_t");
    }
    SECTION("text, blob or an inexact integer into a floating point type") {
        check_mismatch(read_error<double>(f.c, "SELECT 'abc' AS x"), "TEXT", "double");
        check_mismatch(read_error<double>(f.c, "SELECT '1.5' AS x"), "TEXT", "double");
        check_mismatch(read_error<double>(f.c, "SELECT x'00' AS x"), "BLOB", "double");
        check_mismatch(read_error<double>(f.c, "SELECT 9007199254740993 AS x"), "INTEGER", "double");
        check_mismatch(read_error<double>(f.c, "SELECT 9223372036854775807 AS x"), "INTEGER", "double");
        check_mismatch(read_error<float>(f.c, "SELECT 0.1 AS x"), "REAL", "float");
        check_mismatch(read_error<float>(f.c, "SELECT 16777217 AS x"), "INTEGER", "float");
        check_mismatch(read_error<float>(f.c, "SELECT 1e300 AS x"), "REAL", "float");
    }
    SECTION("real or blob into text, numbers into a blob") {
        check_mismatch(read_error<std::string>(f.c, "SELECT 0.1 AS x"), "REAL", "std::string");
        check_mismatch(read_error<std::string>(f.c, "SELECT x'41' AS x"), "BLOB", "std::string");
        check_mismatch(read_error<resilite::blob>(f.c, "SELECT 7 AS x"), "INTEGER", "resilite::blob");
        check_mismatch(read_error<resilite::blob>(f.c, "SELECT 7.5 AS x"), "REAL", "resilite::blob");
    }
    SECTION("the error names the column by index and name") {
        try {
            static_cast<void>(f.c.query_one<int, int>("SELECT 1 AS a, 'two' AS b"));
            FAIL("no error");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::mismatch);
            CHECK_THAT(e.technical().note, Catch::Contains("column 1 ('b')"));
            CHECK_THAT(e.technical().sql, Catch::Contains("'two' AS b"));
        }
    }
}

TEST_CASE("exact conversions between storage classes are read", "[sqlite][statement]") {
    fixture f;
    CHECK(f.c.query_one<std::int64_t>("SELECT 3.0") == 3);  // SQLite may hand back integral reals
    CHECK(f.c.query_one<int>("SELECT -2.0") == -2);
    CHECK(f.c.query_one<std::int64_t>("SELECT -9223372036854775808.0") == std::numeric_limits<std::int64_t>::min());
    CHECK(f.c.query_one<std::uint8_t>("SELECT 255") == 255);
    CHECK(f.c.query_one<std::int16_t>("SELECT -32768") == -32768);
    CHECK(f.c.query_one<bool>("SELECT 1") == true);
    CHECK(f.c.query_one<bool>("SELECT 0.0") == false);
    CHECK(f.c.query_one<double>("SELECT 9007199254740992") == 9007199254740992.0);
    CHECK(f.c.query_one<double>("SELECT 7") == 7.0);
    CHECK(f.c.query_one<float>("SELECT 0.5") == 0.5F);
    CHECK(f.c.query_one<float>("SELECT 16777216") == 16777216.0F);
    CHECK(f.c.query_one<std::string>("SELECT 42") == "42");  // decimal text of an integer is exact
    CHECK(f.c.query_one<resilite::blob>("SELECT 'AB'") == resilite::blob{std::byte{'A'}, std::byte{'B'}});
    CHECK_FALSE(f.c.query_one<std::optional<int>>("SELECT NULL").value().has_value());
}

TEST_CASE("wrong number of arguments is a range error naming both counts", "[sqlite][statement]") {
    fixture f;
    try {
        f.c.exec("INSERT INTO v(x) VALUES(?)", 1, 2);
        FAIL("no error");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::range);
        CHECK_THAT(e.technical().note, Catch::Contains("1 parameters but 2 values"));
    }
    CHECK(f.c.query_one<int>("SELECT count(*) FROM v") == 0);
}

TEST_CASE("more than one statement in exec is refused, exec_script runs them", "[sqlite][statement]") {
    fixture f;
    CHECK_THROWS_AS(f.c.exec("INSERT INTO v VALUES(1); INSERT INTO v VALUES(2)"), resilite::error);
    CHECK(f.c.query_one<int>("SELECT count(*) FROM v") == 0);
    f.c.exec("INSERT INTO v VALUES(1);  \n");  // a trailing ';' and blanks are fine
    f.c.exec_script("INSERT INTO v VALUES(2); INSERT INTO v VALUES(3)");
    CHECK(f.c.query_one<int>("SELECT count(*) FROM v") == 3);
    // and so are comments after it: they are no statement
    f.c.exec("INSERT INTO v VALUES(4); -- done");
    f.c.exec("INSERT INTO v VALUES(5) /* done */ ; \n -- really\n");
    CHECK(f.c.query_one<int>("SELECT count(*) FROM v") == 5);
    CHECK_THROWS_AS(f.c.exec("INSERT INTO v VALUES(6); -- one\n INSERT INTO v VALUES(7)"), resilite::error);
    CHECK(f.c.query_one<int>("SELECT count(*) FROM v") == 5);
}

TEST_CASE("a NaN is refused when bound, as SQLite would store it as NULL", "[sqlite][statement]") {
    fixture f;
    f.c.exec_script("CREATE TABLE m(d REAL NOT NULL, od REAL)");
    const auto refused = [&](auto&& value) {
        try {
            f.c.exec("INSERT INTO m(d, od) VALUES(1, ?)", value);
            FAIL("a NaN was bound");
        } catch (const resilite::error& e) {
            CHECK(e.klass() == resilite::error_class::mismatch);
            CHECK_THAT(e.technical().note, Catch::Contains("parameter 1 is NaN"));
        }
    };
    refused(std::numeric_limits<double>::quiet_NaN());
    refused(-std::numeric_limits<double>::quiet_NaN());
    refused(std::numeric_limits<float>::quiet_NaN());
    refused(std::optional<double>{std::numeric_limits<double>::signaling_NaN()});
    CHECK(f.c.query_one<int>("SELECT count(*) FROM m") == 0);
    // Infinities are numbers SQLite keeps.
    f.c.exec("INSERT INTO m(d, od) VALUES(?, ?)", std::numeric_limits<double>::infinity(),
             -std::numeric_limits<double>::infinity());
    CHECK(f.c.query_one<double>("SELECT d FROM m") == std::numeric_limits<double>::infinity());
}

TEST_CASE("query column count must match the requested types", "[sqlite][statement]") {
    fixture f;
    CHECK_THROWS_AS((f.c.query_one<int, int>("SELECT 1")), resilite::error);
}

TEST_CASE("binding round trips: any text and blob (property)", "[sqlite][statement][property]") {
    fixture f;
    rc::prop("text and blobs come back byte for byte", [&](const std::string& text,
                                                           const std::vector<std::uint8_t>& bytes,
                                                           std::int64_t n, bool null_it) {
        f.c.exec("DELETE FROM v");
        f.c.exec("CREATE TABLE IF NOT EXISTS w(t, b, n, o)");
        f.c.exec("DELETE FROM w");
        std::optional<std::int64_t> o;
        if (!null_it) o = n;
        f.c.exec("INSERT INTO w VALUES(?, ?, ?, ?)", text, bytes, n, o);
        auto row =
            f.c.query_one<std::string, std::vector<std::uint8_t>, std::int64_t, std::optional<std::int64_t>>(
                "SELECT t, b, n, o FROM w");
        RC_ASSERT(row.has_value());
        RC_ASSERT(std::get<0>(*row) == text);
        RC_ASSERT(std::get<1>(*row) == bytes);
        RC_ASSERT(std::get<2>(*row) == n);
        RC_ASSERT(std::get<3>(*row) == o);
    });
}

}  // namespace sqlite_statement_tests
