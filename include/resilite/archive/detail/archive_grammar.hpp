#pragma once
// The statement shapes a replay accepts: exactly what the archive writer produces, checked over
// SQLite's tokens before SQLite sees the text. A record's CRC-32 is no signature (anyone can
// compute one), so the grammar, not the checksum, decides what may run:
//
//   INSERT INTO "t"("a","b") VALUES(<literal>,<literal>) ON CONFLICT("a") DO UPDATE SET "b"=excluded."b";
//   INSERT INTO "t"(...) VALUES(...) ON CONFLICT(...) DO NOTHING;
//   DELETE FROM "t" WHERE "a" IS <literal> AND "b" IS <literal>;
//   CREATE TABLE IF NOT EXISTS t(<column definitions>) [WITHOUT ROWID] [, STRICT];
//   CREATE [UNIQUE] INDEX IF NOT EXISTS i ON t(<columns>) [WHERE <expression>];
//   ALTER TABLE "t" ADD COLUMN <column definition>;
//   PRAGMA user_version = <integer>;           (the schema's version: what migrations have run)
//   CREATE TRIGGER IF NOT EXISTS ... END;   (recognized, never run: see statement_kind)
//
// A literal is what the writer prints for a value: an integer or real (with an optional minus),
// a real that SQLite reads from no decimal text as the exact product of two, (<real>*<real>),
// 'text', X'blob', NULL or CAST(X'..' AS TEXT). Row statements hold nothing else: no SELECT,
// no sub-query, no CTE, no function, no parameter. DDL bodies may hold expressions (CHECK,
// DEFAULT, an index's WHERE) but never a SELECT or a parameter; the authorizer, the second wall,
// then allows only SQLite's pure built-in functions in them.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace resilite::detail::archive {

enum class statement_kind {
    row_change,      // an upsert or a delete by key
    create_table,    // CREATE TABLE IF NOT EXISTS
    create_index,    // CREATE [UNIQUE] INDEX IF NOT EXISTS
    add_column,      // ALTER TABLE ... ADD COLUMN
    set_version,     // PRAGMA user_version = <integer>
    create_trigger,  // a trigger is code: never created from an archive (the application's schema adds it)
    other,           // refused
};

namespace grammar {

enum class tok { word, id, string, blob, number, variable, op, semicolon, bad };

struct token {
    tok kind = tok::bad;
    std::string_view text;
};

// SQLite's identifier characters: ASCII letters and digits, '_', '$' and every byte from 0x80.
[[nodiscard]] constexpr bool id_char(unsigned char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
           c >= 0x80;
}

// Splits `sql` into `out` (spaces and comments dropped; its capacity reused) up to and
// including the first ';' (or the end). `end` is set to the offset after the last token read.
inline void tokenize(std::string_view sql, std::size_t& end, bool stop_at_semicolon, std::vector<token>& out) {
    out.clear();
    std::size_t i = 0;
    const auto at = [&](std::size_t k) { return k < sql.size() ? static_cast<unsigned char>(sql[k]) : 0u; };
    while (i < sql.size()) {
        const auto c = at(i);
        const auto start = i;
        const auto push = [&](tok k, std::size_t len) {
            out.push_back({k, sql.substr(start, len)});
            i = start + len;
        };
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            ++i;
        } else if (c == '-' && at(i + 1) == '-') {
            const auto nl = sql.find('\n', i);
            i = nl == std::string_view::npos ? sql.size() : nl + 1;
        } else if (c == '/' && at(i + 1) == '*') {
            const auto close = sql.find("*/", i + 2);
            i = close == std::string_view::npos ? sql.size() : close + 2;
        } else if (c == '\'' || c == '"' || c == '`' || c == '[') {
            const char close = c == '[' ? ']' : static_cast<char>(c);
            auto j = i + 1;
            for (;;) {
                j = sql.find(close, j);
                if (j == std::string_view::npos) break;
                if (close != ']' && at(j + 1) == static_cast<unsigned char>(close)) {
                    j += 2;  // a doubled quote
                    continue;
                }
                break;
            }
            if (j == std::string_view::npos) {
                push(tok::bad, sql.size() - i);
            } else {
                push(c == '\'' ? tok::string : tok::id, j + 1 - i);
            }
        } else if ((c == 'x' || c == 'X') && at(i + 1) == '\'') {
            auto j = i + 2;
            while (std::isxdigit(static_cast<int>(at(j))) != 0)
                ++j;
            const bool ok = at(j) == '\'' && (j - i - 2) % 2 == 0;
            push(ok ? tok::blob : tok::bad, ok ? j + 1 - i : std::max<std::size_t>(j - i, 1));
        } else if (std::isdigit(static_cast<int>(c)) != 0 ||
                   (c == '.' && std::isdigit(static_cast<int>(at(i + 1))) != 0)) {
            auto j = i;
            if (c == '0' && (at(j + 1) == 'x' || at(j + 1) == 'X')) {
                j += 2;
                while (std::isxdigit(static_cast<int>(at(j))) != 0)
                    ++j;
            } else {
                while (std::isdigit(static_cast<int>(at(j))) != 0)
                    ++j;
                if (at(j) == '.') {
                    ++j;
                    while (std::isdigit(static_cast<int>(at(j))) != 0)
                        ++j;
                }
                if (at(j) == 'e' || at(j) == 'E') {
                    auto k = j + 1;
                    if (at(k) == '+' || at(k) == '-') ++k;
                    if (std::isdigit(static_cast<int>(at(k))) != 0) {
                        while (std::isdigit(static_cast<int>(at(k))) != 0)
                            ++k;
                        j = k;
                    }
                }
            }
            push(id_char(at(j)) ? tok::bad : tok::number, j - i);  // "12abc" is no number
        } else if (id_char(c)) {
            auto j = i;
            while (j < sql.size() && id_char(at(j)))
                ++j;
            push(tok::word, j - i);
        } else if (c == '?' || c == ':' || c == '@' || c == '$' || c == '#') {
            push(tok::variable, 1);
        } else if (c == ';') {
            push(tok::semicolon, 1);
            if (stop_at_semicolon) break;
        } else {
            static constexpr std::string_view two[] = {"<=", ">=", "<>", "!=", "==", "||", "<<", ">>", "->"};
            std::size_t len = 1;
            for (auto t : two)
                if (sql.substr(i, 2) == t) len = 2;
            push(tok::op, len);
        }
    }
    end = i;
}

[[nodiscard]] inline std::vector<token> tokenize(std::string_view sql, std::size_t& end, bool stop_at_semicolon) {
    std::vector<token> out;
    tokenize(sql, end, stop_at_semicolon, out);
    return out;
}

// ASCII case folding, as SQLite's keywords (no locale: a replay's hot path).
[[nodiscard]] constexpr char upper_ascii(char c) noexcept {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

[[nodiscard]] inline bool same_word(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (upper_ascii(a[i]) != upper_ascii(b[i])) return false;
    return true;
}

// A cursor over a statement's tokens with the small vocabulary the shapes need.
class reader {
public:
    explicit reader(const std::vector<token>& t) : t_(t) {}
    [[nodiscard]] bool done() const { return i_ >= t_.size(); }
    [[nodiscard]] const token* peek() const { return done() ? nullptr : &t_[i_]; }
    bool kw(std::string_view w) {
        if (done() || t_[i_].kind != tok::word || !same_word(t_[i_].text, w)) return false;
        ++i_;
        return true;
    }
    bool op(std::string_view o) {
        if (done() || t_[i_].kind != tok::op || t_[i_].text != o) return false;
        ++i_;
        return true;
    }
    bool semicolon_last() { return i_ + 1 == t_.size() && t_[i_++].kind == tok::semicolon; }
    // A name as the writer quotes it ("t"), or a name of the rowid (rowid, _rowid_, oid: bare)
    // where it allows that.
    std::optional<std::string_view> quoted(bool rowid = false) {
        if (done()) return std::nullopt;
        const auto& t = t_[i_];
        if ((t.kind == tok::id && t.text.front() == '"') ||
            (rowid && t.kind == tok::word &&
             (same_word(t.text, "rowid") || same_word(t.text, "_rowid_") || same_word(t.text, "oid")))) {
            ++i_;
            return t.text;
        }
        return std::nullopt;
    }
    // A name in DDL text as SQLite stored it: bare or quoted in any style, never schema-qualified.
    bool name() {
        if (done() || (t_[i_].kind != tok::id && t_[i_].kind != tok::word && t_[i_].kind != tok::string)) return false;
        ++i_;
        return done() || t_[i_].kind != tok::op || t_[i_].text != ".";
    }
    bool literal() {
        static_cast<void>(op("-"));
        if (done()) return false;
        const auto& t = t_[i_];
        if (t.kind == tok::number || t.kind == tok::string || t.kind == tok::blob) {
            ++i_;
            return true;
        }
        if (kw("NULL")) return true;
        // A REAL that no decimal text reads back as: (a*b), both plain numbers.
        if (t.kind == tok::op && t.text == "(") {
            ++i_;
            return number() && op("*") && number() && op(")");
        }
        // Text holding NUL bytes: CAST(X'..' AS TEXT).
        return kw("CAST") && op("(") && !done() && t_[i_++].kind == tok::blob && kw("AS") && kw("TEXT") && op(")");
    }
    bool number() {
        if (done() || t_[i_].kind != tok::number) return false;
        ++i_;
        return true;
    }
    // Tokens up to the matching ')' (the '(' already read), none of them a SELECT, VALUES or
    // parameter. With `to_end`, the rest of the statement instead (before the ';').
    bool balanced(bool to_end = false) {
        int depth = to_end ? 0 : 1;
        while (!done()) {
            const auto& t = t_[i_];
            if (t.kind == tok::semicolon) return to_end && depth == 0;
            if (t.kind == tok::variable || t.kind == tok::bad) return false;
            if (t.kind == tok::word && (same_word(t.text, "SELECT") || same_word(t.text, "VALUES"))) return false;
            ++i_;
            if (t.kind == tok::op && t.text == "(") ++depth;
            if (t.kind == tok::op && t.text == ")") {
                if (--depth == 0 && !to_end) return true;
                if (depth < 0) return false;
            }
        }
        return false;
    }

private:
    const std::vector<token>& t_;
    std::size_t i_ = 0;
};

// INSERT INTO "t"(cols) VALUES(literals) ON CONFLICT(keys) DO UPDATE SET "c"=excluded."c",... | DO NOTHING;
[[nodiscard]] inline bool upsert(reader r) {
    if (!r.kw("INSERT") || !r.kw("INTO") || !r.quoted() || !r.op("(")) return false;
    std::size_t columns = 0;
    do {
        if (!r.quoted(true)) return false;
        ++columns;
    } while (r.op(","));
    if (!r.op(")") || !r.kw("VALUES") || !r.op("(")) return false;
    std::size_t values = 0;
    do {
        if (!r.literal()) return false;
        ++values;
    } while (r.op(","));
    if (values != columns || !r.op(")") || !r.kw("ON") || !r.kw("CONFLICT") || !r.op("(")) return false;
    do {
        if (!r.quoted(true)) return false;
    } while (r.op(","));
    if (!r.op(")") || !r.kw("DO")) return false;
    if (r.kw("NOTHING")) return r.semicolon_last();
    if (!r.kw("UPDATE") || !r.kw("SET")) return false;
    do {
        const auto target = r.quoted();
        if (!target || !r.op("=") || !r.kw("excluded") || !r.op(".")) return false;
        const auto source = r.quoted();
        if (!source || *source != *target) return false;
    } while (r.op(","));
    return r.semicolon_last();
}

// DELETE FROM "t" WHERE "k" IS literal [AND ...];
[[nodiscard]] inline bool erase(reader r) {
    if (!r.kw("DELETE") || !r.kw("FROM") || !r.quoted() || !r.kw("WHERE")) return false;
    do {
        if (!r.quoted(true) || !r.kw("IS") || !r.literal()) return false;
    } while (r.kw("AND"));
    return r.semicolon_last();
}

[[nodiscard]] inline bool create_table(reader r) {
    if (!r.kw("CREATE") || !r.kw("TABLE") || !r.kw("IF") || !r.kw("NOT") || !r.kw("EXISTS") || !r.name() ||
        !r.op("(") || !r.balanced())
        return false;
    while (r.kw("WITHOUT") || r.kw("ROWID") || r.kw("STRICT") || r.op(",")) {
    }
    return r.semicolon_last();
}

[[nodiscard]] inline bool create_index(reader r) {
    if (!r.kw("CREATE")) return false;
    static_cast<void>(r.kw("UNIQUE"));
    if (!r.kw("INDEX") || !r.kw("IF") || !r.kw("NOT") || !r.kw("EXISTS") || !r.name() || !r.kw("ON") || !r.name() ||
        !r.op("(") || !r.balanced())
        return false;
    if (r.kw("WHERE") && !r.balanced(true)) return false;
    return r.semicolon_last();
}

[[nodiscard]] inline bool add_column(reader r) {
    if (!r.kw("ALTER") || !r.kw("TABLE") || !r.name() || !r.kw("ADD")) return false;
    static_cast<void>(r.kw("COLUMN"));
    return r.name() && r.balanced(true) && r.semicolon_last();
}

// PRAGMA user_version = <integer>;
[[nodiscard]] inline bool set_version(reader r) {
    if (!r.kw("PRAGMA") || !r.kw("user_version") || !r.op("=")) return false;
    static_cast<void>(r.op("-"));
    return r.number() && r.semicolon_last();
}

}  // namespace grammar

struct statement_check {
    statement_kind kind = statement_kind::other;
    std::size_t length = 0;  // bytes of the statement, its ';' included
    std::string words;       // kind `other`: its first words, upper case, for messages: "DROP TABLE"
};

// Where the statement at the start of `sql` ends and which of the writer's shapes it has
// (`other` when none). `row_tokens`, if given, is the buffer the tokens are read into (reused;
// what it holds is a row change's tokens when the kind is row_change).
[[nodiscard]] inline statement_check check_statement(std::string_view sql,
                                                     std::vector<grammar::token>* row_tokens = nullptr) {
    std::size_t end = 0;
    std::vector<grammar::token> own;
    auto& tokens = row_tokens != nullptr ? *row_tokens : own;  // (a caller's buffer, reused)
    grammar::tokenize(sql, end, true, tokens);
    statement_check out;
    out.length = end;
    const auto first_words = [&] {
        for (std::size_t i = 0; i < tokens.size() && i < 2 && tokens[i].kind == grammar::tok::word; ++i) {
            if (!out.words.empty()) out.words += ' ';
            for (char c : tokens[i].text)
                out.words += grammar::upper_ascii(c);
        }
        if (out.words.empty()) out.words = "this statement";
    };
    const grammar::reader r{tokens};
    const auto first = [&](std::size_t i, std::string_view w) {
        return tokens.size() > i && tokens[i].kind == grammar::tok::word && grammar::same_word(tokens[i].text, w);
    };
    if (first(0, "CREATE") && (first(1, "TRIGGER") || (first(1, "TEMP") && first(2, "TRIGGER")) ||
                               (first(1, "TEMPORARY") && first(2, "TRIGGER")))) {
        // A trigger body holds ';': it ends at "END;" outside any CASE. Read a statement's worth
        // of tokens at a time, so that the whole scan stays linear.
        out.kind = first(1, "TRIGGER") ? statement_kind::create_trigger : statement_kind::other;
        if (out.kind == statement_kind::other) first_words();
        std::size_t at = 0;
        int cases = 0;
        while (at < sql.size()) {
            std::size_t len = 0;
            const auto part = grammar::tokenize(sql.substr(at), len, true);
            at += len;
            for (std::size_t i = 0; i < part.size(); ++i) {
                if (part[i].kind != grammar::tok::word) continue;
                if (grammar::same_word(part[i].text, "CASE")) ++cases;
                if (!grammar::same_word(part[i].text, "END")) continue;
                if (cases > 0) {
                    --cases;
                } else if (i + 2 == part.size() && part[i + 1].kind == grammar::tok::semicolon) {
                    out.length = at;
                    return out;
                }
            }
            if (len == 0) break;
        }
        out.length = sql.size();
        return out;
    }
    if (grammar::upsert(r) || grammar::erase(r)) {
        out.kind = statement_kind::row_change;
    } else if (grammar::create_table(r)) {
        out.kind = statement_kind::create_table;
    } else if (grammar::create_index(r)) {
        out.kind = statement_kind::create_index;
    } else if (grammar::add_column(r)) {
        out.kind = statement_kind::add_column;
    } else if (grammar::set_version(r)) {
        out.kind = statement_kind::set_version;
    } else {
        first_words();  // for the refusal's message
    }
    return out;
}

// ---- A row change as a prepared shape and its values ------------------------------------------
//
// The writer's row changes repeat a few shapes (one per table and column set) with different
// literals. A replay prepares each shape once, with a parameter for each literal, and binds the
// values: SQLite's prepare is most of a replay's time otherwise. A bound value must be exactly
// the value SQLite makes of the literal, so:
//   - an integer (a sign folded in) is bound as a 64-bit integer; one that does not fit (SQLite
//     reads it as a REAL) keeps the statement off this path;
//   - a REAL is bound as its text inside CAST(? AS REAL): SQLite converts it with the same
//     function as a literal (and the writer checked its text with that CAST). A CAST gives the
//     expression REAL affinity where a literal has none, which changes a comparison, never a
//     stored value: a DELETE with a REAL keeps the statement off this path;
//   - text ('' unescaped) and blobs (hex decoded) are bound as they are, NULL as NULL (so a
//     row with nullable columns does not make a shape for each set of columns that are NULL);
//   - anything else (a hex integer, a minus before anything but a number) keeps the statement
//     off this path, and it is prepared from its own text as before.
// The parts that are not literals are copied from the statement's tokens, so the shape passed the
// same grammar; SQLite's authorizer sees it when it is prepared, and a prepared shape is only
// ever run for a statement of that shape.

struct shaped_value {
    enum class type { integer, real_text, text, blob, null };
    type kind = type::integer;
    std::int64_t integer = 0;
    std::string bytes;  // real_text: the decimal text, its sign included; text; a blob's bytes
};

struct row_shape {
    std::string sql;                  // the statement, a parameter for each literal
    std::vector<shaped_value> values; // the first `count` are this statement's
    std::size_t count = 0;

    shaped_value& next() {
        if (count == values.size()) values.emplace_back();
        return values[count++];
    }
};

namespace grammar {

[[nodiscard]] inline int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;  // the tokenizer let only hex digits through
}

}  // namespace grammar

// Fills `out` from a row change's tokens (as check_statement gave them); false when a literal
// has no parameter that stands for it exactly.
[[nodiscard]] inline bool shape_row(const std::vector<grammar::token>& t, row_shape& out) {
    using grammar::tok;
    out.sql.clear();
    out.count = 0;
    const bool erase = !t.empty() && grammar::same_word(t.front().text, "DELETE");
    for (std::size_t i = 0; i < t.size(); ++i) {
        const auto& k = t[i];
        const bool minus = k.kind == tok::op && k.text == "-";
        if (minus && (i + 1 == t.size() || t[i + 1].kind != tok::number)) return false;
        const auto& lit = minus ? t[i + 1] : k;
        if (!out.sql.empty()) out.sql += ' ';
        if (lit.kind == tok::number) {
            const auto n = lit.text;
            if (n.size() > 1 && n[0] == '0' && (n[1] == 'x' || n[1] == 'X')) return false;
            auto& v = out.next();
            if (n.find_first_of(".eE") == std::string_view::npos) {
                std::string digits = minus ? std::string{"-"} : std::string{};
                digits += n;
                const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v.integer);
                if (ec != std::errc{} || p != digits.data() + digits.size()) return false;
                v.kind = shaped_value::type::integer;
                out.sql += '?';
            } else {
                if (erase) return false;
                v.kind = shaped_value::type::real_text;
                v.bytes.assign(minus ? "-" : "");
                v.bytes += n;
                out.sql += "CAST(? AS REAL)";
            }
            if (minus) ++i;
        } else if (k.kind == tok::string) {
            const auto body = k.text.substr(1, k.text.size() - 2);
            // SQLite's parser ends the text at a NUL byte (the writer never puts one in a literal:
            // CAST(X'..' AS TEXT)); the statement's own text says what it makes of it.
            if (body.find('\0') != std::string_view::npos) return false;
            auto& v = out.next();
            v.kind = shaped_value::type::text;
            v.bytes.clear();
            for (std::size_t j = 0; j < body.size(); ++j) {
                v.bytes += body[j];
                if (body[j] == '\'') ++j;  // a doubled quote
            }
            out.sql += '?';
        } else if (k.kind == tok::blob) {
            auto& v = out.next();
            v.kind = shaped_value::type::blob;
            v.bytes.clear();
            const auto hex = k.text.substr(2, k.text.size() - 3);
            for (std::size_t j = 0; j + 1 < hex.size(); j += 2)
                v.bytes += static_cast<char>(grammar::hex_digit(hex[j]) * 16 + grammar::hex_digit(hex[j + 1]));
            out.sql += '?';
        } else if (k.kind == tok::word && grammar::same_word(k.text, "NULL")) {
            out.next().kind = shaped_value::type::null;
            out.sql += '?';
        } else {
            out.sql += k.text;
        }
    }
    return true;
}

}  // namespace resilite::detail::archive
