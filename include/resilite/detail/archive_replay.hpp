#pragma once
// The archive's reading side: every segment read and checked, records put in sequence order
// with duplicates and gaps reported, and a replayer that applies records under an authorizer
// that allows only row changes and additive DDL on the archive's own tables.

#include <resilite/archive_report.hpp>
#include <resilite/detail/archive_capture.hpp>
#include <resilite/detail/archive_format.hpp>
#include <resilite/detail/archive_writer.hpp>
#include <resilite/sqlite/connection.hpp>

#include <sqlite3.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail::archive {

struct archive_contents {
    std::deque<std::string> texts;  // segment texts; records point into them
    std::vector<std::string> segments;
    std::vector<record> records;  // valid, unique, in sequence order
    std::vector<archive_problem> problems;
    std::size_t start = 0;  // index of the record a rebuild starts at (the newest baseline)
};

// Reads every segment; orders the valid records by sequence number; reports duplicates, gaps
// and time going backwards. Problems before the newest baseline cost a rebuild nothing and are
// downgraded to warnings.
[[nodiscard]] inline archive_contents read_archive(const std::filesystem::path& dir) {
    using K = archive_problem::kind;
    archive_contents a;
    a.segments = list_segments(dir);
    std::vector<std::pair<std::int64_t, std::size_t>> damaged;  // seq of a checksum failure, problem index
    for (const auto& name : a.segments) {
        const auto& text = a.texts.emplace_back(read_file(dir / name));
        auto contents = read_segment(text, name);
        for (auto& p : contents.problems) {
            if (p.what == K::checksum) {
                std::int64_t seq = 0;
                std::string_view m = p.message;
                if (parse::take(m, "txn ") && parse::number(m, seq))
                    damaged.emplace_back(seq, a.problems.size());
            }
            a.problems.push_back(std::move(p));
        }
        for (auto& r : contents.records)
            a.records.push_back(std::move(r));
    }
    std::stable_sort(a.records.begin(), a.records.end(),
                     [](const record& x, const record& y) { return x.header.seq < y.header.seq; });
    std::vector<record> unique;
    for (auto& r : a.records) {
        if (!unique.empty() && unique.back().header.seq == r.header.seq) {
            const bool same = unique.back().crc == r.crc;
            a.problems.push_back(
                {same ? K::duplicate : K::conflicting_duplicate, r.segment, r.line,
                 same ? fmt::format("txn {} appears again (first at {}:{}); skipped", r.header.seq,
                                    unique.back().segment, unique.back().line)
                      : fmt::format("txn {} appears again with other content (first at {}:{}); "
                                    "the first one is used",
                                    r.header.seq, unique.back().segment, unique.back().line),
                 !same});
            continue;
        }
        unique.push_back(std::move(r));
    }
    a.records = std::move(unique);
    for (std::size_t i = 0; i < a.records.size(); ++i) {
        if (a.records[i].header.kind == record_kind::baseline) a.start = i;
    }
    const std::int64_t start_seq = a.records.empty() ? 0 : a.records[a.start].header.seq;
    for (const auto& [seq, index] : damaged) {
        if (seq < start_seq) {
            a.problems[index].fatal = false;
            a.problems[index].message += " (before the snapshot a rebuild starts from: nothing lost)";
        }
    }
    if (!a.records.empty()) {
        const auto& first = a.records[a.start];
        if (first.header.kind != record_kind::baseline && first.header.seq != 1) {
            a.problems.push_back(
                {K::gap, first.segment, first.line,
                 fmt::format("the archive starts at txn {} and holds no snapshot: txn 1 to {} are "
                             "missing",
                             first.header.seq, first.header.seq - 1),
                 true});
        }
    }
    for (std::size_t i = a.start + 1; i < a.records.size(); ++i) {
        const auto& prev = a.records[i - 1];
        const auto& r = a.records[i];
        if (r.header.seq != prev.header.seq + 1) {
            const bool explained = std::any_of(damaged.begin(), damaged.end(), [&](const auto& d) {
                return d.first > prev.header.seq && d.first < r.header.seq;
            });
            a.problems.push_back(
                {K::gap, r.segment, r.line,
                 fmt::format("txn {} to {} are missing{}", prev.header.seq + 1, r.header.seq - 1,
                             explained ? " (see the damaged records above)" : ""),
                 true});
        }
        if (r.header.utc < prev.header.utc) {
            a.problems.push_back({K::time_order, r.segment, r.line,
                                  fmt::format("txn {} ({}) is older than txn {} ({})", r.header.seq,
                                              r.header.utc, prev.header.seq, prev.header.utc),
                                  false});
        }
    }
    return a;
}

// Functions a replayed statement may call: SQLite's pure built-ins. Anything else (an
// application function, load_extension, fts3_tokenizer, sqlite_* internals) is refused.
[[nodiscard]] inline bool allowed_function(std::string_view name) {
    static const std::set<std::string, std::less<>> allowed = {"abs",
                                                               "char",
                                                               "coalesce",
                                                               "concat",
                                                               "concat_ws",
                                                               "date",
                                                               "datetime",
                                                               "format",
                                                               "glob",
                                                               "hex",
                                                               "ifnull",
                                                               "iif",
                                                               "instr",
                                                               "julianday",
                                                               "length",
                                                               "like",
                                                               "likelihood",
                                                               "likely",
                                                               "lower",
                                                               "ltrim",
                                                               "max",
                                                               "min",
                                                               "nullif",
                                                               "octet_length",
                                                               "printf",
                                                               "quote",
                                                               "random",
                                                               "randomblob",
                                                               "replace",
                                                               "round",
                                                               "rtrim",
                                                               "sign",
                                                               "soundex",
                                                               "strftime",
                                                               "substr",
                                                               "substring",
                                                               "time",
                                                               "timediff",
                                                               "trim",
                                                               "typeof",
                                                               "unhex",
                                                               "unicode",
                                                               "unixepoch",
                                                               "unlikely",
                                                               "upper",
                                                               "zeroblob",
                                                               "json",
                                                               "json_array",
                                                               "json_extract",
                                                               "json_object",
                                                               "json_insert",
                                                               "json_replace",
                                                               "json_set",
                                                               "json_remove",
                                                               "json_type",
                                                               "json_valid",
                                                               "json_quote",
                                                               "json_patch",
                                                               "count",
                                                               "sum",
                                                               "total",
                                                               "avg",
                                                               "group_concat",
                                                               "acos",
                                                               "asin",
                                                               "atan",
                                                               "atan2",
                                                               "ceil",
                                                               "ceiling",
                                                               "cos",
                                                               "degrees",
                                                               "exp",
                                                               "floor",
                                                               "ln",
                                                               "log",
                                                               "log10",
                                                               "log2",
                                                               "mod",
                                                               "pi",
                                                               "pow",
                                                               "power",
                                                               "radians",
                                                               "sin",
                                                               "sqrt",
                                                               "tan",
                                                               "trunc",
                                                               "current_date",
                                                               "current_time",
                                                               "current_timestamp"};
    return allowed.count(lower(name)) != 0;
}

[[nodiscard]] inline std::string_view action_name(int action) {
    switch (action) {
        case SQLITE_DROP_INDEX:
            return "DROP INDEX";
        case SQLITE_DROP_TABLE:
            return "DROP TABLE";
        case SQLITE_DROP_TRIGGER:
            return "DROP TRIGGER";
        case SQLITE_DROP_VIEW:
            return "DROP VIEW";
        case SQLITE_DROP_TEMP_INDEX:
        case SQLITE_DROP_TEMP_TABLE:
        case SQLITE_DROP_TEMP_TRIGGER:
        case SQLITE_DROP_TEMP_VIEW:
            return "DROP TEMP";
        case SQLITE_CREATE_VIEW:
        case SQLITE_CREATE_TEMP_VIEW:
            return "CREATE VIEW";
        case SQLITE_CREATE_TEMP_TABLE:
        case SQLITE_CREATE_TEMP_INDEX:
        case SQLITE_CREATE_TEMP_TRIGGER:
            return "CREATE TEMP";
        case SQLITE_CREATE_VTABLE:
            return "CREATE VIRTUAL TABLE";
        case SQLITE_DROP_VTABLE:
            return "DROP VIRTUAL TABLE";
        case SQLITE_PRAGMA:
            return "PRAGMA";
        case SQLITE_ATTACH:
            return "ATTACH";
        case SQLITE_DETACH:
            return "DETACH";
        case SQLITE_TRANSACTION:
            return "a transaction statement";
        case SQLITE_SAVEPOINT:
            return "SAVEPOINT";
        case SQLITE_ANALYZE:
            return "ANALYZE";
        case SQLITE_REINDEX:
            return "REINDEX";
        case SQLITE_ALTER_TABLE:
            return "ALTER TABLE other than ADD COLUMN";
        default:
            return "this kind of statement";
    }
}

enum class statement_kind { row_change, create_table, create_index, create_trigger, add_column, other };

struct statement_head {
    statement_kind kind = statement_kind::other;
    std::string words;  // the first two words, upper case, for messages: "DROP TABLE"
};

// What a statement says it is, from its first words (comments and spaces skipped).
[[nodiscard]] inline statement_head classify(std::string_view sql) {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < sql.size() && words.size() < 5) {
        const char c = sql[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
        } else if (sql.substr(i, 2) == "--") {
            i = sql.find('\n', i);
            if (i == std::string_view::npos) break;
        } else if (sql.substr(i, 2) == "/*") {
            i = sql.find("*/", i + 2);
            if (i == std::string_view::npos) break;
            i += 2;
        } else if (c == '"' || c == '`' || c == '[') {  // a quoted name
            const char close = c == '[' ? ']' : c;
            auto j = i + 1;
            while (j < sql.size() && !(sql[j] == close && (j + 1 >= sql.size() || sql[j + 1] != close)))
                j += sql[j] == close ? 2 : 1;
            words.emplace_back("<name>");
            i = j + 1;
        } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
            auto j = i;
            while (j < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[j])) || sql[j] == '_'))
                ++j;
            words.push_back(lower(sql.substr(i, j - i)));
            i = j;
        } else {
            break;
        }
    }
    const auto w = [&](std::size_t n) { return n < words.size() ? words[n] : std::string{}; };
    std::string head = w(1).empty() || w(1) == "<name>" ? w(0) : w(0) + " " + w(1);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
    const auto kind = [&] {
        if (w(0) == "insert" || w(0) == "replace" || w(0) == "update" || w(0) == "delete")
            return statement_kind::row_change;
        if (w(0) == "create" && w(1) == "table") return statement_kind::create_table;
        if (w(0) == "create" && (w(1) == "index" || (w(1) == "unique" && w(2) == "index")))
            return statement_kind::create_index;
        if (w(0) == "create" && w(1) == "trigger") return statement_kind::create_trigger;
        if (w(0) == "alter" && w(1) == "table" && w(3) == "add") return statement_kind::add_column;
        return statement_kind::other;
    }();
    return {kind, head.empty() ? std::string{"this statement"} : head};
}

// Applies records on one connection, each in a savepoint of the caller's transaction.
class replayer {
public:
    // `tables`: the tables row changes may touch (lower-case); CREATE TABLE records add to it.
    replayer(sqlite::connection& c, std::set<std::string> tables, bool defer_triggers)
        : c_(c), tables_(std::move(tables)), defer_triggers_(defer_triggers) {
        sqlite3_set_authorizer(c_.native_handle(), &replayer::authorize, this);
    }
    replayer(const replayer&) = delete;
    replayer& operator=(const replayer&) = delete;
    ~replayer() { sqlite3_set_authorizer(c_.native_handle(), nullptr, nullptr); }

    // Runs SQL of the library's own (no authorizer limits).
    void trusted(std::string_view sql) {
        trusted_ = true;
        try {
            c_.exec_script(sql);
        } catch (...) {
            trusted_ = false;
            throw;
        }
        trusted_ = false;
    }

    [[nodiscard]] const std::vector<std::string>& deferred_triggers() const noexcept { return deferred_; }

    // Applies every statement of the record, or none: returns false and adds a problem (with
    // the statement's segment and line) when one is refused or fails.
    bool apply(const record& r, std::vector<archive_problem>& problems) {
        trusted("SAVEPOINT resilite_replay");
        // NUL-terminated, so that SQLite parses in place: given a length, sqlite3_prepare_v2
        // copies the rest of the text for every statement (quadratic in the record's size).
        const std::string body{r.body};
        const char* p = body.c_str();
        const char* const end = p + body.size();
        const auto deferred_before = deferred_.size();
        int line = r.line + 2;    // the body starts after the header and BEGIN
        const char* counted = p;  // newlines before here are in `line`
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
                ++p;
            if (p == end) break;
            line += static_cast<int>(std::count(counted, p, '\n'));
            counted = p;
            const auto head = classify(std::string_view{p, static_cast<std::size_t>(end - p)});
            kind_ = head.kind;
            refusal_ =
                kind_ == statement_kind::other
                    ? fmt::format("{} is not allowed in a replay (only row changes and additive DDL are)",
                                  head.words)
                    : std::string{};
            sqlite3_stmt* stmt = nullptr;
            const char* tail = nullptr;
            int rc = sqlite3_prepare_v2(c_.native_handle(), p, -1, &stmt, &tail);
            if (rc == SQLITE_OK && stmt != nullptr && kind_ == statement_kind::other) rc = SQLITE_AUTH;
            // SQLite's own guards (the schema table, reserved names) refuse before the authorizer.
            const bool guarded =
                rc == SQLITE_ERROR && stmt == nullptr &&
                (std::string_view{sqlite3_errmsg(c_.native_handle())}.find("may not be modified") !=
                     std::string_view::npos ||
                 std::string_view{sqlite3_errmsg(c_.native_handle())}.find("reserved for internal use") !=
                     std::string_view::npos);
            if (rc == SQLITE_OK && stmt != nullptr && kind_ == statement_kind::create_trigger &&
                defer_triggers_) {
                deferred_.emplace_back(p, static_cast<std::size_t>(tail - p));  // created after the rows
            } else if (rc == SQLITE_OK && stmt != nullptr) {
                while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
                }
                if (rc == SQLITE_DONE) rc = SQLITE_OK;
            }
            const std::string message = rc == SQLITE_OK ? std::string{} : sqlite3_errmsg(c_.native_handle());
            sqlite3_finalize(stmt);
            if (rc != SQLITE_OK) {
                // Denied by the authorizer (SQLite may report that as SQLITE_AUTH or as an
                // error naming what was not authorized), or by SQLite's own guards.
                const bool refused = rc == SQLITE_AUTH || guarded || !refusal_.empty();
                problems.push_back({refused ? archive_problem::kind::refused : archive_problem::kind::failed,
                                    r.segment, line,
                                    fmt::format("txn {}: {}; the record was not applied", r.header.seq,
                                                refusal_.empty() ? message : refusal_),
                                    true});
                trusted("ROLLBACK TO resilite_replay; RELEASE resilite_replay");
                deferred_.resize(deferred_before);
                return false;
            }
            p = tail;
        }
        trusted("RELEASE resilite_replay");
        return true;
    }

private:
    static int authorize(void* self, int action, const char* a, const char* b, const char* db,
                         const char* /*trigger*/) {
        auto& s = *static_cast<replayer*>(self);
        if (s.trusted_) return SQLITE_OK;
        const std::string_view first = a != nullptr ? a : "";
        const std::string_view second = b != nullptr ? b : "";
        const bool ddl = s.kind_ != statement_kind::row_change && s.kind_ != statement_kind::other;
        const auto deny = [&](std::string why) {
            if (s.refusal_.empty()) s.refusal_ = std::move(why);  // the statement's own words win
            return SQLITE_DENY;
        };
        const auto known = [&](std::string_view table) { return s.tables_.count(lower(table)) != 0; };
        switch (action) {
            case SQLITE_READ:
            case SQLITE_SELECT:
            case SQLITE_RECURSIVE:
                return SQLITE_OK;
            case SQLITE_FUNCTION:
                if (allowed_function(second)) return SQLITE_OK;
                return deny(fmt::format("the function {}() is not allowed in a replay", second));
            case SQLITE_INSERT:
            case SQLITE_UPDATE:
            case SQLITE_DELETE: {
                if (db != nullptr && std::string_view{db} != "main")
                    return deny(fmt::format("writing to database '{}' is not allowed", db));
                const auto t = lower(first);
                if (t == "sqlite_master" || t == "sqlite_schema") {
                    return ddl ? SQLITE_OK : deny("writing the schema table directly is not allowed");
                }
                if (t == "sqlite_sequence") return SQLITE_OK;
                if (reserved_name(t)) return deny(fmt::format("table {} belongs to the library", first));
                if (known(t)) return SQLITE_OK;
                return deny(fmt::format("table {} is not one the archive created", first));
            }
            case SQLITE_CREATE_TABLE:
                if (s.kind_ != statement_kind::create_table || reserved_name(first))
                    return deny(fmt::format("creating table {} is not allowed", first));
                s.tables_.insert(lower(first));
                return SQLITE_OK;
            case SQLITE_CREATE_INDEX:
                if (s.kind_ == statement_kind::create_index && known(second) && !reserved_name(first))
                    return SQLITE_OK;
                if (s.kind_ == statement_kind::create_table && lower(first).starts_with("sqlite_autoindex_"))
                    return SQLITE_OK;  // a PRIMARY KEY or UNIQUE constraint's own index
                return deny(fmt::format("creating index {} is not allowed", first));
            case SQLITE_REINDEX:  // part of CREATE INDEX
                if (s.kind_ == statement_kind::create_index) return SQLITE_OK;
                return deny("REINDEX is not allowed in a replay");
            case SQLITE_CREATE_TRIGGER:
                if (s.kind_ == statement_kind::create_trigger && known(second) && !reserved_name(first))
                    return SQLITE_OK;
                return deny(fmt::format("creating trigger {} is not allowed", first));
            case SQLITE_ALTER_TABLE:
                if (s.kind_ == statement_kind::add_column && known(second)) return SQLITE_OK;
                return deny(fmt::format("ALTER TABLE {} other than ADD COLUMN is not allowed", second));
            default:
                return deny(fmt::format("{} is not allowed in a replay", action_name(action)));
        }
    }

    sqlite::connection& c_;
    std::set<std::string> tables_;
    bool defer_triggers_;
    bool trusted_ = false;
    statement_kind kind_ = statement_kind::other;
    std::string refusal_;
    std::vector<std::string> deferred_;
};

// Order-independent summary of a table's rows over the given columns: row count and a 64-bit
// FNV-1a hash of the sorted rows (each row as its columns' quote() texts).
[[nodiscard]] inline std::pair<std::int64_t, std::string> content_hash(sqlite::connection& c,
                                                                       const std::string& table,
                                                                       std::vector<std::string> columns) {
    std::sort(columns.begin(), columns.end());
    std::vector<std::string> parts;
    for (const auto& col : columns)
        parts.push_back(fmt::format("quote({})", quote_id(col)));
    const auto sql = fmt::format("SELECT {} FROM {}",
                                 parts.empty() ? "''" : fmt::format("{}", fmt::join(parts, "||char(31)||")),
                                 quote_id(table));
    auto rows = c.query_all<std::string>(sql);
    std::sort(rows.begin(), rows.end());
    std::uint64_t h = 1469598103934665603ull;
    const auto mix = [&](std::string_view s) {
        for (unsigned char ch : s) {
            h ^= ch;
            h *= 1099511628211ull;
        }
    };
    mix(fmt::format("{}", fmt::join(columns, ",")));
    for (const auto& r : rows) {
        mix(r);
        mix("\n");
    }
    return {static_cast<std::int64_t>(rows.size()), fmt::format("{:016x}", h)};
}

}  // namespace resilite::detail::archive
