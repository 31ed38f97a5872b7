#pragma once
// Schema sync: compares a declared schema with the database and adds what is missing, in one
// transaction. Anything that could only be fixed by rebuilding a table (and so risk its data)
// is reported as drift and never touched.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/schema/detail/schema_def.hpp>
#include <resilite/schema/schema_report.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/reads_only.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace resilite::detail {

[[nodiscard]] inline std::string lower(std::string_view s) {
    std::string out{s};
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// SQLite's column affinity rules (datatype3.html, section 3.1).
[[nodiscard]] inline std::string_view affinity(std::string_view declared) {
    const auto t = lower(declared);
    if (t.find("int") != std::string::npos) return "INTEGER";
    if (t.find("char") != std::string::npos || t.find("clob") != std::string::npos ||
        t.find("text") != std::string::npos) {
        return "TEXT";
    }
    if (t.find("blob") != std::string::npos || t.empty()) return "BLOB";
    if (t.find("real") != std::string::npos || t.find("floa") != std::string::npos ||
        t.find("doub") != std::string::npos) {
        return "REAL";
    }
    return "NUMERIC";
}

// Default expressions compare without outer parentheses and surrounding blanks.
[[nodiscard]] inline std::string normalize_default(std::string_view s) {
    auto trim = [](std::string_view v) {
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front())))
            v.remove_prefix(1);
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back())))
            v.remove_suffix(1);
        return v;
    };
    auto v = trim(s);
    while (v.size() >= 2 && v.front() == '(' && v.back() == ')')
        v = trim(v.substr(1, v.size() - 2));
    return std::string{v};
}

struct existing_column {
    std::string name;
    std::string type;
    bool not_null = false;
    std::optional<std::string> default_sql;
    int pk = 0;  // position in the primary key, 0 when not part of it
};

// One column's foreign key as the database has it (pragma_foreign_key_list).
struct existing_reference {
    std::string column;  // the child column ("from")
    foreign_key_def to;  // to.column is empty when the database names only the parent table
    std::string on_delete, on_update;
};

// The table a trigger's text (after CREATE TRIGGER "name") fires on, lower case and unquoted:
// the name after the first ON that is a keyword (not quoted, not in a comment). Empty when the
// text does not say it plainly (a qualified name, a quoted one with a doubled quote inside).
[[nodiscard]] inline std::string trigger_table(std::string_view sql) {
    std::size_t i = 0;
    const auto blank = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; };
    bool plain = true, quoted = false;
    const auto word = [&]() -> std::string {
        i += first_word_at(sql.substr(i));  // (past blanks and comments)
        const auto from = i;
        quoted = i < sql.size() && (sql[i] == '"' || sql[i] == '`' || sql[i] == '[' || sql[i] == '\'');
        if (quoted) {
            const char close = sql[i] == '[' ? ']' : sql[i];
            const auto end = sql.find(close, i + 1);
            if (end == std::string_view::npos) {
                i = sql.size();
                plain = false;
                return {};
            }
            i = end + 1;
            if (i < sql.size() && (sql[i] == close || sql[i] == '.')) plain = false;
            return std::string{sql.substr(from + 1, end - from - 1)};
        }
        while (i < sql.size() && !blank(sql[i]) && sql[i] != '(' && sql[i] != ',' && sql[i] != '-' && sql[i] != '/')
            ++i;
        if (i == from) ++i;  // (a punctuation mark alone)
        return std::string{sql.substr(from, i - from)};
    };
    while (i < sql.size()) {
        const auto w = lower(word());
        if (quoted) continue;
        if (w == "begin") return {};
        if (w != "on") continue;
        const auto table = word();
        if (!plain || table.find('.') != std::string::npos) return {};
        return lower(table);
    }
    return {};
}

// Whether the declaration has a table of that name (lower case).
[[nodiscard]] inline bool declares_table(const schema_def& def, std::string_view lower_name) {
    return std::any_of(def.tables.begin(), def.tables.end(),
                       [&](const table_def& t) { return lower(t.name) == lower_name; });
}

[[nodiscard]] inline std::string index_name_taken(std::string_view index, std::string_view table) {
    return resilite::detail::format(
        "the index name {} is taken by an index on table {}; it was left alone: give the declared index another name",
        index, table);
}

struct schema_inspector {
    sqlite::connection& c;
    std::map<std::string, std::string> objects;  // "type:lower(name)" -> sql
    std::map<std::string, std::string> owners;   // "type:lower(name)" -> lower(tbl_name)

    explicit schema_inspector(sqlite::connection& conn) : c(conn) {
        for (const auto& [type, name, table, sql] :
             c.query_all<std::string, std::string, std::string, std::optional<std::string>>(
                 "SELECT type, name, tbl_name, sql FROM sqlite_master")) {
            objects[type + ":" + lower(name)] = sql.value_or("");
            owners[type + ":" + lower(name)] = lower(table);
        }
    }
    // The table an index or trigger of that name belongs to (lower case; empty when none).
    [[nodiscard]] std::string owner(std::string_view type, std::string_view name) const {
        const auto it = owners.find(std::string{type} + ":" + lower(name));
        return it == owners.end() ? std::string{} : it->second;
    }
    [[nodiscard]] const std::string* find(std::string_view type, std::string_view name) const {
        const auto it = objects.find(std::string{type} + ":" + lower(name));
        return it == objects.end() ? nullptr : &it->second;
    }
    [[nodiscard]] std::vector<existing_column> columns(const std::string& table) const {
        std::vector<existing_column> out;
        for (const auto& [name, type, notnull, dflt, pk] :
             c.query_all<std::string, std::string, int, std::optional<std::string>, int>(
                 "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)", table)) {
            out.push_back({name, type, notnull != 0, dflt, pk});
        }
        return out;
    }
    // Single-column foreign keys only: a composite one is never declared, so it is reported as
    // undeclared under its first column.
    [[nodiscard]] std::vector<existing_reference> references(const std::string& table) const {
        std::vector<existing_reference> out;
        for (const auto& [from, parent, to, on_update, on_delete] :
             c.query_all<std::string, std::string, std::optional<std::string>, std::string, std::string>(
                 "SELECT \"from\", \"table\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?) "
                 "WHERE seq = 0",
                 table)) {
            existing_reference r;  // member by member: g++ 12 -O2 sees a false "maybe uninitialized" in braces
            r.column = from;
            r.to.table = parent;
            r.to.column = to.value_or("");
            r.on_delete = on_delete;
            r.on_update = on_update;
            out.push_back(std::move(r));
        }
        return out;
    }
    [[nodiscard]] bool has_rows(const std::string& table) const {
        return c.query_one<int>(resilite::detail::format("SELECT EXISTS(SELECT 1 FROM {})", quote_id(table)))
                   .value_or(0) != 0;
    }
    // A unique index (or UNIQUE / PRIMARY KEY constraint) on exactly this one column.
    [[nodiscard]] bool unique_on(const std::string& table, const std::string& column) const {
        for (const auto& [index, unique] :
             c.query_all<std::string, int>("SELECT name, \"unique\" FROM pragma_index_list(?)", table)) {
            if (unique == 0) continue;
            const auto cols = c.query_all<std::string>("SELECT name FROM pragma_index_info(?)", index);
            if (cols.size() == 1 && lower(cols[0]) == lower(column)) return true;
        }
        return false;
    }
};

// A declared column's foreign key against the database's: SQLite cannot add or change the
// REFERENCES clause of an existing column, so any difference is a warning (strict fails).
inline void check_reference(schema_report& r, const table_def& t, const column_def& col,
                            const std::vector<existing_reference>& refs) {
    using severity = schema_report::severity;
    const existing_reference* have = nullptr;
    for (const auto& e : refs)
        if (lower(e.column) == lower(col.name)) have = &e;
    if (!col.references) {
        if (have != nullptr)
            r.drifts.push_back(
                {severity::warning, t.name, col.name,
                 resilite::detail::format("the database has a foreign key to {} that is not declared (kept, "
                                          "enforced)",
                                          have->to.table)});
        return;
    }
    const auto& want = *col.references;
    const auto declared = resilite::detail::format("declared{}", references_sql(want));
    if (have == nullptr) {
        r.drifts.push_back(
            {severity::warning, t.name, col.name,
             resilite::detail::format("{}, but the database has no foreign key on this column (SQLite cannot "
                                      "add one to an existing column: rebuild the table in a migration)",
                                      declared)});
        return;
    }
    const bool same = lower(have->to.table) == lower(want.table) &&
                      (have->to.column.empty() || lower(have->to.column) == lower(want.column)) &&
                      have->on_delete == to_sql(want.on_delete) && have->on_update == to_sql(want.on_update);
    if (!same)
        r.drifts.push_back(
            {severity::warning, t.name, col.name,
             resilite::detail::format("{}, but the database has REFERENCES {}({}) ON DELETE {} ON UPDATE {}",
                                      declared, have->to.table, have->to.column, have->on_delete,
                                      have->on_update)});
}

// Works out the actions and drift; changes nothing.
[[nodiscard]] inline schema_report plan_schema(sqlite::connection& c, const schema_def& def,
                                               schema_mode mode) {
    using severity = schema_report::severity;
    schema_report r;
    r.mode = mode;
    const schema_inspector db{c};
    for (const auto& t : def.tables) {
        if (db.find("table", t.name) == nullptr) {
            r.actions.push_back({t.name, "create table", create_table_sql(t), false});
            for (const auto& i : t.indexes) {
                if (db.find("index", i.name) != nullptr) {
                    if (const auto owner = db.owner("index", i.name); !declares_table(def, owner)) {
                        r.drifts.push_back({severity::critical, t.name, {}, index_name_taken(i.name, owner)});
                    } else {  // the declaration's own, on the table it was declared on before
                        r.actions.push_back({t.name, "recreate index " + i.name,
                                             resilite::detail::format("DROP INDEX {}; {}", quote_id(i.name),
                                                                      create_index_sql(t, i)),
                                             false});
                    }
                    continue;
                }
                r.actions.push_back({t.name, "create index " + i.name, create_index_sql(t, i), false});
            }
            continue;
        }
        const auto existing = db.columns(t.name);
        auto find_col = [&](const std::string& name) -> const existing_column* {
            for (const auto& e : existing) {
                if (lower(e.name) == lower(name)) return &e;
            }
            return nullptr;
        };
        // Primary key: the database's, in key order, against the declaration.
        std::vector<std::pair<int, std::string>> pk;
        for (const auto& e : existing) {
            if (e.pk > 0) pk.emplace_back(e.pk, lower(e.name));
        }
        std::sort(pk.begin(), pk.end());
        std::vector<std::string> db_pk;
        for (auto& p : pk)
            db_pk.push_back(p.second);
        std::vector<std::string> decl_pk;
        for (const auto& p : t.primary_key)
            decl_pk.push_back(lower(p));
        if (db_pk != decl_pk) {
            r.drifts.push_back({severity::critical,
                                t.name,
                                {},
                                resilite::detail::format("primary key differs: declared ({}), database ({})",
                                                         fmt::join(decl_pk, ", "), fmt::join(db_pk, ", "))});
        }
        // Declared as the rowid alias (a single INTEGER PRIMARY KEY): a table whose key is not
        // the rowid (BIGINT PRIMARY KEY, INTEGER PRIMARY KEY DESC, ...) stores NULL keys, and
        // insert() would return the rowid as if it were the key. SQLite gives such a key an index
        // of its own; the rowid needs none.
        if (db_pk == decl_pk && decl_pk.size() == 1) {
            const auto key = std::find_if(t.columns.begin(), t.columns.end(),
                                          [&](const column_def& col) { return lower(col.name) == decl_pk[0]; });
            if (key != t.columns.end() && is_rowid_alias(t, *key) &&
                c.query_one<int>("SELECT count(*) FROM pragma_index_list(?) WHERE origin = 'pk'", t.name)
                        .value_or(0) > 0) {
                r.drifts.push_back(
                    {severity::critical, t.name, key->name,
                     "the integer primary key is not the table's rowid (declared there as BIGINT, INT or "
                     "INTEGER ... DESC, or the table is WITHOUT ROWID): insert() of a row without a key could "
                     "not return it (and a rowid table takes NULL keys); rebuild the table with INTEGER PRIMARY "
                     "KEY in a migration"});
            }
        }
        std::optional<bool> rows;  // asked only when it matters
        const auto refs = db.references(t.name);
        for (const auto& col : t.columns) {
            const auto* e = find_col(col.name);
            if (e == nullptr) {
                const bool in_pk =
                    std::find(decl_pk.begin(), decl_pk.end(), lower(col.name)) != decl_pk.end();
                if (in_pk) continue;  // reported with the primary key
                if (col.not_null && !col.default_sql) {
                    if (!rows) rows = db.has_rows(t.name);
                    if (*rows) {
                        r.drifts.push_back({severity::critical, t.name, col.name,
                                            "missing NOT NULL column without DEFAULT cannot be added to a "
                                            "table that holds rows; declare a default_value"});
                        continue;
                    }
                }
                r.actions.push_back({t.name, "add column " + col.name,
                                     resilite::detail::format("ALTER TABLE {} ADD COLUMN {}",
                                                              quote_id(t.name), column_sql(t, col, true)),
                                     false});
                if (col.references && !references_addable(col)) {
                    r.drifts.push_back(
                        {severity::warning, t.name, col.name,
                         resilite::detail::format("added without its foreign key{}: SQLite adds a REFERENCES "
                                                  "column only when it is nullable without a default; add "
                                                  "the key by rebuilding the table in a migration",
                                                  references_sql(*col.references))});
                }
                if (col.unique) {
                    const auto u = unique_column_index(t, col);
                    r.actions.push_back(
                        {t.name, "create unique index " + u.name, create_index_sql(t, u), false});
                }
                continue;
            }
            if (affinity(e->type) != affinity(col.type)) {
                r.drifts.push_back(
                    {severity::critical, t.name, col.name,
                     resilite::detail::format("type differs: declared {}, database {}", col.type,
                                              e->type.empty() ? "(none)" : e->type)});
            }
            const bool rowid_alias = is_rowid_alias(t, col);
            if (!rowid_alias && col.not_null != e->not_null) {
                r.drifts.push_back({severity::warning, t.name, col.name,
                                    col.not_null ? "declared NOT NULL, but the database allows NULL"
                                                 : "declared nullable, but the database requires a value"});
            }
            const auto want = col.default_sql ? normalize_default(*col.default_sql) : std::string{};
            const auto have = e->default_sql ? normalize_default(*e->default_sql) : std::string{};
            if (want != have) {
                r.drifts.push_back(
                    {severity::warning, t.name, col.name,
                     resilite::detail::format("DEFAULT differs: declared {}, database {}",
                                              want.empty() ? "none" : want, have.empty() ? "none" : have)});
            }
            if (col.references || !refs.empty()) check_reference(r, t, col, refs);
            if (col.unique && !db.unique_on(t.name, col.name)) {
                const auto u = unique_column_index(t, col);
                r.actions.push_back({t.name, "create unique index " + u.name, create_index_sql(t, u), false});
            }
        }
        for (const auto& e : existing) {
            const bool declared = std::any_of(t.columns.begin(), t.columns.end(), [&](const column_def& d) {
                return lower(d.name) == lower(e.name);
            });
            if (!declared) {
                // A NOT NULL column without a default that the row type lacks: every typed insert
                // and upsert would fail on it. Said here, not first at the insert.
                r.drifts.push_back({severity::warning, t.name, e.name,
                                    e.not_null && !e.default_sql && e.pk == 0
                                        ? "column exists in the database but is not declared (kept, not used); it is "
                                          "NOT NULL without a default, so insert and upsert of the row type will "
                                          "fail on it: declare it, or give it a default in a migration"
                                        : "column exists in the database but is not declared (kept, not used)"});
            }
        }
        for (const auto& i : t.indexes) {
            const auto want = create_index_sql(t, i);
            const auto* have = db.find("index", i.name);
            if (have == nullptr) {
                r.actions.push_back({t.name, "create index " + i.name, want, false});
            } else if (const auto owner = db.owner("index", i.name);
                       owner != lower(t.name) && !declares_table(def, owner)) {
                // An index of a table the schema does not declare (a UNIQUE rule of its own):
                // never dropped. (One on another declared table was the declaration's, moved.)
                r.drifts.push_back({severity::critical, t.name, {}, index_name_taken(i.name, owner)});
            } else if (*have != want) {
                if (lower(*have).starts_with("create unique") && !i.unique) {
                    r.drifts.push_back({severity::warning, t.name, {},
                                        resilite::detail::format("the unique index {} is recreated as declared, "
                                                                 "without UNIQUE: duplicates are accepted from now on",
                                                                 i.name)});
                }
                r.actions.push_back({t.name, "recreate index " + i.name,
                                     resilite::detail::format("DROP INDEX {}; {}", quote_id(i.name), want),
                                     false});
            }
        }
    }
    for (const auto& tr : def.triggers) {
        const auto want = create_trigger_sql(tr);
        const auto* have = db.find("trigger", tr.name);
        const auto on = trigger_table(tr.sql);
        if (have == nullptr) {
            r.actions.push_back({tr.name, "create trigger " + tr.name, want, false});
        } else if (const auto owner = db.owner("trigger", tr.name);
                   !on.empty() && owner != on && !declares_table(def, owner)) {
            r.drifts.push_back({severity::critical, tr.name, {},
                                resilite::detail::format("the trigger name {} is taken by a trigger on table {}; it "
                                                         "was left alone: give the declared trigger another name",
                                                         tr.name, owner)});
        } else if (*have != want) {
            r.actions.push_back({tr.name, "recreate trigger " + tr.name,
                                 resilite::detail::format("DROP TRIGGER {}; {}", quote_id(tr.name), want),
                                 false});
        }
    }
    return r;
}

// Plans inside a read transaction (the common case, nothing to do, writes nothing); when there
// is work and the mode allows it, plans again under the write lock and applies everything in
// one transaction. Critical drift means nothing is applied. strict throws on any drift (missing
// objects are still created: they are additions, not drift).
// `stamp_version`, when given, is written to PRAGMA user_version in the same transaction (a new
// database created from the declaration is at the latest version at once).
[[nodiscard]] inline schema_report sync_schema(sqlite::connection& c, const schema_def& def, schema_mode mode,
                                               std::optional<int> stamp_version = std::nullopt) {
    schema_report r;
    {
        sqlite::transaction read{c, transaction_mode::deferred};
        r = plan_schema(c, def, mode);
        read.rollback();
    }
    const auto fail_strict = [&] {
        throw library_failure(
            error_class::schema, "schema sync",
            resilite::detail::format("strict schema mode: the database differs from the declaration, "
                                     "nothing was changed\n{}",
                                     r.to_text()),
            c.path());
    };
    if (mode == schema_mode::strict && !r.drifts.empty()) fail_strict();
    if (mode == schema_mode::report_only || r.actions.empty() || r.status() == schema_status::critical)
        return r;

    sqlite::transaction write{c, transaction_mode::immediate};
    r = plan_schema(c, def, mode);  // again, now that no one else can change the schema
    if (r.status() == schema_status::critical) return r;
    for (auto& a : r.actions) {
        try {
            c.exec_script(a.sql);
        } catch (const error& e) {
            // e.g. duplicates prevent a UNIQUE index: undo everything, report it.
            write.rollback();
            for (auto& undone : r.actions)
                undone.applied = false;
            r.drifts.push_back({schema_report::severity::critical,
                                a.table,
                                {},
                                resilite::detail::format("{} failed, nothing was changed: {}", a.description,
                                                         e.technical().sqlite_message)});
            return r;
        }
        a.applied = true;
    }
    if (stamp_version) c.exec_script(resilite::detail::format("PRAGMA user_version = {}", *stamp_version));
    write.commit();
    r.changed = true;
    return r;
}

}  // namespace resilite::detail
