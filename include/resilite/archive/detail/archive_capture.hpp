#pragma once
// Capture: the outbox and state tables, the triggers that write each row change into the
// outbox (a statement template's id and the row's values), the formatting of those rows into
// SQL text at drain time, the schema records (DDL when the change is additive, a full snapshot
// otherwise) and the baseline snapshot.

#include <resilite/archive/detail/archive_format.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/schema/detail/schema_def.hpp>
#include <resilite/schema/detail/schema_sync.hpp>
#include <resilite/sqlite/connection.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail::archive {

inline constexpr std::string_view outbox_table = "resilite_archive_outbox";

// An outbox row is a whole statement (template NULL: schema records, snapshot markers), or a
// template's id and the row's values (see statement_template).
inline constexpr std::string_view create_internal_sql =
    "CREATE TABLE IF NOT EXISTS resilite_archive_outbox(id INTEGER PRIMARY KEY, template INTEGER, stmt TEXT, "
    "c0, c1, c2, c3, c4, c5, c6, c7);\n"
    "CREATE TABLE IF NOT EXISTS resilite_archive_template(id INTEGER PRIMARY KEY, parts TEXT NOT NULL "
    "UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS resilite_archive_state(id INTEGER PRIMARY KEY CHECK (id = 1), "
    "last_seq INTEGER NOT NULL, last_id INTEGER NOT NULL, format INTEGER NOT NULL, "
    "since_baseline INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE TABLE IF NOT EXISTS resilite_archive_schema(type TEXT NOT NULL, name TEXT NOT NULL, "
    "tbl_name TEXT NOT NULL, sql TEXT NOT NULL, PRIMARY KEY(type, name));\n"
    "INSERT OR IGNORE INTO resilite_archive_state(id, last_seq, last_id, format) VALUES(1, 0, 0, 1);";

// Names the library keeps for itself: never archived, never writable by a replay. The audit
// log is the exception: its rows are committed data, archived (and so healed) like a user
// table's (flow/detail/audit_flow.hpp).
[[nodiscard]] inline bool reserved_name(std::string_view name) {
    const auto l = lower(name);
    if (l.starts_with("sqlite_")) return true;
    if (!l.starts_with("resilite_")) return false;
    // The library's own: its tables (resilite_audit holds committed data and is archived), the
    // capture triggers and archive tables (resilite_archive_...), the indexes the declared
    // schema names. A user's table that merely begins with "resilite_" is archived like any other.
    static constexpr std::string_view own_tables[] = {"resilite_identity", "resilite_queue_state"};
    return std::find(std::begin(own_tables), std::end(own_tables), l) != std::end(own_tables) ||
           l.starts_with("resilite_archive_") || l.starts_with("resilite_unique_") ||
           l.starts_with("resilite_baseline_");
}

// What the archive needs of a declared table: its name and the columns it must never write.
struct capture_table {
    std::string name;
    std::set<std::string> secrets;  // lower-case
};

[[nodiscard]] inline std::vector<capture_table> capture_tables(const schema_def& def) {
    std::vector<capture_table> out;
    for (const auto& t : def.tables) {
        capture_table c{t.name, {}};
        for (const auto& col : t.columns) {
            const bool key =
                std::find(t.primary_key.begin(), t.primary_key.end(), col.name) != t.primary_key.end();
            if (col.secret && !key) c.secrets.insert(lower(col.name));  // a key is never secret
        }
        out.push_back(std::move(c));
    }
    return out;
}

// The table as the database has it now (columns added by sync or migrations included).
struct table_shape {
    std::string name;
    std::vector<existing_column> columns;
    std::vector<std::string> key;  // primary key columns in key order; empty: the rowid
    std::string rowid;             // a name of the rowid no column hides (rowid, _rowid_, oid); empty: none
    bool key_is_rowid = false;     // the key is one INTEGER PRIMARY KEY column: the rowid by another name
};

// The first of SQLite's names for the rowid that no column of `columns` takes: a column named
// rowid hides that name, and a statement saying rowid would mean the column.
template <class Columns, class NameOf>
[[nodiscard]] std::string rowid_name(const Columns& columns, NameOf name_of) {
    for (std::string_view n : {"rowid", "_rowid_", "oid"}) {
        const bool taken = std::any_of(columns.begin(), columns.end(),
                                       [&](const auto& col) { return lower(name_of(col)) == n; });
        if (!taken) return std::string{n};
    }
    return {};
}

[[nodiscard]] inline table_shape shape_of(sqlite::connection& c, const std::string& table) {
    table_shape s{table, schema_inspector{c}.columns(table), {}, {}, false};
    std::vector<std::pair<int, std::string>> pk;
    for (const auto& col : s.columns)
        if (col.pk > 0) pk.emplace_back(col.pk, col.name);
    std::sort(pk.begin(), pk.end());
    for (auto& p : pk)
        s.key.push_back(p.second);
    s.rowid = rowid_name(s.columns, [](const existing_column& col) { return col.name; });
    // The rowid's other name has no index of its own; a key of a WITHOUT ROWID table, or an
    // INTEGER PRIMARY KEY DESC, has one (origin 'pk').
    if (s.key.size() == 1) {
        const auto col = std::find_if(s.columns.begin(), s.columns.end(),
                                      [&](const existing_column& x) { return x.name == s.key.front(); });
        s.key_is_rowid = col != s.columns.end() && lower(col->type) == "integer" &&
                         c.query_one<std::int64_t>("SELECT count(*) FROM pragma_index_list(?) WHERE origin = 'pk'",
                                                   table)
                                 .value_or(1) == 0;
    }
    if (s.key.empty() && s.rowid.empty() && !s.columns.empty()) {
        throw library_failure(
            error_class::archive, "archive",
            resilite::detail::format("table {} has no primary key and columns named rowid, _rowid_ and oid, "
                                     "which hide every name of its rowid, so its rows cannot be archived: "
                                     "declare a primary key or rename one of those columns",
                                     quote_id(table)),
            c.path());
    }
    return s;
}

// A literal for a NOT NULL secret column without a default, so a replayed insert is valid
// without the secret.
[[nodiscard]] inline std::string placeholder(std::string_view type) {
    const auto a = affinity(type);
    if (a == "integer" || a == "numeric") return "0";
    if (a == "real") return "0.0";
    if (a == "blob") return "X''";
    return "''";
}

// A statement with holes: the fixed pieces around each value. Stored once (joined by the unit
// separator) in resilite_archive_template; a captured row stores only the template's id and
// the values themselves, unquoted, in the outbox's untyped columns c0, c1, ... The drain
// quotes them when it writes the text: capturing costs little more than the row's own insert.
struct statement_template {
    std::vector<std::string> pieces;  // values + 1 of them
    std::vector<std::string> values;  // SQL expressions, e.g. NEW."id"

    [[nodiscard]] std::string parts() const {
        return resilite::detail::format("{}", fmt::join(pieces, "\x1f"));
    }
};

// A capture trigger's name: `what` is insert, update or delete.
[[nodiscard]] inline std::string capture_trigger_name(std::string_view table, std::string_view what) {
    return resilite::detail::format("resilite_archive_{}_{}", table, what);
}

// The statements that reproduce a row change, as templates over a row reference: NEW, OLD, or
// the quoted table name for a snapshot.
struct statement_builder {
    const table_shape& t;
    const capture_table& cap;

    [[nodiscard]] bool secret(const existing_column& c) const {
        return cap.secrets.count(lower(c.name)) != 0 &&
               std::find(t.key.begin(), t.key.end(), c.name) == t.key.end();
    }
    [[nodiscard]] bool keyed() const { return !t.key.empty(); }
    [[nodiscard]] std::vector<std::string> key_columns() const {
        return keyed() ? t.key : std::vector<std::string>{t.rowid};
    }
    // The rowid, by the name no column hides (bare: quoted, it would name a column of that name).
    [[nodiscard]] bool is_rowid(const std::string& col) const { return !keyed() && col == t.rowid; }
    [[nodiscard]] std::string ref_col(std::string_view ref, const std::string& col) const {
        return is_rowid(col) ? resilite::detail::format("{}.{}", ref, col)
                             : resilite::detail::format("{}.{}", ref, quote_id(col));
    }
    [[nodiscard]] std::string id_of(const std::string& col) const { return is_rowid(col) ? col : quote_id(col); }
    // The key column that is the rowid by another name: its values are integers, equal ones the same.
    [[nodiscard]] bool integer_key(const std::string& col) const { return t.key_is_rowid && t.key.front() == col; }

    // Columns whose values are archived: the key (rowid first for a table without one), then
    // every other column that is not secret.
    [[nodiscard]] std::vector<std::string> archived_columns() const {
        std::vector<std::string> out =
            keyed() ? std::vector<std::string>{} : std::vector<std::string>{t.rowid};
        for (const auto& c : t.columns)
            if (!secret(c)) out.push_back(c.name);
        return out;
    }

    // INSERT ... ON CONFLICT(key) DO UPDATE SET every archived column: idempotent, and a secret
    // column of an existing row keeps its value. The key columns are set too: the conflict is
    // found under the key's collation and affinity, so an INSERT OR REPLACE of 'dEF' over 'DEF'
    // (NOCASE), or of 1.0 over 1 (no affinity), must leave the new bytes, as it did live.
    [[nodiscard]] statement_template upsert(std::string_view ref) const {
        const auto cols = archived_columns();
        const auto keys = key_columns();
        std::vector<std::string> names;
        statement_template out;
        for (const auto& c : cols) {
            names.push_back(id_of(c));
            out.values.push_back(ref_col(ref, c));
        }
        std::string fixed_tail;  // required secrets get a placeholder, never their value
        for (const auto& c : t.columns) {
            if (secret(c) && c.not_null && !c.default_sql) {
                names.push_back(quote_id(c.name));
                fixed_tail += "," + placeholder(c.type);
            }
        }
        std::vector<std::string> sets;
        for (const auto& c : cols) {
            if (is_rowid(c) || integer_key(c)) continue;  // (an integer that equals is the same)
            sets.push_back(resilite::detail::format("{0}=excluded.{0}", quote_id(c)));
        }
        std::vector<std::string> key_ids;
        for (const auto& k : keys)
            key_ids.push_back(id_of(k));
        const auto conflict =
            sets.empty() ? resilite::detail::format(" ON CONFLICT({}) DO NOTHING;", fmt::join(key_ids, ","))
                         : resilite::detail::format(" ON CONFLICT({}) DO UPDATE SET {};",
                                                    fmt::join(key_ids, ","), fmt::join(sets, ","));
        out.pieces.push_back(
            resilite::detail::format("INSERT INTO {}({}) VALUES(", quote_id(t.name), fmt::join(names, ",")));
        for (std::size_t i = 1; i < cols.size(); ++i)
            out.pieces.emplace_back(",");
        out.pieces.push_back(fixed_tail + ")" + conflict);
        return out;
    }

    [[nodiscard]] statement_template erase(std::string_view ref) const {
        statement_template out;
        std::string piece = resilite::detail::format("DELETE FROM {} WHERE ", quote_id(t.name));
        for (const auto& k : key_columns()) {
            out.pieces.push_back(piece + resilite::detail::format("{} IS ", id_of(k)));
            out.values.push_back(ref_col(ref, k));
            piece = " AND ";
        }
        out.pieces.emplace_back(";");
        return out;
    }

    [[nodiscard]] std::string changed(const std::vector<std::string>& cols) const {
        std::vector<std::string> parts;
        for (const auto& c : cols)
            // As bytes: under a column's NOCASE (or other) collation a change of case would
            // compare equal and go unarchived; and by type: 1 IS 1.0, though the two read back
            // differently. (0.0 and -0.0 no SQL function tells apart: that change is not seen.)
            parts.push_back(resilite::detail::format("{0} IS NOT {1} COLLATE BINARY OR typeof({0}) IS NOT typeof({1})",
                                                     ref_col("OLD", c), ref_col("NEW", c)));
        return resilite::detail::format("{}", fmt::join(parts, " OR "));
    }

    [[nodiscard]] std::string trigger_name(std::string_view what) const { return capture_trigger_name(t.name, what); }

    // INSERT INTO the outbox of a template's id and values; with `select_tail` ("WHERE ...",
    // "FROM ...") an INSERT ... SELECT.
    [[nodiscard]] static std::string capture(std::int64_t id, const statement_template& st,
                                             std::string_view select_tail = {}) {
        std::string cols = "template";
        for (std::size_t i = 0; i < st.values.size(); ++i)
            cols += resilite::detail::format(",c{}", i);
        const auto values = resilite::detail::format("{}, {}", id, fmt::join(st.values, ", "));
        return select_tail.empty()
                   ? resilite::detail::format("INSERT INTO {}({}) VALUES({});", outbox_table, cols, values)
                   : resilite::detail::format("INSERT INTO {}({}) SELECT {} {};", outbox_table, cols, values,
                                              select_tail);
    }

    // `upsert_id`, `erase_id`: the ids of this table's templates in resilite_archive_template.
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> triggers(std::int64_t upsert_id,
                                                                            std::int64_t erase_id) const {
        const auto on = quote_id(t.name);
        return {
            {trigger_name("insert"),
             resilite::detail::format("CREATE TRIGGER {} AFTER INSERT ON {} BEGIN {} END",
                                      quote_id(trigger_name("insert")), on,
                                      capture(upsert_id, upsert("NEW")))},
            {trigger_name("update"),
             resilite::detail::format("CREATE TRIGGER {} AFTER UPDATE ON {} WHEN {} BEGIN {} {} END",
                                      quote_id(trigger_name("update")), on, changed(archived_columns()),
                                      capture(erase_id, erase("OLD"), "WHERE " + changed(key_columns())),
                                      capture(upsert_id, upsert("NEW")))},
            {trigger_name("delete"),
             resilite::detail::format("CREATE TRIGGER {} AFTER DELETE ON {} BEGIN {} END",
                                      quote_id(trigger_name("delete")), on, capture(erase_id, erase("OLD")))},
        };
    }
};

// ---- the schema as archived ---------------------------------------------------------------------

struct schema_object {
    std::string type, name, tbl_name, sql;
    friend bool operator==(const schema_object&, const schema_object&) = default;
};

// The declared tables' objects as the database has them (tables, their indexes and triggers;
// the library's own left out), tables first.
[[nodiscard]] inline std::vector<schema_object> live_objects(sqlite::connection& c,
                                                             const std::vector<capture_table>& tables) {
    std::set<std::string> declared;
    for (const auto& t : tables)
        declared.insert(lower(t.name));
    std::vector<schema_object> out;
    for (auto& [type, name, tbl, sql] : c.query_all<std::string, std::string, std::string, std::string>(
             "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
             "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name")) {
        if (reserved_name(name) || declared.count(lower(tbl)) == 0) continue;
        out.push_back({type, name, tbl, sql});
    }
    // The schema's version (what migrations have run) is part of the schema: a database rebuilt
    // or healed without it would run its migrations again.
    if (const auto version = c.query_one<std::int64_t>("PRAGMA user_version").value_or(0); version != 0)
        out.push_back(
            {"pragma", "user_version", "", resilite::detail::format("PRAGMA user_version = {}", version)});
    return out;
}

// A row of resilite_archive_schema that is no schema object: the capture triggers were installed
// on this database (one rebuilt from its archive has none yet, and no such row).
inline constexpr std::string_view capture_installed_type = "capture";

[[nodiscard]] inline std::vector<schema_object> archived_objects(sqlite::connection& c) {
    std::vector<schema_object> out;
    for (auto& [type, name, tbl, sql] : c.query_all<std::string, std::string, std::string, std::string>(
             "SELECT type, name, tbl_name, sql FROM resilite_archive_schema WHERE type <> ? "
             "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name",
             capture_installed_type)) {
        out.push_back({type, name, tbl, sql});
    }
    return out;
}

// "CREATE TABLE x(...)" -> "CREATE TABLE IF NOT EXISTS x(...);" (SQLite stores the text
// normalized: upper-case keywords, IF NOT EXISTS removed).
[[nodiscard]] inline std::string if_not_exists(std::string_view sql) {
    for (std::string_view head :
         {"CREATE TABLE ", "CREATE INDEX ", "CREATE UNIQUE INDEX ", "CREATE TRIGGER "}) {
        if (sql.starts_with(head))
            return resilite::detail::format("{}IF NOT EXISTS {};", head, sql.substr(head.size()));
    }
    return resilite::detail::format("{};", sql);
}

// Columns of a CREATE TABLE text, by letting SQLite read it in a scratch database.
[[nodiscard]] inline std::vector<existing_column> columns_of_sql(const schema_object& table) {
    sqlite::connection scratch{":memory:"};
    scratch.exec_script(table.sql);
    return schema_inspector{scratch}.columns(table.name);
}

[[nodiscard]] inline std::string column_definition(const existing_column& c) {
    std::string out = quote_id(c.name);
    if (!c.type.empty()) out += " " + c.type;
    if (c.not_null) out += " NOT NULL";
    if (c.default_sql) out += " DEFAULT " + *c.default_sql;
    return out;
}

// The columns `after` has beyond `before` when it is `before` with columns added at its end (what
// ALTER TABLE ... ADD COLUMN does); nothing when it differs otherwise.
[[nodiscard]] inline std::optional<std::vector<existing_column>> added_columns(const std::vector<existing_column>& before,
                                                                            const std::vector<existing_column>& after) {
    if (after.size() < before.size()) return std::nullopt;
    for (std::size_t i = 0; i < before.size(); ++i) {
        const auto &a = before[i], &b = after[i];
        if (a.name != b.name || a.type != b.type || a.not_null != b.not_null || a.default_sql != b.default_sql ||
            a.pk != b.pk)
            return std::nullopt;
    }
    std::vector<existing_column> out(after.begin() + static_cast<std::ptrdiff_t>(before.size()), after.end());
    if (std::any_of(out.begin(), out.end(), [](const existing_column& c) { return c.pk > 0; })) return std::nullopt;
    return out;
}

// The statements that take the archived schema to the live one, or nothing when the change is
// not additive (something removed or redefined): then only a snapshot can describe it.
[[nodiscard]] inline std::optional<std::vector<std::string>> additive_changes(
    const std::vector<schema_object>& archived, const std::vector<schema_object>& live) {
    std::map<std::string, const schema_object*> before;
    for (const auto& o : archived)
        before[o.type + ":" + lower(o.name)] = &o;
    std::vector<std::string> out;
    std::size_t matched = 0;
    for (const auto& o : live) {
        const auto it = before.find(o.type + ":" + lower(o.name));
        if (it == before.end()) {
            out.push_back(if_not_exists(o.sql));
            continue;
        }
        ++matched;
        if (it->second->sql == o.sql) continue;
        if (o.type != "table") return std::nullopt;
        const auto added = added_columns(columns_of_sql(*it->second), columns_of_sql(o));
        if (!added || added->empty()) return std::nullopt;
        for (const auto& col : *added)
            out.push_back(resilite::detail::format("ALTER TABLE {} ADD COLUMN {};", quote_id(o.name),
                                                   column_definition(col)));
    }
    if (matched != archived.size()) return std::nullopt;  // something was dropped or renamed
    // Tables first (their columns included), then indexes and triggers.
    std::stable_partition(out.begin(), out.end(), [](const std::string& s) {
        return s.starts_with("CREATE TABLE") || s.starts_with("ALTER TABLE");
    });
    return out;
}

// The id of a template, stored the first time it is used. Templates are never changed or
// removed: outbox rows captured under an older shape of a table still refer to theirs.
[[nodiscard]] inline std::int64_t template_id(sqlite::connection& c, const statement_template& st) {
    const auto parts = st.parts();
    c.exec("INSERT OR IGNORE INTO resilite_archive_template(parts) VALUES(?)", parts);
    return c.query_one<std::int64_t>("SELECT id FROM resilite_archive_template WHERE parts = ?", parts)
        .value_or(0);
}

// The outbox has as many value columns as the widest template needs.
inline void widen_outbox(sqlite::connection& c, std::size_t values) {
    auto have = static_cast<std::size_t>(
        c.query_one<std::int64_t>("SELECT count(*) - 3 FROM pragma_table_info('resilite_archive_outbox')")
            .value_or(0));
    for (; have < values; ++have)
        c.exec_script(resilite::detail::format("ALTER TABLE resilite_archive_outbox ADD COLUMN c{}", have));
}

inline void append_hex(std::string& out, std::string_view bytes) {
    static constexpr char digits[] = "0123456789ABCDEF";
    out.reserve(out.size() + 2 * bytes.size());
    for (unsigned char b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
}

// ---- REAL values as text that SQLite reads back bit for bit ----------------------------------
//
// SQLite 3.40.1 (Debian 12's) reads decimal text with a conversion that is not correctly
// rounded (sqlite3AtoF: a 64-bit significand scaled by a power of ten, below 1e-307 rounded
// twice in double): the shortest exact form of a double does not always read back as
// the same double (-821182.317727955 reads back as -821182.3177279551, 1 in 200 random bit
// patterns change). A numeric literal and CAST(text AS REAL) both go through that function, so
// each text is checked by SQLite itself before it is written. Below about 1e-290 some doubles
// are the result of no decimal text at all; those are written as an exact product of two
// decimals, `(a*b)` with b a power of two: the multiplication is exact.

[[nodiscard]] inline bool same_bits(double a, double b) noexcept {
    return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

// What this connection's SQLite makes of decimal text as a number. Holds its statement from
// the first value to the last (a drain reads thousands: one cache lookup, not one per value).
class real_reader {
public:
    explicit real_reader(sqlite::connection& c) : c_(c) {}
    [[nodiscard]] sqlite::connection& connection() const noexcept { return c_; }
    [[nodiscard]] double operator()(std::string_view text) {
        if (!stmt_) stmt_.emplace(c_.prepare_cached("SELECT CAST(?1 AS REAL)"));  // not the outbox's statement
        sqlite3_stmt* h = (*stmt_)->native_handle();
        c_.check(sqlite3_bind_text(h, 1, text.data(), static_cast<int>(text.size()), SQLITE_STATIC), "bind");
        if (!(*stmt_)->step()) {
            throw library_failure(error_class::archive, "archive", "CAST(? AS REAL) returned no row", c_.path());
        }
        const double v = sqlite3_column_double(h, 0);
        sqlite3_reset(h);
        return v;
    }

private:
    sqlite::connection& c_;
    std::optional<sqlite::statement_cache::lease> stmt_;
};

// `digits` times ten to the power `exp10`, as d.ddd...e<exp>.
[[nodiscard]] inline std::string scientific(std::uint64_t digits, int exp10) {
    const auto m = resilite::detail::format("{}", digits);
    std::string out = m.substr(0, 1) + "." + (m.size() > 1 ? m.substr(1) : std::string{"0"});
    fmt::format_to(std::back_inserter(out), "e{}", exp10 + static_cast<int>(m.size()) - 1);
    return out;
}

// Appends the shortest exact form of `a` (finite, >= 0) when SQLite reads it back as exactly `a`
// (almost always: one step of a held statement), without an allocation; false otherwise, with
// nothing appended.
[[nodiscard]] inline bool append_shortest(std::string& out, real_reader& read, double a) {
    char buf[48];
    const auto n = fmt::format_to_n(buf, sizeof buf - 3, "{}", a).size;  // at most 24 characters
    if (n > sizeof buf - 3) return false;
    std::string_view text{buf, n};
    if (text.find_first_of(".e") == std::string_view::npos) {  // stays a REAL
        buf[n] = '.';
        buf[n + 1] = '0';
        text = {buf, n + 2};
    }
    if (!same_bits(read(text), a)) return false;
    out += text;
    return true;
}

// Decimal text SQLite reads as exactly `a` (finite, > 0 or +0.0), or nothing. First the shortest
// exact form (unless `shortest_tried`: append_shortest() already failed for `a`); then, with 17,
// 18 and 19 significant digits (SQLite keeps no more), the significands next to the correctly
// rounded one, searched in the direction SQLite's result is off (the conversion is monotonic).
[[nodiscard]] inline std::optional<std::string> exact_decimal(real_reader& read, double a,
                                                              bool shortest_tried = false) {
    if (std::string text; !shortest_tried && append_shortest(text, read, a)) return text;
    for (const int n : {17, 18, 19}) {
        const auto e = resilite::detail::format("{:.{}e}", a, n - 1);  // d.ddd...e[+-]xx
        const auto at_e = e.find('e');
        std::uint64_t m = 0;
        for (char ch : std::string_view{e}.substr(0, at_e))
            if (ch != '.') m = m * 10 + static_cast<std::uint64_t>(ch - '0');
        const int exp10 = std::stoi(e.substr(at_e + 1)) - (n - 1);
        const auto value = [&](std::uint64_t digits) { return read(scientific(digits, exp10)); };
        double got = value(m);
        if (same_bits(got, a)) return scientific(m, exp10);
        // Gallop away from the side SQLite's result is on until it crosses `a`, then halve.
        const bool up = got < a;
        std::uint64_t near = m, far = m;  // value(near) is on the first side
        bool crossed = false;
        for (std::uint64_t step = 1; step <= (std::uint64_t{1} << 24); step *= 2) {
            if (!up && step >= near) break;  // significands stay above 0
            far = up ? near + step : near - step;
            got = value(far);
            if (same_bits(got, a)) return scientific(far, exp10);
            if ((got < a) != up) {
                crossed = true;
                break;
            }
            near = far;
        }
        if (!crossed) continue;
        while ((up ? far - near : near - far) > 1) {
            const std::uint64_t mid = up ? near + (far - near) / 2 : far + (near - far) / 2;
            got = value(mid);
            if (same_bits(got, a)) return scientific(mid, exp10);
            ((got < a) == up ? near : far) = mid;
        }
    }
    return std::nullopt;
}

// Appends a REAL literal that this SQLite reads back as exactly `d`; a library error of class
// archive if there is none (never seen), rather than a value that changes on the way.
inline void append_real(std::string& out, real_reader& read, double d) {
    if (std::isnan(d)) {  // SQLite stores NaN as NULL: never read from a column
        throw library_failure(error_class::archive, "archive", "a REAL value is NaN", read.connection().path());
    }
    if (std::signbit(d)) out += '-';
    const double a = std::fabs(d);
    if (std::isinf(a)) {
        out += "9.0e+999";
        return;
    }
    if (append_shortest(out, read, a)) return;
    if (auto text = exact_decimal(read, a, true)) {
        out += *text;
        return;
    }
    // No decimal text reads as `a`: a product of two that do, exact since `a` is a double.
    for (const int k : {600, 500, 700}) {
        const int shift = a < 1 ? k : -k;
        const auto scaled = exact_decimal(read, std::ldexp(a, shift));
        const auto unit = exact_decimal(read, std::ldexp(1.0, -shift));
        if (scaled && unit) {
            fmt::format_to(std::back_inserter(out), "({}*{})", *scaled, *unit);
            return;
        }
    }
    throw library_failure(
        error_class::archive, "archive",
        resilite::detail::format("no SQL text found that SQLite reads back as the REAL {:a}", d),
        read.connection().path());
}
inline void append_real(std::string& out, sqlite::connection& c, double d) {
    real_reader read{c};
    append_real(out, read, d);
}

// A value as an SQL literal that reads back as exactly the same value and type (what SQLite's
// quote() gives, but with a REAL checked to read back bit for bit, see append_real, and text
// with NUL bytes or carriage returns kept whole).
inline void append_literal(std::string& out, real_reader& read, sqlite3_stmt* s, int col) {
    switch (sqlite3_column_type(s, col)) {
        case SQLITE_INTEGER: {
            const fmt::format_int digits{sqlite3_column_int64(s, col)};
            out.append(digits.data(), digits.size());
            return;
        }
        case SQLITE_FLOAT:
            append_real(out, read, sqlite3_column_double(s, col));
            return;
        case SQLITE_TEXT: {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
            const std::string_view text{p, static_cast<std::size_t>(sqlite3_column_bytes(s, col))};
            // NUL would cut the text; a CR the sqlite3 shell drops before a line feed: hex.
            if (text.find_first_of(std::string_view{"\0\r", 2}) != std::string_view::npos) {
                out += "CAST(X'";
                append_hex(out, text);
                out += "' AS TEXT)";
                return;
            }
            append_quoted(out, text, '\'');
            return;
        }
        case SQLITE_BLOB: {
            const auto* p = static_cast<const char*>(sqlite3_column_blob(s, col));
            out += "X'";
            append_hex(out, {p, static_cast<std::size_t>(sqlite3_column_bytes(s, col))});
            out += '\'';
            return;
        }
        default:
            out += "NULL";
    }
}
inline void append_literal(std::string& out, sqlite::connection& c, sqlite3_stmt* s, int col) {
    real_reader read{c};
    append_literal(out, read, s, col);
}

// Templates by id, read once (they never change).
class template_cache {
public:
    [[nodiscard]] const std::vector<std::string>& pieces(sqlite::connection& c, std::int64_t id) {
        auto it = pieces_.find(id);
        if (it == pieces_.end()) {
            const auto parts =
                c.query_one<std::string>("SELECT parts FROM resilite_archive_template WHERE id = ?", id);
            if (!parts) {
                throw library_failure(
                    error_class::archive, "archive",
                    resilite::detail::format("outbox row refers to template {}, which is missing", id),
                    c.path());
            }
            std::vector<std::string> out;
            std::size_t from = 0;
            for (auto sep = parts->find('\x1f'); sep != std::string::npos; sep = parts->find('\x1f', from)) {
                out.push_back(parts->substr(from, sep - from));
                from = sep + 1;
            }
            out.push_back(parts->substr(from));
            it = pieces_.emplace(id, std::move(out)).first;
        }
        return it->second;
    }

private:
    std::map<std::int64_t, std::vector<std::string>> pieces_;
};

// Calls f(id, statement) for each outbox row above `after_id` (up to `up_to`), in order, one
// row in memory at a time.
template <class F>
void for_each_outbox_row(sqlite::connection& c, template_cache& templates, std::int64_t after_id,
                         std::int64_t up_to, F&& f) {
    // SELECT *: another process may have widened the outbox; SQLite re-prepares and the new
    // columns are there.
    auto stmt =
        c.prepare_cached("SELECT * FROM resilite_archive_outbox WHERE id > ? AND id <= ? ORDER BY id");
    stmt->bind_all(after_id, up_to);
    struct reset_on_exit {
        sqlite::statement& s;
        ~reset_on_exit() { s.reset(); }
    } guard{*stmt};
    std::string statement;
    real_reader read{c};
    while (stmt->step()) {
        sqlite3_stmt* h = stmt->native_handle();
        const auto id = sqlite3_column_int64(h, 0);
        if (sqlite3_column_type(h, 1) == SQLITE_NULL) {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(h, 2));
            statement.assign(text != nullptr ? text : "");
        } else {
            const auto& pieces = templates.pieces(c, sqlite3_column_int64(h, 1));
            const int values = static_cast<int>(pieces.size()) - 1;
            if (3 + values > sqlite3_column_count(h)) {
                throw library_failure(
                    error_class::archive, "archive",
                    resilite::detail::format("outbox row {} needs {} values but the outbox has {} columns",
                                             id, values, sqlite3_column_count(h) - 3),
                    c.path());
            }
            statement.assign(pieces[0]);
            for (int i = 0; i < values; ++i) {
                append_literal(statement, read, h, 3 + i);
                statement += pieces[static_cast<std::size_t>(i) + 1];
            }
        }
        f(id, std::string_view{statement});
    }
}

// Outbox ids only grow (a drain takes the rows above the last archived id), yet the table has
// no AUTOINCREMENT (a write to sqlite_sequence for every captured row): instead the row with
// the last archived id always stays, already archived, so the next id is always above it.
inline void keep_outbox_numbering(sqlite::connection& c) {
    c.exec("DELETE FROM resilite_archive_outbox WHERE id < (SELECT last_id FROM resilite_archive_state)");
    c.exec(
        "INSERT OR IGNORE INTO resilite_archive_outbox(id, stmt) SELECT last_id, '-- archived' FROM "
        "resilite_archive_state WHERE last_id > 0");
}

inline void add_to_outbox(sqlite::connection& c, std::string_view stmt) {
    c.exec("INSERT INTO resilite_archive_outbox(stmt) VALUES(?)", stmt);
}

// A full snapshot: the schema and every row of the declared tables, between markers that make
// it a record of its own. A rebuild starts from the newest one.
// Every row of one table, as upserts (a table no capture trigger saw: new, or changed).
inline void add_table_rows(sqlite::connection& c, const capture_table& cap) {
    const auto shape = shape_of(c, cap.name);
    if (shape.columns.empty()) return;
    const statement_builder b{shape, cap};
    const auto u = b.upsert(quote_id(cap.name));
    widen_outbox(c, u.values.size());
    c.exec_script(statement_builder::capture(template_id(c, u), u, "FROM " + quote_id(cap.name)));
}

inline void add_baseline(sqlite::connection& c, const std::vector<capture_table>& tables,
                         const std::vector<schema_object>& live) {
    add_to_outbox(c, baseline_begin);
    add_to_outbox(c, baseline_every_table);
    for (const auto& o : live)
        add_to_outbox(c, if_not_exists(o.sql));
    for (const auto& cap : tables)
        add_table_rows(c, cap);
    add_to_outbox(c, baseline_end);
}

// Makes the capture triggers match the tables as they are now; returns true when it changed
// any (the caller holds a write transaction).
inline bool install_triggers(sqlite::connection& c, const std::vector<capture_table>& tables) {
    std::map<std::string, std::string> want;  // lower(name) -> sql
    for (const auto& cap : tables) {
        const auto shape = shape_of(c, cap.name);
        if (shape.columns.empty()) continue;
        const statement_builder b{shape, cap};
        const auto u = b.upsert("NEW");
        const auto e = b.erase("OLD");
        widen_outbox(c, std::max(u.values.size(), e.values.size()));
        for (auto& [name, sql] : b.triggers(template_id(c, u), template_id(c, e)))
            want[lower(name)] = sql;
    }
    bool changed = false;
    for (auto& [name, sql] :
         c.query_all<std::string, std::string>("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                               "AND name LIKE 'resilite\\_archive\\_%' "
                                               "ESCAPE '\\'")) {
        const auto it = want.find(lower(name));
        if (it != want.end() && it->second == sql) {
            want.erase(it);
            continue;
        }
        c.exec_script(resilite::detail::format("DROP TRIGGER {}", quote_id(name)));
        changed = true;
    }
    for (const auto& [name, sql] : want) {
        c.exec_script(sql);
        changed = true;
    }
    return changed;
}

// The columns a database's capture triggers leave out ("table.column", lower case): its secret
// columns, read from the database itself, for a program that does not declare the schema (the
// resilite command) and for tables the schema does not declare. A table without an insert
// trigger is not archived and adds nothing.
[[nodiscard]] inline std::set<std::string> unarchived_columns(sqlite::connection& c) {
    std::set<std::string> out;
    for (auto& [table, sql] : c.query_all<std::string, std::string>(
             "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'resilite\\_archive\\_%\\_insert' "
             "ESCAPE '\\' AND sql IS NOT NULL")) {
        for (auto& col : c.query_all<std::string>("SELECT name FROM pragma_table_info(?)", table)) {
            std::string quoted = "NEW.\"";
            for (const char ch : col)
                quoted += ch == '"' ? std::string{"\"\""} : std::string(1, ch);
            if (sql.find(quoted + "\"") == std::string::npos) out.insert(lower(table) + "." + lower(col));
        }
    }
    return out;
}

}  // namespace resilite::detail::archive
