#pragma once
// resilite::error: the one exception type of the library.

#include <resilite/core/error_class.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/result_code_name.hpp>

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace resilite {

// std::error_category over SQLite's extended result codes.
class sqlite_category_t final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "sqlite"; }
    [[nodiscard]] std::string message(int code) const override {
        return resilite::detail::format("{} ({})", sqlite3_errstr(code), detail::result_code_name(code));
    }
    // SQLITE_FULL compares equal to std::errc::no_space_on_device, SQLITE_BUSY to
    // resource_unavailable_try_again, ... (through the code's class; docs/errors.md).
    [[nodiscard]] std::error_condition default_error_condition(int code) const noexcept override {
        if (const auto e = generic_condition(classify(code))) return *e;
        return {code, *this};
    }
};

[[nodiscard]] inline const std::error_category& sqlite_category() noexcept {
    static const sqlite_category_t category;
    return category;
}

// Category for failures resilite raises itself (no SQLite code behind them): the value is the
// error_class.
class resilite_category_t final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "resilite"; }
    [[nodiscard]] std::string message(int value) const override {
        if (value < 0 || static_cast<std::size_t>(value) >= error_class_count) return "unknown";
        return std::string{resilite::name(static_cast<error_class>(value))};
    }
    [[nodiscard]] std::error_condition default_error_condition(int value) const noexcept override {
        if (value >= 0 && static_cast<std::size_t>(value) < error_class_count)
            if (const auto e = generic_condition(static_cast<error_class>(value))) return *e;
        return {value, *this};
    }
};

[[nodiscard]] inline const std::error_category& resilite_category() noexcept {
    static const resilite_category_t category;
    return category;
}

// std::error_code ec = resilite::error_class::full; (found by argument-dependent lookup). A code
// made this way is in resilite_category(); an error from SQLite has its extended code in
// sqlite_category(), so compare classes with error::klass(), or codes with a std::errc.
[[nodiscard]] inline std::error_code make_error_code(error_class c) noexcept {
    return {static_cast<int>(c), resilite_category()};
}

// What an engineer needs to understand a failure. Never shown to end users.
struct technical_detail {
    std::string operation;                // "exec", "open", "commit", ...
    std::string sql;                      // statement text, without bound values
    int extended_code = SQLITE_OK;        // SQLite's extended result code (0 when not from SQLite)
    std::string code_name;                // "SQLITE_CONSTRAINT_UNIQUE"
    std::string sqlite_message;           // sqlite3_errmsg() at the time of failure
    int attempt = 1;                      // which attempt failed (1-based)
    std::chrono::nanoseconds elapsed{0};  // time spent on the operation, all attempts included
    std::string database_path;
    std::string note;    // resilite's own explanation, when it adds one (one line)
    std::string report;  // a long multi-line account (integrity_check output, a schema or
                         // archive report), summarised in note; empty when there is none
    // A write or COMMIT whose I/O failed while SQLite was making it durable: SQLite reports a
    // failure, yet its changes may be in the WAL, and SQLite's recovery at the next open can
    // bring them back. Never retried (a retry could apply it twice); `note` says so.
    bool outcome_unknown = false;
};

namespace detail {
// A failure without a SQLite code is named after its class (RESILITE_MISMATCH), so that
// technical().code_name is never empty.
[[nodiscard]] inline technical_detail with_code_name(error_class klass, technical_detail d) {
    if (d.extended_code == SQLITE_OK && d.code_name.empty()) d.code_name = library_code_name(klass);
    // what() stays one line: a multi-line note keeps its first line and the count of the rest;
    // the whole text moves to `report`.
    if (const auto nl = d.note.find('\n'); nl != std::string::npos) {
        std::size_t more = 0;
        for (auto i = nl; i < d.note.size(); ++i)
            more += d.note[i] == '\n' && i + 1 < d.note.size() ? 1 : 0;
        if (d.report.empty()) d.report = d.note;
        d.note = resilite::detail::format("{} (+{} more line{} in technical().report)", d.note.substr(0, nl),
                                          more, more == 1 ? "" : "s");
    }
    return d;
}

struct error_state {
    error_class klass;
    technical_detail detail;
    std::string what;
    std::shared_ptr<error_state> cause;  // what a retry_exhausted error gave up on
};

// Text put into what() as it is would break its one line: SQL written over several lines,
// SQLite's message from RAISE(ABORT, '...'), a path with a newline. Line breaks, tabs (a log
// split on tabs) and the other control characters are written as escapes; technical() keeps the
// text itself.
[[nodiscard]] inline std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        const auto u = static_cast<unsigned char>(ch);
        if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\r') {
            out += "\\r";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (u < 0x20 || u == 0x7f) {
            out += resilite::detail::format("\\x{:02x}", u);
        } else {
            out += ch;
        }
    }
    return out;
}

[[nodiscard]] inline std::string describe(error_class klass, const technical_detail& d,
                                          const error_state* cause = nullptr) {
    std::string out = resilite::detail::format("{} [class {}; operation {}", user_message(klass), name(klass),
                                               d.operation.empty() ? "?" : d.operation);
    if (d.extended_code != SQLITE_OK) {
        out += resilite::detail::format("; {} ({})", d.code_name, d.extended_code);
    } else if (!d.code_name.empty()) {
        out += resilite::detail::format("; {}", d.code_name);
    }
    if (!d.sqlite_message.empty()) out += resilite::detail::format("; sqlite: {}", one_line(d.sqlite_message));
    if (!d.sql.empty()) out += resilite::detail::format("; sql: {}", one_line(d.sql));
    out += resilite::detail::format("; attempt {}; elapsed {}us", d.attempt,
                                    std::chrono::duration_cast<std::chrono::microseconds>(d.elapsed).count());
    if (!d.database_path.empty()) out += resilite::detail::format("; database {}", one_line(d.database_path));
    if (!d.note.empty()) out += resilite::detail::format("; {}", one_line(d.note));
    if (cause != nullptr) out += resilite::detail::format("; last cause: {}", name(cause->klass));
    out += ']';
    return out;
}
}  // namespace detail

// Derives from std::system_error so callers can compare codes (`e.code()` is SQLite's extended
// code in sqlite_category(), or the error_class in resilite_category() for failures resilite
// raises itself) or just catch std::exception. what() is the technical summary for logs;
// user_message() is what may be shown to a person.
class error : public std::system_error {
public:
    error(error_class klass, technical_detail detail)
        : std::system_error(code_for(klass, detail.extended_code)),
          state_(std::make_shared<detail::error_state>(
              detail::error_state{klass, detail::with_code_name(klass, std::move(detail)), std::string{},
                                  nullptr})) {
        state_->what = detail::describe(state_->klass, state_->detail);
    }

    // An error that ends a series of attempts (retry_exhausted), keeping the last cause.
    error(error_class klass, technical_detail detail, const error& cause)
        : std::system_error(code_for(klass, detail.extended_code)),
          state_(std::make_shared<detail::error_state>(
              detail::error_state{klass, detail::with_code_name(klass, std::move(detail)), std::string{},
                                  cause.state_})) {
        state_->what = detail::describe(state_->klass, state_->detail, state_->cause.get());
    }

    // The error this one gave up on (set for retry_exhausted), if any.
    [[nodiscard]] std::optional<error> cause() const {
        if (!state_->cause) return std::nullopt;
        return error{state_->cause};
    }

    [[nodiscard]] error_class klass() const noexcept { return state_->klass; }
    [[nodiscard]] std::string_view user_message() const noexcept {
        return resilite::user_message(state_->klass);
    }
    [[nodiscard]] const technical_detail& technical() const noexcept { return state_->detail; }
    [[nodiscard]] const char* what() const noexcept override { return state_->what.c_str(); }

    // Fills in what only the caller knows (attempt count, total time). Used by the library as
    // an error travels outwards; the state is shared, so every copy sees the update.
    // `operation` names the user-level operation; the step that failed stays after a '/'
    // ("exec/step", "transaction/commit").
    void annotate(int attempt, std::chrono::nanoseconds elapsed, std::string_view operation = {}) {
        auto& d = state_->detail;
        d.attempt = attempt;
        d.elapsed = elapsed;
        if (!operation.empty() && d.operation != operation &&
            !d.operation.starts_with(resilite::detail::format("{}/", operation))) {
            d.operation = d.operation.empty() ? std::string{operation}
                                              : resilite::detail::format("{}/{}", operation, d.operation);
        }
        state_->what = detail::describe(state_->klass, d, state_->cause.get());
    }

private:
    explicit error(std::shared_ptr<detail::error_state> state)
        : std::system_error(code_for(state->klass, state->detail.extended_code)), state_(std::move(state)) {}

    static std::error_code code_for(error_class klass, int extended_code) {
        return extended_code != SQLITE_OK ? std::error_code{extended_code, sqlite_category()}
                                          : std::error_code{static_cast<int>(klass), resilite_category()};
    }

    std::shared_ptr<detail::error_state> state_;  // shared: copying an exception must not throw
};

namespace detail {
// Builds an error from a failed SQLite call on `db` (which may be null when open failed early).
[[nodiscard]] inline error sqlite_failure(sqlite3* db, int rc, std::string_view operation,
                                          std::string_view sql, std::string_view path) {
    const int extended = (db != nullptr && sqlite3_extended_errcode(db) != SQLITE_OK &&
                          (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff))
                             ? sqlite3_extended_errcode(db)
                             : rc;
    technical_detail d;
    d.operation = operation;
    d.sql = sql;
    d.extended_code = extended;
    d.code_name = result_code_name(extended);
    // The connection's message only when it is about this failure (a backup step or a VFS
    // call reports its code without setting it: "not an error" would say nothing).
    d.sqlite_message = db != nullptr && extended == sqlite3_extended_errcode(db) ? sqlite3_errmsg(db)
                                                                                 : sqlite3_errstr(rc);
    d.database_path = path;
    return error{classify(extended), std::move(d)};
}

// An error that resilite itself raises (no SQLite code behind it).
[[nodiscard]] inline error library_failure(error_class klass, std::string_view operation, std::string note,
                                           std::string_view path = {}) {
    technical_detail d;
    d.operation = operation;
    d.note = std::move(note);
    d.database_path = path;
    return error{klass, std::move(d)};
}
}  // namespace detail

}  // namespace resilite

template <>
struct std::is_error_code_enum<resilite::error_class> : std::true_type {};
