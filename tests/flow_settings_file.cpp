// Settings from the environment and a settings file, reloaded while open; reconfigure() without
// waiting for the writer lock (P14); the field table against docs/settings.md; P16.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <resilite/flow/detail/settings_fields.hpp>
#include <resilite/flow/detail/settings_source.hpp>
#include <resilite/detail/json_value.hpp>
#include <resilite/flow/detail/write_queue.hpp>
#include <resilite/monitor/detail/audit_fallback.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <set>
#include <sstream>
#include <thread>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace flow_settings_file_tests {

using resilite::error_class;
using resilite::outcome;
using resilite::detail::setting_fields;
using namespace std::chrono_literals;

namespace {

// Sets environment variables for a scope and puts back what was there before.
class scoped_env {
public:
    scoped_env() = default;
    scoped_env(std::initializer_list<std::pair<std::string, std::string>> vars) {
        for (const auto& [k, v] : vars)
            set(k, v);
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;
    ~scoped_env() {
        for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
            if (it->second) {
                ::setenv(it->first.c_str(), it->second->c_str(), 1);
            } else {
                ::unsetenv(it->first.c_str());
            }
        }
    }
    void set(const std::string& name, const std::string& value) {
        remember(name);
        ::setenv(name.c_str(), value.c_str(), 1);
    }
    void unset(const std::string& name) {
        remember(name);
        ::unsetenv(name.c_str());
    }

private:
    void remember(const std::string& name) {
        const char* old = std::getenv(name.c_str());
        saved_.emplace_back(name, old ? std::optional<std::string>{old} : std::nullopt);
    }
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

void write_file(const std::filesystem::path& p, const std::string& text) {
    const auto tmp = p.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
    }
    std::filesystem::rename(tmp, p);  // as an editor or a deployment tool would
}

// Manual clock, no background thread: the test decides when maintain() runs.
using manual_db = resilite::Database<resilite::callback_observer, test::manual_durability, test::fast_retry,
                                     resilite::manual_clock>;

manual_db::options logged(const test::event_log& log, const resilite::manual_clock& clock = {}) {
    manual_db::options o;
    o.observer = log.observer();
    o.clock = clock;
    return o;
}

std::string note_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const resilite::error& e) {
        CHECK(e.klass() == error_class::invalid_setting);
        return e.technical().note;
    }
    FAIL("no invalid_setting error");
    return {};
}

std::optional<test::recorded_event> last_event(const test::event_log& log, const std::string& name) {
    const auto events = log.events();
    for (auto it = events.rbegin(); it != events.rend(); ++it)
        if (it->name == name) return *it;
    return std::nullopt;
}

int busy_timeout_of(manual_db& db) {
    return db.query_one<int>("PRAGMA busy_timeout").value_or(-1);
}

// Members of an aggregate, counted by how many initializers it takes (so a field added to
// resilite::settings without a line in the table fails the test below).
struct any_init {
    template <class T>
    operator T() const;
};
template <class T, class... A>
constexpr std::size_t member_count() {
    if constexpr (requires { T{A{}..., any_init{}}; }) {
        return member_count<T, A..., any_init>();
    } else {
        return sizeof...(A);
    }
}

}  // namespace

// ---- the table --------------------------------------------------------------------------------------

TEST_CASE("the field table has every field of settings once, each reading back what it shows",
          "[settings][env]") {
    // Sections (one line here for a new one) and their member counts.
    const std::map<std::string, std::size_t> sections{
        {"retry", member_count<resilite::retry_settings>()},
        {"backup", member_count<resilite::backup_settings>()},
        {"offsite", member_count<resilite::offsite_settings>()},
        {"archive", member_count<resilite::archive_settings>()},
        {"healing", member_count<resilite::healing_settings>()},
        {"degradation", member_count<resilite::degradation_settings>()},
    };
    std::map<std::string, std::size_t> per_section;
    std::set<std::string> paths, variables;
    for (const auto& f : setting_fields()) {
        ++per_section[f.section()];
        CHECK(paths.insert(f.path).second);
        CHECK(variables.insert(f.variable()).second);  // no two fields share a variable
    }
    CHECK(per_section[""] + sections.size() == member_count<resilite::settings>());
    for (const auto& [name, count] : sections) {
        INFO(name);
        CHECK(per_section[name] == count);
    }
    // Defaults are in range; what a field shows reads back the same, from text and from JSON.
    const resilite::settings defaults{};
    CHECK_FALSE(resilite::detail::field_range_problem(defaults).has_value());
    for (const auto& f : setting_fields()) {
        INFO(f.path);
        resilite::settings s{};
        CHECK_FALSE(f.check(defaults).has_value());
        if (f.type != "path" && f.type != "command") {
            CHECK_FALSE(f.from_text(s, f.show(defaults)).has_value());
            CHECK(s == defaults);
        }
        const auto text = f.show(defaults);
        const auto j = resilite::detail::parse_json((f.type == "duration" || f.type == "enum")
                                                        ? nlohmann::json(text).dump()
                                                        : text);
        REQUIRE(j);
        CHECK_FALSE(f.from_json(s, *j).has_value());
        CHECK(s == defaults);
    }
}

namespace {

// UTF-8 of a code point (the test's own, not the library's).
void put_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

// A random JSON document, built with nlohmann's library: the reader is held to another parser.
nlohmann::json random_json(int depth) {
    switch (*rc::gen::inRange(0, depth > 0 ? 9 : 7)) {
        case 0:
            return nullptr;
        case 1:
            return *rc::gen::arbitrary<bool>();
        case 2:
            return *rc::gen::arbitrary<std::int64_t>();
        case 3:
            return *rc::gen::arbitrary<std::uint64_t>();
        case 4: {
            const auto d = *rc::gen::arbitrary<double>();
            return std::isfinite(d) ? nlohmann::json(d) : nlohmann::json(0.5);
        }
        case 5:
        case 6: {
            std::string text;
            for (const auto cp : *rc::gen::container<std::vector<char32_t>>(rc::gen::oneOf(
                     rc::gen::inRange<char32_t>(0, 0x80), rc::gen::inRange<char32_t>(0x80, 0xd800),
                     rc::gen::inRange<char32_t>(0xe000, 0x110000))))
                put_utf8(text, cp);
            return text;
        }
        case 7: {
            auto a = nlohmann::json::array();
            const int n = *rc::gen::inRange(0, 4);
            for (int i = 0; i < n; ++i)
                a.push_back(random_json(depth - 1));
            return a;
        }
        default: {
            auto o = nlohmann::json::object();
            const int n = *rc::gen::inRange(0, 4);
            for (int i = 0; i < n; ++i)
                o[std::string(1, static_cast<char>('a' + i))] = random_json(depth - 1);
            return o;
        }
    }
}

}  // namespace

TEST_CASE("the JSON reader reads what another parser writes, and refuses what it refuses",
          "[settings][json][property]") {
    using resilite::detail::json_value;
    using resilite::detail::parse_json;
    rc::prop("any document, compact or indented, reads back equal", [] {
        const auto original = random_json(3);
        const auto text = original.dump(*rc::gen::element(-1, 0, 2));
        std::string why;
        const auto read = parse_json(text, &why);
        RC_ASSERT(read.has_value());
        RC_ASSERT(nlohmann::json::parse(read->dump()) == original);
    });
    // Strict JSON: what the other parser refuses, the reader refuses too, with a place.
    for (const std::string bad : {"", " ", "{\"a\":1,}", "[1,]", "[1 2]", "{\"a\" 1}", "{a:1}", "'a'",
                                  "// x\n{}", "{} {}", "tru", "nul", "01", "1.", ".5", "+1", "-", "1e",
                                  "NaN", "\"\x01\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
                                  "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\x41\"",
                                  "\"\\u12g4\"", "\"abc", "[", "{\"a\":"}) {
        INFO(bad);
        CHECK_FALSE(nlohmann::json::accept(bad));
        std::string why;
        CHECK_FALSE(parse_json(bad, &why).has_value());
        CHECK_THAT(why, Catch::StartsWith("at line 1, column "));
    }
    for (const std::string good : {"\xEF\xBB\xBF{}", "\"\\u00e9\\ud83d\\ude00\\/\"", "-0", "1E+2", "[ ]",
                                   " {\t\"a\" :\r\n[1 , -2.5e-3 ] } ", "18446744073709551616",
                                   "-9223372036854775808", "\"\xf4\x8f\xbf\xbf\""}) {
        INFO(good);
        REQUIRE(nlohmann::json::accept(good));
        const auto read = parse_json(good);
        REQUIRE(read.has_value());
        CHECK(nlohmann::json::parse(read->dump()) == nlohmann::json::parse(good));
    }
    CHECK(parse_json("18446744073709551615")->natural == 18446744073709551615u);
    // A settings file ends at a NUL byte, as the JSON library read before ended it (a tail of
    // zeros): accepted as before an upgrade; a NUL inside the object leaves it unfinished.
    resilite::detail::settings_overlay overlay;
    CHECK_FALSE(resilite::detail::parse_settings_json(std::string{"{\"busy_timeout\":\"2s\"}\n\0\0", 24}, overlay));
    CHECK(resilite::detail::parse_settings_json(std::string{"{\"busy_timeout\":\0\"2s\"}", 22}, overlay));
    CHECK(parse_json("18446744073709551616")->number == json_value::number_kind::real);
    CHECK(parse_json("-1")->integer == -1);
    CHECK(parse_json("1.0")->dump() == "1.0");
    // A name given twice is kept twice (the settings file refuses it; a JSON library keeps one).
    CHECK(parse_json(R"({"a":1,"a":2})")->names.size() == 2);
    std::string why;
    CHECK_FALSE(parse_json(std::string(65, '[') + std::string(65, ']'), &why).has_value());
    CHECK_THAT(why, Catch::Contains("nested too deeply"));
    CHECK(parse_json(std::string(64, '[') + std::string(64, ']')).has_value());
    CHECK_FALSE(parse_json("{\n  \"a\": 1\n  \"b\": 2}", &why).has_value());
    CHECK_THAT(why, Catch::StartsWith("at line 3, column 3:"));
}

TEST_CASE("the write queue's and the audit fallback's lines are the bytes the previous JSON library wrote",
          "[settings][json][queue][audit]") {
    // Control characters (\b and \f by name, others as \u00XX), quotes, backslashes, text
    // beyond ASCII, the largest number: as nlohmann_json's dump() wrote them, keys sorted.
    const std::string odd = "a\"b\\c\b\f\n\r\t\x01\x1f/\x7f é 日本 😀";
    resilite::detail::queued_write w;
    w.seq = std::numeric_limits<std::uint64_t>::max();
    w.op = "insert";
    w.sql = "INSERT INTO t VALUES(?1, ?2) -- " + odd;
    w.args = {"1", "'" + odd + "'"};
    w.at = "2026-12-07T12:00:00Z";
    nlohmann::json j{{"seq", w.seq}, {"op", w.op}, {"sql", w.sql}, {"args", w.args}, {"at", w.at}};
    CHECK(resilite::detail::queue_entry_json(w) == j.dump());
    j["generation"] = "00ff";
    j["rejected"] = odd;
    CHECK(resilite::detail::queue_entry_json(w, "00ff", odd) == j.dump());
    // An argument that is not UTF-8 is written as hex, and reads back as the same bytes.
    w.args = {"'\xff\xfe'"};
    const auto hex = resilite::detail::queue_entry_json(w);
    CHECK_THAT(hex, Catch::Contains("CAST(X'FFFE' AS TEXT)"));
    resilite::detail::queued_write back;
    const auto parsed = resilite::detail::parse_json(hex);
    REQUIRE(parsed);
    CHECK_FALSE(resilite::detail::queue_entry_fields(*parsed, back).has_value());
    CHECK(back.seq == w.seq);
    CHECK(back.sql == w.sql);

    resilite::detail::audit_entry e;
    e.file = "app.db";
    e.seq = 42;
    e.at_utc = "2026-12-07T12:00:00.123Z";
    e.action = "grant";
    e.actor = odd;
    e.detail = odd + odd;
    e.source = "host:1";
    const nlohmann::json a{{"v", 1},           {"file", e.file},     {"seq", e.seq},
                           {"at", e.at_utc},   {"action", e.action}, {"actor", e.actor},
                           {"detail", e.detail}, {"source", e.source}};
    const auto line = resilite::detail::encode_audit_line(e);
    const auto crc_at = line.rfind(resilite::detail::audit_crc_key);
    REQUIRE(crc_at != std::string::npos);
    CHECK(line.substr(0, crc_at) + "}" == a.dump());
    const auto decoded = resilite::detail::decode_audit_line(std::string_view{line}.substr(0, line.size() - 1));
    REQUIRE(decoded);
    CHECK(decoded->detail == e.detail);
    CHECK(decoded->seq == e.seq);
}

TEST_CASE("docs/settings.md lists exactly the fields of the table", "[settings][docs]") {
    const auto docs = std::filesystem::path(__FILE__).parent_path().parent_path() / "docs" / "settings.md";
    std::ifstream in(docs);
    REQUIRE(in);
    std::vector<std::string> rows;
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("| `RESILITE_")) rows.push_back(line);
    std::vector<std::string> expected;
    const resilite::settings defaults{};
    for (const auto& f : setting_fields())
        expected.push_back(fmt::format("| `{}` | `{}` | {} | `{}` | {} |", f.variable(), f.path, f.type,
                                       f.show(defaults), f.range));
    CHECK(rows == expected);
}

// Not run by default: prints the rows docs/settings.md needs after a field is added
// (resilite_tests "[print-settings-table]").
TEST_CASE("print the rows of the docs/settings.md table", "[.][print-settings-table]") {
    const resilite::settings defaults{};
    for (const auto& f : setting_fields())
        std::cout << fmt::format("| `{}` | `{}` | {} | `{}` | {} |\n", f.variable(), f.path, f.type,
                                 f.show(defaults), f.range);
}

// ---- the environment ----------------------------------------------------------------------------

TEST_CASE("settings come from RESILITE_ environment variables at open, over options.settings",
          "[settings][env]") {
    test::temp_dir dir;
    test::event_log log;
    scoped_env env{{"RESILITE_RETRY_MAX_ATTEMPTS", "7"},
                   {"RESILITE_BUSY_TIMEOUT", "250ms"},
                   {"RESILITE_SYNC", "EXTRA"},
                   {"RESILITE_BACKUP_KEEP_LAST", "5"},
                   {"RESILITE_CHECKPOINT_INTERVAL", "2min"},
                   {"RESILITE_HEALING_ACCEPT_LOSS_SINCE_BACKUP", "yes"},
                   {"RESILITE_STATEMENT_CACHE_CAPACITY", "9"},
                   {"RESILITE_BACKUP_DIRECTORY", "/srv/backups"}};
    auto o = logged(log);
    o.settings = manual_db::default_settings();
    o.settings->retry.max_attempts = 3;   // the environment wins
    o.settings->wal_alert_bytes = 12345;  // not named there: stays
    manual_db db{dir / "e.db", o};
    const auto s = db.current_settings();
    CHECK(s.retry.max_attempts == 7);
    CHECK(s.busy_timeout == 250ms);
    CHECK(s.sync == resilite::synchronous::extra);
    CHECK(s.backup.keep_last == 5);
    CHECK(s.checkpoint_interval == 120s);
    CHECK(s.healing.accept_loss_since_backup);
    CHECK(s.backup.directory == "/srv/backups");
    CHECK(s.wal_alert_bytes == 12345);
    // Applied, not only shown.
    CHECK(db.query_one<int>("PRAGMA synchronous") == 3);
    CHECK(busy_timeout_of(db) == 250);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 9);
}

TEST_CASE("an environment value that cannot be used fails the open, naming variable, value and reason",
          "[settings][env]") {
    test::temp_dir dir;
    struct bad_case {
        std::string variable, value, reason;
    };
    const std::vector<bad_case> cases{
        {"RESILITE_RETRY_MAX_ATTEMPTS", "abc", "not a whole number"},
        {"RESILITE_RETRY_MAX_ATTEMPTS", "0", "out of range (1..2147483647)"},
        {"RESILITE_RETRY_MAX_ATTEMPTS", "99999999999999999999", "out of range"},
        {"RESILITE_RETRY_MAX_ATTEMPTS", "7.5", "not a whole number"},
        {"RESILITE_STATEMENT_CACHE_CAPACITY", "10001", "out of range (1..10000)"},
        {"RESILITE_CHECKPOINT_INTERVAL", "1500ms", "not a whole number of s"},
        {"RESILITE_CHECKPOINT_INTERVAL", "0s", "out of range (1s..365d)"},
        {"RESILITE_BUSY_TIMEOUT", "10", "write a whole number and a unit"},
        {"RESILITE_BUSY_TIMEOUT", "10 sec", "unknown unit"},
        {"RESILITE_BUSY_TIMEOUT", "-5ms", "out of range"},
        {"RESILITE_SYNC", "off", "OFF is not accepted"},
        {"RESILITE_SYNC", "fast", "unknown value \"fast\""},
        {"RESILITE_BACKUP_ENABLED", "maybe", "not a boolean"},
        {"RESILITE_RETRY_MAX_ATEMPTS", "5", "is not a setting"},  // a typo is not ignored
        {"RESILITE_RETRY_BASE", "50ms", "retry cap (8 ms) must be at least the base (50 ms)"},  // a relation
        {"RESILITE_HEALING_ENABLED", "true", "needs the resilite::healing<> policy"},
    };
    for (const auto& c : cases) {
        INFO(c.variable << "=" << c.value);
        test::event_log log;
        scoped_env env{{c.variable, c.value}};
        const auto note = note_of([&] { manual_db db{dir / "bad.db", logged(log)}; });
        CHECK_THAT(note, Catch::Contains(c.reason));
        if (c.reason.find("must be at least") == std::string::npos &&
            c.reason.find("needs the") == std::string::npos) {
            CHECK_THAT(note, Catch::Contains(c.variable));
            CHECK_THAT(note, Catch::Contains("\"" + c.value + "\"") || Catch::Contains("is not a setting"));
        } else {
            CHECK_THAT(note, Catch::Contains("the environment"));
        }
        // The open reports its failure, as every failed open does.
        const auto open = last_event(log, "open");
        REQUIRE(open);
        CHECK(open->result == outcome::failed);
        CHECK(open->error == error_class::invalid_setting);
    }
    // Unset again: it opens.
    manual_db db{dir / "bad.db"};
    CHECK(db.current_settings() == manual_db::default_settings());
}

// ---- the settings file ----------------------------------------------------------------------------

TEST_CASE("a settings file is read at open, invalid, open fails naming the field and the reason",
          "[settings][file]") {
    test::temp_dir dir;
    const auto file = dir / "settings.json";
    write_file(file,
               R"({"busy_timeout": "2s", "sync": "extra", "retry": {"max_attempts": 12, "deadline": "30s"},
                        "backup": {"keep_last": 3, "directory": "/b"}})");
    auto o = logged(test::event_log{});
    o.settings_file = file;
    {
        manual_db db{dir / "f.db", o};
        const auto s = db.current_settings();
        CHECK(s.busy_timeout == 2s);
        CHECK(s.sync == resilite::synchronous::extra);
        CHECK(s.retry.max_attempts == 12);
        CHECK(s.retry.deadline == 30s);
        CHECK(s.backup.keep_last == 3);
        CHECK(s.backup.directory == "/b");
        CHECK(db.query_one<int>("PRAGMA synchronous") == 3);
        CHECK(busy_timeout_of(db) == 2000);
    }
    const std::vector<std::pair<std::string, std::string>> bad{
        {R"({"busy_timeout": "2s",})", "not valid JSON"},
        {R"([1, 2])", "must hold a JSON object"},
        {R"({"retry": {"max_atempts": 5}})", "retry.max_atempts: unknown field"},
        {R"({"busy_timout": "2s"})", "busy_timout: unknown field"},
        {R"({"retry": {"max_attempts": "5"}})", "retry.max_attempts: expected a whole number, got a string"},
        {R"({"retry": {"max_attempts": 5.5}})", "retry.max_attempts: expected a whole number, got a number with a fraction"},
        {R"({"retry": {"max_attempts": 18446744073709551617}})",
         "retry.max_attempts: expected a whole number, got a whole number outside the 64-bit range"},
        {R"({"wal_alert_bytes": 1e2})", "wal_alert_bytes: expected a whole number, got a number with a fraction or an exponent"},
        {R"({"busy_timeout": 2000})", "busy_timeout: expected a duration as a string with its unit"},
        {R"({"statement_cache_capacity": 0})", "statement_cache_capacity: 0 is out of range (1..10000)"},
        {R"({"retry": 5})", "retry: expected an object of its fields"},
        {R"({"sync": "off"})", "sync: OFF is not accepted"},
        {R"({"retry": {"base": "50ms", "cap": "10ms"}})",
         "retry cap (10 ms) must be at least the base (50 ms)"},
        // A name given twice: which one counts would be a guess (the first one, invalid, was
        // silently dropped).
        {R"({"busy_timeout": "bogus", "busy_timeout": "3s"})", "busy_timeout: given twice"},
        {R"({"retry": {"max_attempts": 50, "max_attempts": 60}})", "retry.max_attempts: given twice"},
        {R"({"retry": {"max_attempts": 50}, "retry": {"base": "5ms"}})", "retry: given twice"},
        // One field by two spellings, in either order.
        {R"({"retry.max_attempts": 5, "retry": {"max_attempts": 6}})", "retry.max_attempts: given twice"},
        {R"({"retry": {"max_attempts": 6}, "retry.max_attempts": 5})", "retry.max_attempts: given twice"},
    };
    for (const auto& [text, reason] : bad) {
        INFO(text);
        write_file(file, text);
        const auto note = note_of([&] { manual_db db{dir / "f.db", o}; });
        CHECK_THAT(note, Catch::Contains(reason));
        CHECK_THAT(note, Catch::Contains(file.string()));
    }
    std::filesystem::remove(file);
    CHECK_THAT(note_of([&] { manual_db db{dir / "f.db", o}; }), Catch::Contains("cannot be read"));
    // RESILITE_SETTINGS_FILE names it too (and wins over the option).
    const auto other = dir / "other.json";
    write_file(other, R"({"retry": {"max_attempts": 42}})");
    scoped_env env{{"RESILITE_SETTINGS_FILE", other.string()}};
    manual_db db{dir / "f.db", o};
    CHECK(db.current_settings().retry.max_attempts == 42);
}

TEST_CASE("a changed settings file applies to the next operation, refused, the old settings stay",
          "[settings][file]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    const auto file = dir / "settings.json";
    write_file(file, R"({"busy_timeout": "300ms"})");
    auto o = logged(log, clock);
    o.settings_file = file;
    manual_db db{dir / "r.db", o};
    CHECK(busy_timeout_of(db) == 300);

    // Unchanged: nothing to do, no event.
    CHECK_FALSE(db.reload_settings());
    CHECK(log.count("settings_reload") == 0);

    // Changed: maintain() looks once the poll interval passed (the background thread calls it).
    write_file(file, R"({"busy_timeout": "400ms", "statement_cache_capacity": 5, "sync": "extra"})");
    CHECK_FALSE(db.maintain());  // not yet due
    CHECK(db.current_settings().busy_timeout == 300ms);
    clock.advance(2s);
    static_cast<void>(db.maintain());
    CHECK(db.current_settings().busy_timeout == 400ms);
    CHECK(busy_timeout_of(db) == 400);
    CHECK(db.query_one<int>("PRAGMA synchronous") == 3);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 5);
    REQUIRE(log.count("settings_reload") == 1);
    CHECK(last_event(log, "settings_reload")->result == outcome::ok);
    CHECK_THAT(last_event(log, "settings_reload")->detail,
               Catch::Contains("busy_timeout") && Catch::Contains("statement_cache_capacity"));

    // Refused: an event naming the file, the field and the reason; the settings in force stay.
    const auto before = db.current_settings();
    const std::vector<std::pair<std::string, std::string>> bad{
        {R"({"busy_timeout": "400ms", "retry": {"max_attempts": -1}})",
         "retry.max_attempts: -1 is out of range"},
        {R"({"busy_timeout": "400ms", "retry": {"max_attempt": 3}})", "retry.max_attempt: unknown field"},
        {R"({"busy_timeout": "4OOms"})", "busy_timeout"},
        {R"({"busy_timeout": )", "not valid JSON"},
        {R"({"archive": {"directory": "/elsewhere"}})",
         "archive.directory is fixed while the database is open"},
        {R"({"archive": {"enabled": true}})", "archive.enabled is fixed while the database is open"},
    };
    for (const auto& [text, reason] : bad) {
        INFO(text);
        write_file(file, text);
        CHECK_THAT(note_of([&] { static_cast<void>(db.reload_settings()); }), Catch::Contains(reason));
        const auto e = last_event(log, "settings_reload");
        CHECK(e->result == outcome::failed);
        CHECK(e->error == error_class::invalid_setting);
        CHECK_THAT(e->detail, Catch::Contains(reason) && Catch::Contains(file.string()));
        CHECK(db.current_settings() == before);
        CHECK(busy_timeout_of(db) == 400);
    }
    // The same refused file is not reported again at every look.
    const auto reloads = log.count("settings_reload");
    clock.advance(2s);
    static_cast<void>(db.maintain());
    CHECK(log.count("settings_reload") == reloads);

    // A file removed while open: refused once, settings stay; back, it is read again.
    std::filesystem::remove(file);
    CHECK_THAT(note_of([&] { static_cast<void>(db.reload_settings()); }), Catch::Contains("cannot be read"));
    CHECK(db.current_settings() == before);
    write_file(file, R"({"busy_timeout": "500ms"})");
    CHECK(db.reload_settings());
    CHECK(busy_timeout_of(db) == 500);

    // reconfigure() after a file load stands until the file changes again; then the fields the
    // file names are the file's, the others stay as reconfigured.
    auto s = db.current_settings();
    s.busy_timeout = 700ms;
    s.retry.max_attempts = 3;
    db.reconfigure(s);
    CHECK_FALSE(db.reload_settings());
    CHECK(busy_timeout_of(db) == 700);
    write_file(file, R"({"busy_timeout": "600ms"})");
    CHECK(db.reload_settings());
    CHECK(busy_timeout_of(db) == 600);
    CHECK(db.current_settings().retry.max_attempts == 3);
}

TEST_CASE("the environment keeps its precedence over a reloaded settings file", "[settings][file][env]") {
    test::temp_dir dir;
    const auto file = dir / "settings.json";
    write_file(file, R"({"busy_timeout": "300ms", "retry": {"max_attempts": 9}})");
    scoped_env env{{"RESILITE_RETRY_MAX_ATTEMPTS", "4"}};
    auto o = logged(test::event_log{});
    o.settings_file = file;
    manual_db db{dir / "p.db", o};
    CHECK(db.current_settings().retry.max_attempts == 4);
    CHECK(db.current_settings().busy_timeout == 300ms);
    write_file(file, R"({"busy_timeout": "350ms", "retry": {"max_attempts": 11}})");
    CHECK(db.reload_settings());
    CHECK(db.current_settings().retry.max_attempts == 4);
    CHECK(db.current_settings().busy_timeout == 350ms);
}

TEST_CASE("the background thread reloads a changed settings file", "[settings][file]") {
    using bg_db = resilite::Database<resilite::callback_observer, test::fast_retry, resilite::manual_clock>;
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    const auto file = dir / "settings.json";
    write_file(file, R"({"statement_cache_capacity": 10})");
    bg_db::options o;
    o.observer = log.observer();
    o.clock = clock;
    o.settings_file = file;
    bg_db db{dir / "bg.db", o};
    write_file(file, R"({"statement_cache_capacity": 11})");
    clock.advance(2s);  // wakes the thread, which looks at the file
    REQUIRE(log.wait_for("settings_reload", 1));
    CHECK(db.current_settings().statement_cache_capacity == 11);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 11);
}

// ---- reconfigure while another thread holds the writer lock (P14) ---------------------------------

TEST_CASE("reconfigure() answers while another thread holds a transaction, the change applies after it",
          "[settings][P14]") {
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    const auto file = dir / "settings.json";
    write_file(file, R"({"busy_timeout": "300ms"})");
    auto o = logged(log, clock);
    o.settings_file = file;
    manual_db db{dir / "l.db", o};
    db.exec("CREATE TABLE t(x)");
    std::latch inside{1}, release{1};
    int cache_inside = 0;
    std::thread holder([&] {
        db.transaction([&](auto& tx) {
            tx.exec("INSERT INTO t VALUES(1)");
            inside.count_down();
            release.wait();
            cache_inside = db.with_connection([](auto& c) { return static_cast<int>(c.cache().capacity()); });
        });
    });
    inside.wait();
    // The transaction holds the writer lock: these return without it (a wait here would hang).
    auto s = db.current_settings();
    s.sync = resilite::synchronous::extra;
    s.statement_cache_capacity = 3;
    db.reconfigure(s);
    CHECK(db.current_settings() == s);  // accepted
    CHECK(log.count("reconfigure") == 1);
    auto invalid = s;
    invalid.statement_cache_capacity = 0;
    CHECK_THROWS_AS(db.reconfigure(invalid), resilite::error);  // still validated at once
    CHECK(db.current_settings() == s);
    write_file(file, R"({"busy_timeout": "450ms"})");
    CHECK(db.reload_settings());
    s.busy_timeout = 450ms;
    CHECK(db.current_settings() == s);
    release.count_down();
    holder.join();
    CHECK(cache_inside == 64);  // not applied inside the transaction that held the lock
    // The next operation applies them.
    CHECK(db.query_one<int>("PRAGMA synchronous") == 3);
    CHECK(busy_timeout_of(db) == 450);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 3);
    CHECK(log.count("settings_apply") == 0);  // nothing failed while applying
}

TEST_CASE("a reconfigure() accepted during a transaction of the same thread applies after it",
          "[settings][P14]") {
    test::temp_dir dir;
    manual_db db{dir / "same.db"};
    auto tx = db.begin();
    auto s = db.current_settings();
    s.statement_cache_capacity = 7;
    db.reconfigure(s);
    CHECK(db.current_settings() == s);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 64);
    tx.commit();
    CHECK(db.query_one<int>("SELECT 1") == 1);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 7);
}

TEST_CASE("settings that fail to apply after the lock was released are reported, the old ones restored",
          "[settings][P14]") {
    test::temp_dir dir;
    test::event_log log;
    std::atomic<bool> fail_apply{false};
    auto o = logged(log);
    o.inject_failure = [&](std::string_view op, int) {
        return op == "settings_apply" && fail_apply.load() ? SQLITE_IOERR : SQLITE_OK;
    };
    manual_db db{dir / "a.db", o};
    const auto before = db.current_settings();
    std::latch inside{1}, release{1};
    std::thread holder([&] {
        db.transaction([&](auto&) {
            inside.count_down();
            release.wait();
        });
    });
    inside.wait();
    auto s = before;
    s.sync = resilite::synchronous::extra;
    s.statement_cache_capacity = 5;
    fail_apply = true;
    db.reconfigure(s);  // accepted; applied after the transaction
    const bool accepted = db.current_settings() == s;
    release.count_down();
    holder.join();
    CHECK(accepted);
    CHECK(db.query_one<int>("SELECT 1") == 1);  // applies them first, which fails: the query runs on
    REQUIRE(log.count("settings_apply") == 1);
    const auto e = last_event(log, "settings_apply");
    CHECK(e->result == outcome::failed);
    CHECK(e->error == error_class::io);
    CHECK_THAT(e->detail, Catch::Contains("settings_apply") && Catch::Contains("in force before stay"));
    CHECK(db.current_settings() == before);
    CHECK(db.query_one<int>("PRAGMA synchronous") == 2);
    CHECK(db.with_connection([](auto& c) { return c.cache().capacity(); }) == 64);
    // With the lock free, the same failure is the reconfigure()'s own.
    CHECK_THROWS_AS(db.reconfigure(s), resilite::error);
    CHECK(last_event(log, "reconfigure")->result == outcome::failed);
    CHECK(db.current_settings() == before);
    fail_apply = false;
    db.reconfigure(s);
    CHECK(db.query_one<int>("PRAGMA synchronous") == 3);
    CHECK(log.count("settings_apply") == 1);
}

// ---- every accepted setting is honoured ----------------------------------------------------------

TEST_CASE("changing only healing.drill_interval schedules restore drills", "[settings][drill]") {
    using drill_db = resilite::Database<resilite::callback_observer, test::manual_durability,
                                        test::fast_retry, resilite::manual_clock,
                                        resilite::backup<resilite::online_backup<>, resilite::on_demand>>;
    test::temp_dir dir;
    test::event_log log;
    resilite::manual_clock clock;
    drill_db::options o;
    o.observer = log.observer();
    o.clock = clock;
    drill_db db{dir / "d.db", o};
    db.exec("CREATE TABLE t(x)");
    static_cast<void>(db.backup_now());
    auto s = db.current_settings();
    s.healing.drill_interval = 10s;
    db.reconfigure(s);
    clock.advance(11s);
    static_cast<void>(db.maintain());
    CHECK(log.count("drill") == 1);
}

// ---- P16 ----------------------------------------------------------------------------------------------

namespace {

// The fields the property changes, with values it draws: each observable on the connection or
// in current_settings().
struct p16_field {
    std::string path;
    std::function<rc::Gen<std::string>()> valid;    // as text (environment) and JSON (below)
    std::function<rc::Gen<std::string>()> invalid;  // out of range or unparsable
};

const std::vector<p16_field>& p16_fields() {
    static const std::vector<p16_field> f{
        {"sync", [] { return rc::gen::element<std::string>("full", "extra", "FULL"); },
         [] { return rc::gen::element<std::string>("off", "fast", "normal"); }},
        {"busy_timeout",
         [] {
             return rc::gen::map(rc::gen::inRange(0, 5000), [](int v) { return std::to_string(v) + "ms"; });
         },
         [] { return rc::gen::element<std::string>("11min", "5", "-1ms", "2 s"); }},
        {"statement_cache_capacity",
         [] { return rc::gen::map(rc::gen::inRange(1, 300), [](int v) { return std::to_string(v); }); },
         [] { return rc::gen::element<std::string>("0", "10001", "-3", "x"); }},
        {"retry.max_attempts",
         [] { return rc::gen::map(rc::gen::inRange(1, 20), [](int v) { return std::to_string(v); }); },
         [] { return rc::gen::element<std::string>("0", "1e3", "99999999999"); }},
        {"checkpoint_interval",
         [] {
             return rc::gen::map(rc::gen::inRange(1, 3600), [](int v) { return std::to_string(v) + "s"; });
         },
         [] { return rc::gen::element<std::string>("0s", "1500ms", "400d"); }},
        {"backup.keep_last",
         [] { return rc::gen::map(rc::gen::inRange(1, 50), [](int v) { return std::to_string(v); }); },
         [] { return rc::gen::element<std::string>("-1", "2000000"); }},
        {"healing.enabled", [] { return rc::gen::just<std::string>("false"); },
         [] { return rc::gen::element<std::string>("true", "maybe"); }},  // true: no healing<> policy
    };
    return f;
}

const resilite::detail::setting_field& field_at(const std::string& path) {
    return *resilite::detail::find_setting_field(path);
}

// A value as it goes into the settings file: JSON's own types where the field has one.
nlohmann::json as_json(const resilite::detail::setting_field& f, const std::string& text) {
    if (f.type == "integer") {
        const bool plain =
            !text.empty() && text.find_first_not_of("-0123456789") == std::string::npos && text.size() < 18;
        return plain ? nlohmann::json(std::stoll(text)) : nlohmann::json(text);
    }
    if (f.type == "boolean" && (text == "true" || text == "false")) return text == "true";
    return text;
}

}  // namespace

TEST_CASE("P16 configuration hot reload", "[settings][property][P16]") {
    test::temp_dir root;
    int n = 0;
    rc::prop(
        // (No ": " far into this name: Catch 2.13 aborts printing a header indented past its width.)
        "settings from the API, the environment and the file, valid and not: the last valid state is "
        "in force and observed, every refusal an event naming the field",
        [&] {
            const auto dir = root.path() / fmt::format("case{}", ++n);
            std::filesystem::create_directories(dir);
            const auto file = dir / "settings.json";
            test::event_log log;
            resilite::manual_clock clock;
            auto o = logged(log, clock);
            o.settings_file = file;

            // The environment, read at open: a few fields, sometimes one bad value.
            scoped_env env;
            resilite::detail::settings_overlay env_model;
            const auto env_count = *rc::gen::inRange<std::size_t>(0, 3);
            for (std::size_t i = 0; i < env_count; ++i) {
                const auto& pf = p16_fields()[*rc::gen::inRange<std::size_t>(0, p16_fields().size())];
                const auto& f = field_at(pf.path);
                const auto value = *pf.valid();
                env.set(f.variable(), value);
                RC_ASSERT(!f.from_text(env_model.values, value));
                env_model.fields.push_back(&f);
            }
            if (*rc::gen::inRange(0, 4) == 0) {  // a bad one refuses the open, naming it
                const auto& pf = p16_fields()[*rc::gen::inRange<std::size_t>(0, p16_fields().size())];
                const auto& f = field_at(pf.path);
                const auto bad = *pf.invalid();
                scoped_env once{{f.variable(), bad}};
                write_file(file, "{}");
                try {
                    manual_db db{dir / "p.db", o};
                    RC_FAIL("opened with " + f.variable() + "=" + bad);
                } catch (const resilite::error& e) {
                    RC_ASSERT(e.klass() == error_class::invalid_setting);
                    RC_ASSERT(e.technical().note.find(f.variable()) != std::string::npos);
                }
            }
            // Every value env_model names was drawn last for its field: apply in order.
            const auto apply_env = [&](resilite::settings& s) { env_model.apply_to(s); };

            write_file(file, "{}");
            std::string file_text = "{}";
            manual_db db{dir / "p.db", o};
            auto model = manual_db::default_settings();
            apply_env(model);

            const auto check_in_force = [&](const char* step) {
                RC_LOG() << step << "\n";
                const auto now = db.current_settings();
                RC_ASSERT(now == model);
                RC_ASSERT(db.query_one<int>("PRAGMA synchronous") == static_cast<int>(model.sync));
                RC_ASSERT(busy_timeout_of(db) ==
                          static_cast<int>(std::min(model.busy_timeout, model.retry.deadline).count()));
                RC_ASSERT(db.with_connection([](auto& c) { return c.cache().capacity(); }) ==
                          model.statement_cache_capacity);
            };
            check_in_force("open");

            const auto steps = *rc::gen::inRange(1, 12);
            for (int step = 0; step < steps; ++step) {
                const auto& pf = p16_fields()[*rc::gen::inRange<std::size_t>(0, p16_fields().size())];
                const auto& f = field_at(pf.path);
                switch (*rc::gen::inRange(0, 5)) {
                    case 0: {  // the API, valid
                        auto s = model;
                        RC_ASSERT(!f.from_text(s, *pf.valid()));
                        db.reconfigure(s);
                        model = s;
                        check_in_force("reconfigure, valid");
                        break;
                    }
                    case 1: {  // the API, invalid: a value out of range or not allowed for this Database
                        auto s = model;
                        const auto kind = *rc::gen::inRange(0, 4);
                        std::string field;
                        if (kind == 0) {
                            s.statement_cache_capacity = 0, field = "statement_cache_capacity";
                        } else if (kind == 1) {
                            s.busy_timeout = -1ms, field = "busy_timeout";
                        } else if (kind == 2) {
                            s.archive.directory = "/elsewhere", field = "archive.directory";
                        } else {
                            s.retry.max_attempts = 0, field = "retry max_attempts";
                        }
                        try {
                            db.reconfigure(s);
                            RC_FAIL("accepted " + field);
                        } catch (const resilite::error& e) {
                            RC_ASSERT(e.klass() == error_class::invalid_setting);
                        }
                        const auto e = last_event(log, "reconfigure");
                        RC_ASSERT(e->result == outcome::failed);
                        RC_ASSERT(e->detail.find(field) != std::string::npos);
                        check_in_force("reconfigure, invalid");
                        break;
                    }
                    case 2: {  // the file, valid: some fields
                        nlohmann::json j = nlohmann::json::object();
                        auto next = model;
                        const auto count = *rc::gen::inRange(1, 4);
                        for (int i = 0; i < count; ++i) {
                            const auto& qf =
                                p16_fields()[*rc::gen::inRange<std::size_t>(0, p16_fields().size())];
                            const auto& g = field_at(qf.path);
                            const auto v = *qf.valid();
                            const auto dot = g.path.find('.');
                            if (dot == std::string::npos) {
                                j[g.path] = as_json(g, v);
                            } else {
                                j[g.section()][g.name()] = as_json(g, v);
                            }
                        }
                        const auto text = j.dump();
                        resilite::detail::settings_overlay fo;
                        RC_ASSERT(!resilite::detail::parse_settings_json(text, fo));
                        fo.apply_to(next);
                        apply_env(next);
                        write_file(file, text);
                        const auto before = log.count("settings_reload");
                        bool changed = text != file_text;
                        if (*rc::gen::arbitrary<bool>()) {
                            RC_ASSERT(db.reload_settings() == changed);
                        } else {  // the poll of maintain() (the background thread's round)
                            clock.advance(2s);
                            static_cast<void>(db.maintain());
                        }
                        file_text = text;
                        RC_ASSERT(log.count("settings_reload") == before + (changed ? 1 : 0));
                        if (changed) {
                            RC_ASSERT(last_event(log, "settings_reload")->result == outcome::ok);
                            model = next;
                        }
                        check_in_force("file, valid");
                        break;
                    }
                    case 3: {  // the file, invalid: a bad value, an unknown field, a wrong type, bad JSON
                        const auto kind = *rc::gen::inRange(0, 4);
                        nlohmann::json j = nlohmann::json::object();
                        std::string text, named;
                        const auto put = [&](const resilite::detail::setting_field& g, nlohmann::json v) {
                            if (g.section().empty()) {
                                j[g.path] = std::move(v);
                            } else {
                                j[g.section()][g.name()] = std::move(v);
                            }
                        };
                        // A value whose text is sound but that this Database refuses (sync
                        // `normal`, healing on without healing<>), under an environment variable
                        // of the same field: the environment wins field by field, so the file's
                        // value never reaches the settings and the file is taken.
                        bool shadowed = false;
                        if (kind == 0) {
                            const auto bad = *pf.invalid();
                            put(f, as_json(f, bad));
                            named = f.path;
                            auto scratch = model;
                            shadowed = std::find(env_model.fields.begin(), env_model.fields.end(), &f) !=
                                           env_model.fields.end() &&
                                       !f.from_text(scratch, bad);
                        } else if (kind == 1) {
                            put(f, as_json(f, *pf.valid()));
                            j["retry"]["max_attempt"] = 3;
                            named = "retry.max_attempt";
                        } else if (kind == 2) {
                            put(f, nlohmann::json::array({1}));
                            named = f.path;
                        }
                        text = kind == 3 ? std::string{"{\"sync\": "} : j.dump();
                        if (kind == 3) named = "not valid JSON";
                        write_file(file, text);
                        const auto before = log.count("settings_reload");
                        const bool changed = text != file_text;
                        if (shadowed) {
                            RC_ASSERT(db.reload_settings() == changed);
                            file_text = text;
                            RC_ASSERT(log.count("settings_reload") == before + (changed ? 1 : 0));
                            if (changed) RC_ASSERT(last_event(log, "settings_reload")->result == outcome::ok);
                            check_in_force("file, a refused value the environment overrides");
                            break;
                        }
                        try {
                            RC_ASSERT(!db.reload_settings());  // unchanged: nothing to refuse
                            RC_ASSERT(!changed);
                        } catch (const resilite::error& e) {
                            RC_ASSERT(changed);
                            RC_ASSERT(e.klass() == error_class::invalid_setting);
                        }
                        file_text = text;
                        if (changed) {
                            RC_ASSERT(log.count("settings_reload") == before + 1);
                            const auto e = last_event(log, "settings_reload");
                            RC_ASSERT(e->result == outcome::failed);
                            RC_ASSERT(e->error == error_class::invalid_setting);
                            RC_ASSERT(e->detail.find(named) != std::string::npos);
                            RC_ASSERT(e->detail.find(file.string()) != std::string::npos);
                        }
                        check_in_force("file, invalid");
                        break;
                    }
                    case 4: {  // a valid change while another thread holds a transaction (P14)
                        std::latch inside{1}, release{1};
                        std::thread holder([&] {
                            db.transaction([&](auto&) {
                                inside.count_down();
                                release.wait();
                            });
                        });
                        // (No assertion until the holder is released: a failure must not leave it waiting.)
                        const auto value = *pf.valid();
                        const bool through_api = *rc::gen::arbitrary<bool>();
                        inside.wait();
                        auto next = model;
                        bool ok = !f.from_text(next, value);
                        struct let_go {  // also when a call below throws
                            std::latch& release;
                            std::thread& holder;
                            ~let_go() {
                                release.count_down();
                                holder.join();
                            }
                        };
                        {
                            let_go done{release, holder};
                            if (through_api) {
                                db.reconfigure(next);
                            } else {
                                nlohmann::json j = nlohmann::json::object();
                                if (f.section().empty()) {
                                    j[f.path] = as_json(f, value);
                                } else {
                                    j[f.section()][f.name()] = as_json(f, value);
                                }
                                apply_env(next);
                                const auto text = j.dump();
                                write_file(file, text);
                                ok = ok && db.reload_settings() == (text != file_text);
                                if (text == file_text) next = model;
                                file_text = text;
                            }
                            ok = ok && db.current_settings() == next;  // accepted while the lock is held
                        }
                        RC_ASSERT(ok);
                        model = next;
                        check_in_force("a change while a transaction held the writer lock");
                        break;
                    }
                }
            }
        });
}

}  // namespace flow_settings_file_tests
