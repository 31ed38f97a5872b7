// Schema sync: P3 over random declared schemas, every drift kind, the three modes.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <map>
#include <set>

namespace resilite::detail {
// For RapidCheck's counterexample reports: the schema as the SQL that creates it.
inline std::ostream& operator<<(std::ostream& os, const schema_def& s) {
    for (const auto& t : s.tables) {
        os << create_table_sql(t) << ";\n";
        for (const auto& i : t.indexes)
            os << create_index_sql(t, i) << ";\n";
    }
    return os;
}
}  // namespace resilite::detail

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace schema_sync_tests {

using resilite::schema_mode;
using resilite::schema_report;
using resilite::schema_status;
using resilite::detail::column_def;
using resilite::detail::index_def;
using resilite::detail::schema_def;
using resilite::detail::table_def;
using resilite::detail::trigger_def;
using resilite::sqlite::connection;

namespace {
const std::vector<std::string> sql_types{"INTEGER", "REAL", "TEXT", "BLOB"};

std::string literal_for(const std::string& type, int n) {
    if (type == "INTEGER") return std::to_string(n);
    if (type == "REAL") return fmt::format("{}.5", n);
    if (type == "TEXT") return fmt::format("'v{}'", n);
    return fmt::format("x'{:02x}'", n % 256);
}

// A random declared schema. Columns that may later be left out of the database are nullable
// or have a default, so that adding them is always possible.
rc::Gen<schema_def> gen_schema() {
    return rc::gen::exec([] {
        schema_def s;
        const int tables = *rc::gen::inRange(1, 5);
        for (int t = 0; t < tables; ++t) {
            table_def td;
            td.name = fmt::format("t{} \"q\"", t);  // names that need quoting
            const int cols = *rc::gen::inRange(1, 6);
            for (int c = 0; c < cols; ++c) {
                column_def cd;
                cd.name = fmt::format("c{}", c);
                cd.type = *rc::gen::elementOf(sql_types);
                cd.not_null = *rc::gen::arbitrary<bool>();
                if (*rc::gen::arbitrary<bool>())
                    cd.default_sql = literal_for(cd.type, *rc::gen::inRange(0, 100));
                // UNIQUE only where added rows cannot collide: nullable, no default.
                cd.unique = !cd.not_null && !cd.default_sql && *rc::gen::inRange(0, 4) == 0;
                td.columns.push_back(cd);
            }
            const int pk = *rc::gen::inRange(0, 3);  // none, first column, first two
            if (pk >= 1) td.primary_key.push_back("c0");
            if (pk == 2 && cols >= 2) td.primary_key.push_back("c1");
            for (auto& cd : td.columns) {
                if (std::find(td.primary_key.begin(), td.primary_key.end(), cd.name) !=
                    td.primary_key.end()) {
                    cd.not_null = true;
                    cd.unique = false;
                }
            }
            const int indexes = *rc::gen::inRange(0, 3);
            for (int i = 0; i < indexes; ++i) {
                index_def id;
                id.name = fmt::format("t{}_i{}", t, i);
                id.columns.push_back(fmt::format("c{}", *rc::gen::inRange(0, cols)));
                if (*rc::gen::arbitrary<bool>()) id.where = fmt::format("\"{}\" IS NOT NULL", id.columns[0]);
                td.indexes.push_back(id);
            }
            s.tables.push_back(td);
        }
        return s;
    });
}

bool addable(const table_def& t, const column_def& c) {
    const bool in_pk = std::find(t.primary_key.begin(), t.primary_key.end(), c.name) != t.primary_key.end();
    return !in_pk && (!c.not_null || c.default_sql);
}

std::string value_for(const column_def& c, int row) {
    if (!c.not_null && row % 3 == 0) return "NULL";
    return literal_for(c.type, row * 7 + 1);
}

// The database as the declaration's subset `existing` (tables, columns, indexes), with rows.
void build(connection& c, const schema_def& existing, int rows) {
    for (const auto& t : existing.tables) {
        c.exec_script(resilite::detail::create_table_sql(t));
        for (const auto& i : t.indexes)
            c.exec_script(resilite::detail::create_index_sql(t, i));
        for (int r = 0; r < rows; ++r) {
            std::vector<std::string> values;
            for (const auto& col : t.columns) {
                const bool in_pk =
                    std::find(t.primary_key.begin(), t.primary_key.end(), col.name) != t.primary_key.end();
                values.push_back(in_pk ? literal_for(col.type, r) : value_for(col, r));
            }
            c.exec_script(fmt::format(
                "INSERT INTO {}({}) VALUES({})", resilite::detail::quote_id(t.name),
                [&] {
                    std::vector<std::string> names;
                    for (const auto& col : t.columns)
                        names.push_back(col.name);
                    return resilite::detail::quote_list(names);
                }(),
                fmt::join(values, ",")));
        }
    }
}

// Every table's rows, each value through quote(), for the listed columns.
std::map<std::string, std::vector<std::string>> snapshot(connection& c, const schema_def& existing) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& t : existing.tables) {
        std::vector<std::string> quoted;
        for (const auto& col : t.columns)
            quoted.push_back(fmt::format("quote({})", resilite::detail::quote_id(col.name)));
        for (auto& row : c.query_all<std::string>(fmt::format("SELECT {} FROM {} ORDER BY rowid",
                                                              fmt::join(quoted, " || '|' || "),
                                                              resilite::detail::quote_id(t.name)))) {
            out[t.name].push_back(row);
        }
    }
    return out;
}

std::vector<std::string> schema_sql(connection& c) {
    return c.query_all<std::string>(
        "SELECT type || ' ' || name || ' ' || ifnull(sql, '') FROM sqlite_master ORDER BY 1");
}

std::multiset<std::string> descriptions(const schema_report& r) {
    std::multiset<std::string> out;
    for (const auto& a : r.actions)
        out.insert(a.table + ": " + a.description);
    return out;
}
}  // namespace

TEST_CASE("P3 schema validation on start-up", "[schema][property][P3]") {
    test::temp_dir dir;
    int case_number = 0;

    rc::prop("open adds exactly what is missing, keeps every row byte for byte, reports exactly that", [&] {
        const auto declared = *gen_schema();
        // Leave out a random subset: whole tables, addable columns, indexes.
        schema_def existing;
        std::multiset<std::string> expected;
        for (const auto& t : declared.tables) {
            if (*rc::gen::inRange(0, 4) == 0) {
                expected.insert(t.name + ": create table");
                for (const auto& i : t.indexes)
                    expected.insert(t.name + ": create index " + i.name);
                continue;
            }
            table_def kept = t;
            kept.columns.clear();
            kept.indexes.clear();
            for (const auto& col : t.columns) {
                if (col.name != "c0" && addable(t, col) &&
                    *rc::gen::inRange(0, 3) == 0) {  // a table keeps a column
                    expected.insert(t.name + ": add column " + col.name);
                    if (col.unique) {
                        expected.insert(t.name + ": create unique index " +
                                        resilite::detail::unique_column_index(t, col).name);
                    }
                } else {
                    kept.columns.push_back(col);
                }
            }
            for (const auto& i : t.indexes) {
                const bool columns_present =
                    std::all_of(i.columns.begin(), i.columns.end(), [&](const auto& name) {
                        return std::any_of(kept.columns.begin(), kept.columns.end(),
                                           [&](const column_def& c) { return c.name == name; });
                    });
                if (columns_present && *rc::gen::arbitrary<bool>()) {
                    kept.indexes.push_back(i);
                } else {
                    expected.insert(t.name + ": create index " + i.name);
                }
            }
            existing.tables.push_back(kept);
        }
        connection c{dir / fmt::format("p3-{}.db", ++case_number)};
        build(c, existing, *rc::gen::inRange(0, 6));
        const auto before = snapshot(c, existing);

        const auto report = resilite::detail::sync_schema(c, declared, schema_mode::add_missing);
        RC_ASSERT(report.status() == schema_status::ok);
        RC_ASSERT(descriptions(report) == expected);
        RC_ASSERT(std::all_of(report.actions.begin(), report.actions.end(),
                              [](const auto& a) { return a.applied; }));
        RC_ASSERT(report.changed == !expected.empty());
        RC_ASSERT(snapshot(c, existing) == before);  // every existing row and value kept
        // Now in sync: nothing more to do, no drift.
        const auto again = resilite::detail::sync_schema(c, declared, schema_mode::add_missing);
        RC_LOG() << "first sync:\n" << report.to_text() << "second sync:\n" << again.to_text();
        RC_ASSERT(again.actions.empty());
        RC_ASSERT(again.drifts.empty());
        RC_ASSERT(c.query_one<std::string>("PRAGMA integrity_check") == "ok");
    });

    rc::prop("incompatible drift is reported and changes nothing", [&] {
        const auto declared = *gen_schema();
        schema_def existing = declared;
        auto& t = existing.tables[static_cast<std::size_t>(
            *rc::gen::inRange(0, static_cast<int>(existing.tables.size())))];
        const int kind = *rc::gen::inRange(0, 3);
        std::string expect;
        if (kind == 0) {  // a column's type differs
            auto& col =
                t.columns[static_cast<std::size_t>(*rc::gen::inRange(0, static_cast<int>(t.columns.size())))];
            const auto other = col.type == "TEXT" ? std::string{"INTEGER"} : std::string{"TEXT"};
            col.type = other;
            col.default_sql.reset();
            expect = "type differs";
        } else if (kind == 1) {  // a different primary key
            if (t.primary_key.empty()) {
                t.primary_key = {t.columns[0].name};
            } else {
                t.primary_key.clear();
            }
            expect = "primary key differs";
        } else {  // a NOT NULL column without default, missing from a table that holds rows
            auto* target = &t;
            column_def extra{"required_col", "TEXT", true, std::nullopt, false, false, {}};
            // Declared in `declared`, absent from the database.
            auto declared_copy = declared;
            for (auto& dt : declared_copy.tables) {
                if (dt.name == target->name) dt.columns.push_back(extra);
            }
            connection c{dir / fmt::format("p3d-{}.db", ++case_number)};
            build(c, existing, 1 + *rc::gen::inRange(0, 4));
            const auto schema_before = schema_sql(c);
            const auto rows_before = snapshot(c, existing);
            const auto report = resilite::detail::sync_schema(c, declared_copy, schema_mode::add_missing);
            RC_ASSERT(report.status() == schema_status::critical);
            RC_ASSERT(std::any_of(report.drifts.begin(), report.drifts.end(), [](const auto& d) {
                return d.column == "required_col" && d.level == schema_report::severity::critical;
            }));
            RC_ASSERT(!report.changed);
            RC_ASSERT(schema_sql(c) == schema_before);
            RC_ASSERT(snapshot(c, existing) == rows_before);
            return;
        }
        // Something else is missing too, so there is work that must not be done.
        connection c{dir / fmt::format("p3d-{}.db", ++case_number)};
        build(c, existing, *rc::gen::inRange(0, 4));
        auto declared_more = declared;
        declared_more.tables.push_back(
            table_def{"brand_new", {column_def{"x", "INTEGER", false, {}, false, false, {}}}, {}, {}});
        const auto schema_before = schema_sql(c);
        const auto rows_before = snapshot(c, existing);
        // The primary-key change also changes NOT NULL on the key column: build used `existing`.
        const auto report = resilite::detail::sync_schema(c, declared_more, schema_mode::add_missing);
        RC_ASSERT(report.status() == schema_status::critical);
        RC_ASSERT(std::any_of(report.drifts.begin(), report.drifts.end(), [&](const auto& d) {
            return d.level == schema_report::severity::critical &&
                   d.description.find(expect) != std::string::npos;
        }));
        RC_ASSERT(!report.changed);
        RC_ASSERT(std::none_of(report.actions.begin(), report.actions.end(),
                               [](const auto& a) { return a.applied; }));
        RC_ASSERT(schema_sql(c) == schema_before);
        RC_ASSERT(snapshot(c, existing) == rows_before);
    });
}

namespace {
table_def simple_table() {
    return table_def{"items",
                     {column_def{"id", "INTEGER", true, {}, false, false, {}},
                      column_def{"name", "TEXT", true, std::string{"''"}, false, false, {}},
                      column_def{"note", "TEXT", false, {}, false, false, {}}},
                     {"id"},
                     {index_def{"items_by_name", {"name"}, false, {}}}};
}

schema_report sync(connection& c, const table_def& t, schema_mode mode = schema_mode::add_missing) {
    return resilite::detail::sync_schema(c, schema_def{{t}, {}}, mode);
}

const schema_report::drift* find_drift(const schema_report& r, std::string_view text) {
    for (const auto& d : r.drifts) {
        if (d.description.find(text) != std::string::npos) return &d;
    }
    return nullptr;
}
}  // namespace

TEST_CASE("drift: a column type that differs is critical and changes nothing", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, name BLOB NOT NULL DEFAULT '', note TEXT)");
    auto t = simple_table();
    const auto r = sync(c, t);
    const auto* d = find_drift(r, "type differs");
    REQUIRE(d != nullptr);
    CHECK(d->level == schema_report::severity::critical);
    CHECK(d->column == "name");
    CHECK(r.status() == schema_status::critical);
    CHECK(r.exit_code() == 1);
    CHECK_FALSE(r.changed);
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'index'") ==
          0);  // index not added
}

TEST_CASE("drift: compatible type spellings are not drift", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL DEFAULT '', note CLOB)");
    const auto r = sync(c, simple_table());
    CHECK(r.status() == schema_status::ok);
    CHECK(r.changed);  // the index was added
}

TEST_CASE("drift: a NOT NULL column without default cannot be added to a table with rows",
          "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO items VALUES(1, 'x');");
    auto t = simple_table();
    t.columns[1].default_sql.reset();
    auto r = sync(c, t);
    REQUIRE(find_drift(r, "NOT NULL column without DEFAULT") != nullptr);
    CHECK(r.status() == schema_status::critical);
    CHECK_FALSE(r.changed);
    // On an empty table it can be added.
    c.exec_script("DELETE FROM items");
    r = sync(c, t);
    CHECK(r.status() == schema_status::ok);
    CHECK(r.changed);
    CHECK(c.query_all<std::string>("SELECT name FROM pragma_table_info('items') ORDER BY cid") ==
          std::vector<std::string>{"id", "note", "name"});
}

TEST_CASE("drift: a different primary key is critical", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER, name TEXT NOT NULL DEFAULT '', note TEXT, PRIMARY KEY(name))");
    const auto r = sync(c, simple_table());
    const auto* d = find_drift(r, "primary key differs");
    REQUIRE(d != nullptr);
    CHECK(d->level == schema_report::severity::critical);
}

TEST_CASE("drift: a declared integer key that the database's table does not make its rowid (BIGINT PRIMARY KEY, "
          "INT PRIMARY KEY, INTEGER PRIMARY KEY DESC) is critical: it takes NULL keys, insert() could not return one",
          "[schema][drift]") {
    const std::string rest = "name TEXT NOT NULL DEFAULT '', note TEXT";
    for (const std::string& table : {"items(id BIGINT PRIMARY KEY, " + rest + ")", "items(id INT PRIMARY KEY, " + rest + ")",
                                    "items(id INTEGER PRIMARY KEY DESC, " + rest + ")",
                                    "items(id INTEGER NOT NULL, " + rest + ", PRIMARY KEY(id))"}) {
        INFO(table);
        test::temp_dir dir;
        connection c{dir / "d.db"};
        const bool alias = table.find("NOT NULL, ") != std::string::npos;  // a table constraint: the rowid
        c.exec_script("CREATE TABLE " + table);
        const auto r = sync(c, simple_table());
        const auto* d = find_drift(r, "not the table's rowid");
        if (alias) {
            CHECK(d == nullptr);
            CHECK(r.status() == schema_status::ok);
            continue;
        }
        REQUIRE(d != nullptr);
        CHECK(d->level == schema_report::severity::critical);
        CHECK(r.status() == schema_status::critical);
        CHECK_FALSE(r.changed);
    }
    // Declared as the rowid too: PRIMARY KEY(id DESC) in a table constraint is SQLite's rowid.
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script("CREATE TABLE items(id INTEGER, name TEXT NOT NULL DEFAULT '', note TEXT, PRIMARY KEY(id DESC))");
    CHECK(find_drift(sync(c, simple_table()), "rowid") == nullptr);
}

TEST_CASE("drift: a declared index or trigger whose name an undeclared table's index or trigger has is critical and "
          "left alone (one on another declared table was moved, and is recreated), and a unique index recreated "
          "without UNIQUE is a warning",
          "[schema][drift]") {
    {
        test::temp_dir dir;
        connection c{dir / "d.db"};
        c.exec_script("CREATE TABLE accounts(iban TEXT); CREATE UNIQUE INDEX items_by_name ON accounts(iban);");
        for (const bool table_there : {false, true}) {
            INFO(table_there);
            if (table_there) c.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT)");
            const auto r = sync(c, simple_table());
            const auto* d = find_drift(r, "is taken by an index on table accounts");
            REQUIRE(d != nullptr);
            CHECK(d->level == schema_report::severity::critical);
            CHECK(c.query_one<std::string>("SELECT tbl_name FROM sqlite_master WHERE name = 'items_by_name'") ==
                  "accounts");
        }
    }
    {
        test::temp_dir dir;
        connection c{dir / "d.db"};
        c.exec_script(
            "CREATE TABLE payments(x); CREATE TABLE audit(x);"
            "CREATE TRIGGER \"orders log\" AFTER INSERT ON payments BEGIN INSERT INTO audit VALUES(new.x); END;");
        for (const std::string on : {"ON items", "ON \"items\"", "ON [Items]", "ON 'items'",
                                     "-- fires on payment\n ON items", "/* on */ ON items"}) {
            INFO(on);
            const auto r = resilite::detail::sync_schema(
                c, schema_def{{simple_table()}, {trigger_def{"orders log", "AFTER INSERT " + on + " BEGIN SELECT 1; END"}}},
                schema_mode::add_missing);
            const auto* d = find_drift(r, "is taken by a trigger on table payments");
            REQUIRE(d != nullptr);
            CHECK(d->level == schema_report::severity::critical);
            CHECK(c.query_one<std::string>("SELECT tbl_name FROM sqlite_master WHERE name = 'orders log'") ==
                  "payments");
        }
        // A column named "on" is no keyword.
        c.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT, \"on\")");
        const auto of_on = resilite::detail::sync_schema(
            c, schema_def{{simple_table()}, {trigger_def{"orders log", "AFTER UPDATE OF \"on\" ON items BEGIN SELECT 1; END"}}},
            schema_mode::add_missing);
        CHECK(find_drift(of_on, "is taken by a trigger on table payments") != nullptr);
        // Its own table's trigger of that name, changed: recreated, as before.
        const auto same = resilite::detail::sync_schema(
            c, schema_def{{simple_table()}, {trigger_def{"orders log", "AFTER INSERT ON payments BEGIN SELECT 2; END"}}},
            schema_mode::add_missing);
        CHECK(same.status() != schema_status::critical);  // (a warning: items has an undeclared column "on")
        CHECK(find_drift(same, "is taken by") == nullptr);
        CHECK(same.changed);
    }
    {  // Declared on another declared table before (moved): recreated, with the table there or not.
        for (const bool table_there : {false, true}) {
            test::temp_dir dir;
            connection c{dir / "d.db"};
            c.exec_script("CREATE TABLE others(name TEXT); CREATE INDEX items_by_name ON others(name);");
            if (table_there) c.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT)");
            auto others = table_def{"others", {column_def{"name", "TEXT", false, {}, false, false, {}}}, {}, {}};
            const auto r = resilite::detail::sync_schema(c, schema_def{{simple_table(), others}, {}}, schema_mode::add_missing);
            INFO(r.to_text());
            CHECK(r.status() == schema_status::ok);
            CHECK(c.query_one<std::string>("SELECT tbl_name FROM sqlite_master WHERE name = 'items_by_name'") == "items");
        }
    }
    {
        test::temp_dir dir;
        connection c{dir / "d.db"};
        c.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT);"
                      "CREATE UNIQUE INDEX items_by_name ON items(name);");
        const auto r = sync(c, simple_table());
        const auto* d = find_drift(r, "without UNIQUE");
        REQUIRE(d != nullptr);
        CHECK(d->level == schema_report::severity::warning);
        CHECK(r.changed);
    }
}

TEST_CASE("drift: undeclared columns are kept and reported as warnings", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT, legacy TEXT);"
        "INSERT INTO items VALUES(1, 'a', NULL, 'keep me');");
    const auto r = sync(c, simple_table());
    const auto* d = find_drift(r, "not declared");
    REQUIRE(d != nullptr);
    CHECK(d->level == schema_report::severity::warning);
    CHECK(d->column == "legacy");
    CHECK(r.status() == schema_status::warnings);
    CHECK(r.exit_code() == 2);
    CHECK(r.changed);  // the missing index was still added
    CHECK(c.query_one<std::string>("SELECT legacy FROM items") == "keep me");
    CHECK_THAT(d->description, !Catch::Contains("will fail"));  // nullable: inserts leave it NULL

    // One that is NOT NULL without a default makes every typed insert fail: said at open.
    connection strict_extra{dir / "e.db"};
    strict_extra.exec_script("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT, "
                             "tenant TEXT NOT NULL, region TEXT NOT NULL DEFAULT 'eu')");
    const auto r2 = sync(strict_extra, simple_table());
    for (const auto& drift : r2.drifts) {
        if (drift.column == "tenant") CHECK_THAT(drift.description, Catch::Contains("insert and upsert of the row type will fail"));
        if (drift.column == "region") CHECK_THAT(drift.description, !Catch::Contains("will fail"));
    }
    CHECK(find_drift(r2, "will fail") != nullptr);
}

TEST_CASE("drift: nullability and default differences are warnings", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT DEFAULT 'x', note TEXT NOT NULL DEFAULT '')");
    const auto r = sync(c, simple_table());
    CHECK(find_drift(r, "declared NOT NULL, but the database allows NULL") != nullptr);
    CHECK(find_drift(r, "declared nullable, but the database requires a value") != nullptr);
    CHECK(find_drift(r, "DEFAULT differs") != nullptr);
    CHECK(r.status() == schema_status::warnings);
}

TEST_CASE("sync: a changed index or trigger definition is recreated", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT);"
        "CREATE INDEX items_by_name ON items(note);"
        "CREATE TABLE counts(n INTEGER);"
        "CREATE TRIGGER count_items AFTER INSERT ON items BEGIN UPDATE counts SET n = n + 2; END;");
    schema_def s{
        {simple_table(), table_def{"counts", {column_def{"n", "INTEGER", false, {}, false, false, {}}}, {}, {}}},
        {{"count_items", "AFTER INSERT ON items BEGIN UPDATE counts SET n = n + 1; END"}}};
    const auto r = resilite::detail::sync_schema(c, s, schema_mode::add_missing);
    CHECK(r.status() == schema_status::ok);
    CHECK(descriptions(r) == std::multiset<std::string>{"items: recreate index items_by_name",
                                                        "count_items: recreate trigger count_items"});
    c.exec_script("INSERT INTO counts VALUES(0); INSERT INTO items(id) VALUES(1);");
    CHECK(c.query_one<int>("SELECT n FROM counts") == 1);
    CHECK(c.query_one<std::string>("SELECT name FROM pragma_index_info('items_by_name')") == "name");
}

TEST_CASE("sync: a UNIQUE that duplicates prevent is reported and nothing changes", "[schema][drift]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT);"
        "INSERT INTO items VALUES(1, 'a', 'same'), (2, 'b', 'same');");
    auto t = simple_table();
    t.columns[2].unique = true;
    const auto r = sync(c, t);
    CHECK(r.status() == schema_status::critical);
    CHECK_FALSE(r.changed);
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'index'") == 0);
}

TEST_CASE("modes: strict refuses any drift, report-only changes nothing", "[schema][modes]") {
    test::temp_dir dir;
    connection c{dir / "d.db"};
    c.exec_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', note TEXT, legacy INT)");
    try {
        static_cast<void>(sync(c, simple_table(), schema_mode::strict));
        FAIL("strict accepted drift");
    } catch (const resilite::error& e) {
        CHECK(e.klass() == resilite::error_class::schema);
        CHECK_THAT(e.technical().report, Catch::Contains("legacy"));  // the whole report; what() one line
    }
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'index'") == 0);

    const auto r = sync(c, simple_table(), schema_mode::report_only);
    CHECK(r.actions.size() == 1);
    CHECK_FALSE(r.actions[0].applied);
    CHECK_FALSE(r.changed);
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'index'") == 0);
    CHECK_THAT(r.to_text(), Catch::Contains("to do items: create index items_by_name"));

    // strict still creates what is missing when nothing drifted.
    connection fresh{dir / "fresh.db"};
    const auto created = sync(fresh, simple_table(), schema_mode::strict);
    CHECK(created.changed);
    CHECK(created.status() == schema_status::ok);
}

namespace {
struct Place {
    BOOST_HANA_DEFINE_STRUCT(Place, (std::int64_t, id), (std::string, name), (std::int64_t, size));
};
}  // namespace

TEST_CASE("open fails with class schema when the declared schema cannot be created", "[schema][open]") {
    // SQLite rejects the index condition: nothing may be half-created, and open must say so.
    using bad = resilite::table<"places", Place, resilite::primary_key<"id">,
                                resilite::partial_index<"places_big", "no_such_column > 3", "size">>;
    using Db = resilite::Database<resilite::schema<bad>, resilite::null_observer, test::manual_durability>;
    test::temp_dir dir;
    const auto path = dir / "bad.db";
    try {
        Db db{path};
        FAIL("opened a database without the declared tables");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::schema);
        CHECK(std::string{e.what()}.find('\n') == std::string::npos);  // one line
        CHECK_THAT(e.technical().report, Catch::Contains("places_big"));
    }
    resilite::sqlite::connection c{path};
    CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'places'") == 0);
}

TEST_CASE("open fails on critical drift unless report_only, warnings never fail", "[schema][open][drift]") {
    using places = resilite::table<"places", Place, resilite::primary_key<"id">>;
    test::temp_dir dir;
    const auto path = dir / "drift.db";
    {
        resilite::sqlite::connection c{path};
        c.exec_script("CREATE TABLE places(id INTEGER PRIMARY KEY, name TEXT NOT NULL, size BLOB NOT NULL, "
                      "extra TEXT)");  // size: another affinity (critical); extra: undeclared (warning)
    }
    using Default = resilite::Database<resilite::schema<places>, resilite::null_observer, test::manual_durability>;
    try {
        Default db{path};
        FAIL("opened a database whose column type differs from the declaration");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::schema);
        CHECK_THAT(e.technical().report, Catch::Contains("size"));
    }
    using ReportOnly =
        resilite::Database<resilite::report_only_schema<places>, resilite::null_observer, test::manual_durability>;
    {
        ReportOnly db{path};
        CHECK(db.sync_report().status() == schema_status::critical);
    }
    {
        resilite::sqlite::connection c{path};
        c.exec_script("DROP TABLE places; CREATE TABLE places(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                      "size INTEGER NOT NULL, extra TEXT)");  // only the warning left
    }
    Default db{path};
    CHECK(db.sync_report().status() == schema_status::warnings);
}

namespace partial_where_test {
struct item {
    BOOST_HANA_DEFINE_STRUCT(item, (std::int64_t, id), (std::string, name),
                             (std::optional<std::int64_t>, deleted),
                             (std::optional<std::string>, whereabouts));
};
// docs/schema.md once wrote the condition with its keyword; both spellings must work.
using items = resilite::table<
    "items", item, resilite::primary_key<"id">,
    resilite::partial_index<"live_by_name", "WHERE deleted IS NULL", "name">,
    resilite::unique_partial_index<"live_unique_name", " \n\twhere\n deleted IS NULL", "name">,
    resilite::partial_index<"placed", "whereabouts IS NOT NULL", "whereabouts">,  // not the keyword
    resilite::partial_index<"parenthesized", "Where(deleted IS NOT NULL)", "deleted">>;
using db_t = resilite::Database<resilite::schema<items>, resilite::null_observer, test::manual_durability>;
}  // namespace partial_where_test

TEST_CASE("sync: a partial index condition may start with WHERE, in any case", "[schema][sync]") {
    using namespace partial_where_test;
    test::temp_dir dir;
    {
        db_t db{dir / "w.db"};
        CHECK(db.sync_report().status() == schema_status::ok);
        const auto sql_of = [&](const char* name) {
            return db.query_one<std::string>("SELECT sql FROM sqlite_master WHERE name = ?", name)
                .value_or("");
        };
        CHECK(sql_of("live_by_name") ==
              "CREATE INDEX \"live_by_name\" ON \"items\"(\"name\") WHERE deleted IS NULL");
        CHECK(sql_of("live_unique_name") ==
              "CREATE UNIQUE INDEX \"live_unique_name\" ON \"items\"(\"name\") WHERE deleted IS NULL");
        CHECK(sql_of("placed") ==
              "CREATE INDEX \"placed\" ON \"items\"(\"whereabouts\") WHERE whereabouts IS NOT NULL");
        CHECK(sql_of("parenthesized") ==
              "CREATE INDEX \"parenthesized\" ON \"items\"(\"deleted\") WHERE (deleted IS NOT NULL)");
        db.insert(item{1, "Ann", 1, std::nullopt});
        db.insert(item{2, "Ann", std::nullopt, std::nullopt});  // the deleted Ann is not indexed
        CHECK_THROWS_AS(db.insert(item{3, "Ann", std::nullopt, std::nullopt}), resilite::error);
    }
    // In sync at the next open: the stored definitions equal the declared ones.
    db_t again{dir / "w.db"};
    CHECK(again.sync_report().actions.empty());
    CHECK_FALSE(again.sync_report().changed);
    // Run-time definitions (the form the sync engine works on) are treated the same way.
    const table_def t{"t", {column_def{"x", "INTEGER", false, {}, false, false, {}}}, {}, {}};
    CHECK(resilite::detail::create_index_sql(t, index_def{"i", {"x"}, false, "wHeRe x > 1"}) ==
          "CREATE INDEX \"i\" ON \"t\"(\"x\") WHERE x > 1");
    CHECK(resilite::detail::create_index_sql(t, index_def{"i", {"x"}, false, "WHERE"}) ==
          "CREATE INDEX \"i\" ON \"t\"(\"x\")");
}

namespace foreign_key_test {
struct Customer {
    BOOST_HANA_DEFINE_STRUCT(Customer, (std::int64_t, id), (std::string, email));
};
struct Order {
    BOOST_HANA_DEFINE_STRUCT(Order, (std::int64_t, id), (std::int64_t, customer_id),
                             (std::optional<std::string>, buyer));
};
using customers = resilite::table<"customers", Customer, resilite::primary_key<"id">, resilite::unique<"email">>;
using orders = resilite::table<"orders", Order, resilite::primary_key<"id">,
                               resilite::foreign_key<"customer_id", "customers", "id",
                                                     resilite::referential_action::cascade>,
                               resilite::foreign_key<"buyer", "customers", "email">>;
using Db = resilite::Database<resilite::schema<customers, orders>, resilite::null_observer, test::manual_durability>;
using StrictDb =
    resilite::Database<resilite::strict_schema<customers, orders>, resilite::null_observer, test::manual_durability>;

bool has_drift(const schema_report& r, std::string_view column, std::string_view text) {
    return std::any_of(r.drifts.begin(), r.drifts.end(), [&](const auto& d) {
        return d.column == column && d.description.find(text) != std::string::npos;
    });
}
}  // namespace foreign_key_test

TEST_CASE("foreign keys: declared keys are created with the table and enforced on every connection",
          "[schema][foreign_key]") {
    using namespace foreign_key_test;
    test::temp_dir dir;
    Db db{dir / "fk.db"};
    CHECK(db.sync_report().status() == schema_status::ok);
    CHECK(db.query_one<std::string>("SELECT sql FROM sqlite_master WHERE name = 'orders'").value_or("") ==
          "CREATE TABLE \"orders\"(\"id\" INTEGER PRIMARY KEY, \"customer_id\" INTEGER NOT NULL REFERENCES "
          "\"customers\"(\"id\") ON DELETE CASCADE, \"buyer\" TEXT REFERENCES \"customers\"(\"email\"))");
    CHECK(db.query_one<int>("PRAGMA foreign_keys") == 1);
    db.insert(Customer{1, "ann@example.com"});
    db.insert(Order{10, 1, "ann@example.com"});
    db.insert(Order{11, 1, std::nullopt});
    try {
        db.insert(Order{12, 2, std::nullopt});  // no customer 2
        FAIL("an order without its customer was stored");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::constraint);
    }
    CHECK_THROWS_AS(db.insert(Order{13, 1, std::string{"nobody@example.com"}}), resilite::error);
    db.erase<Customer>(std::int64_t{1});  // ON DELETE CASCADE
    CHECK(db.query_one<int>("SELECT count(*) FROM orders") == 0);
    // The next open's sync finds the declared keys in place.
    Db again{dir / "fk.db"};
    CHECK(again.sync_report().drifts.empty());
    CHECK(again.sync_report().actions.empty());
}

TEST_CASE("drift: a declared foreign key the database lacks is a warning (strict fails), a nullable column is "
          "added with its key",
          "[schema][drift][foreign_key]") {
    using namespace foreign_key_test;
    test::temp_dir dir;
    const auto path = dir / "fk.db";
    {
        resilite::sqlite::connection c{path};
        c.exec_script("CREATE TABLE customers(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE); "
                      "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL); "
                      "INSERT INTO customers VALUES(1, 'ann@example.com'); INSERT INTO orders VALUES(1, 1)");
    }
    CHECK_THROWS_AS(StrictDb(path), resilite::error);
    {
        Db db{path};
        const auto& r = db.sync_report();
        INFO(r.to_text());
        CHECK(r.status() == schema_status::warnings);
        CHECK(has_drift(r, "customer_id", "the database has no foreign key on this column"));
        // buyer was missing: nullable without a default, so added with its REFERENCES clause.
        CHECK(db.query_one<int>("SELECT count(*) FROM pragma_foreign_key_list('orders') WHERE \"from\" = 'buyer'") ==
              1);
        CHECK_THROWS_AS(db.exec("UPDATE orders SET buyer = 'nobody' WHERE id = 1"), resilite::error);
        db.exec("UPDATE orders SET buyer = 'ann@example.com' WHERE id = 1");
    }
    {  // A different action is drift too, and a key the declaration does not have.
        resilite::sqlite::connection c{path};
        c.exec_script("PRAGMA foreign_keys = OFF; DROP TABLE orders; "
                      "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES "
                      "customers(id) ON DELETE SET NULL, buyer TEXT, extra INTEGER REFERENCES customers(id))");
    }
    Db db{path};
    const auto& r = db.sync_report();
    INFO(r.to_text());
    CHECK(has_drift(r, "customer_id", "ON DELETE SET NULL"));
    CHECK(has_drift(r, "buyer", "the database has no foreign key on this column"));
    CHECK(has_drift(r, "extra", "not declared"));
}

namespace foreign_key_migration_test {
struct Parent {
    BOOST_HANA_DEFINE_STRUCT(Parent, (std::int64_t, id), (std::string, name));
};
struct Child {
    BOOST_HANA_DEFINE_STRUCT(Child, (std::int64_t, id), (std::int64_t, parent_id));
};
using parents = resilite::table<"parents", Parent, resilite::primary_key<"id">>;
using children = resilite::table<"children", Child, resilite::primary_key<"id">,
                                 resilite::foreign_key<"parent_id", "parents", "id", resilite::referential_action::cascade>>;
// SQLite's table rebuild: under enforced keys the DROP would cascade into children.
struct rebuild_parents {
    static constexpr int version = 1;
    static constexpr std::string_view sql =
        "CREATE TABLE parents_new(id INTEGER PRIMARY KEY, name TEXT NOT NULL); "
        "INSERT INTO parents_new SELECT id, upper(name) FROM parents; DROP TABLE parents; "
        "ALTER TABLE parents_new RENAME TO parents;";
};
struct orphan_children {
    static constexpr int version = 2;
    static constexpr std::string_view sql = "DELETE FROM parents WHERE id = 2;";
};
using V1 = resilite::Database<resilite::schema<parents, children>, resilite::migrations<rebuild_parents>,
                              resilite::null_observer, test::manual_durability>;
using V2 = resilite::Database<resilite::schema<parents, children>,
                              resilite::migrations<rebuild_parents, orphan_children>, resilite::null_observer,
                              test::manual_durability>;
using V0 = resilite::Database<resilite::schema<parents, children>, resilite::null_observer, test::manual_durability>;
}  // namespace foreign_key_migration_test

TEST_CASE("migrations under declared foreign keys: a table rebuild cascades nothing, a migration that leaves "
          "orphans is rolled back",
          "[schema][migration][foreign_key]") {
    using namespace foreign_key_migration_test;
    test::temp_dir dir;
    const auto path = dir / "m.db";
    {
        V0 db{path};
        db.insert(Parent{1, "a"});
        db.insert(Parent{2, "b"});
        db.insert(Child{1, 1});
        db.insert(Child{2, 2});
    }
    {
        V1 db{path};
        CHECK(db.query_one<int>("SELECT count(*) FROM children") == 2);  // not cascaded away
        CHECK(db.query_one<std::string>("SELECT name FROM parents WHERE id = 1") == "A");
        CHECK(db.query_one<int>("PRAGMA foreign_keys") == 1);  // on again afterwards
    }
    try {
        V2 db{path};
        FAIL("a migration that leaves a child without its parent was committed");
    } catch (const resilite::error& e) {
        INFO(e.what());
        CHECK(e.klass() == resilite::error_class::migration);
        CHECK_THAT(std::string{e.what()}, Catch::Contains("foreign key"));
    }
    V1 db{path};
    CHECK(db.query_one<int>("PRAGMA user_version") == 1);
    CHECK(db.query_one<int>("SELECT count(*) FROM parents") == 2);
}

}  // namespace schema_sync_tests
