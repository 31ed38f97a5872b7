#pragma once
// What rebuild, replay_archive and inspect_archive share: applying the archive's records in one
// transaction (user triggers held back so that replayed rows are not changed twice), the
// library's bookkeeping in the result, and the per-table summary.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/core/detail/progress_meter.hpp>
#include <resilite/core/error.hpp>
#include <resilite/core/progress.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/integrity_check.hpp>

#include <signal.h>
#include <sys/types.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <exception>
#include <initializer_list>
#include <limits>
#include <new>
#include <system_error>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail::archive {

// Runs f; anything it throws that is not a resilite::error becomes one (a file name too long
// for the file system, memory running out), so that callers need to catch one type only.
template <class F>
auto guarded(std::string_view operation, const std::filesystem::path& path, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const error&) {
        throw;
    } catch (const std::filesystem::filesystem_error& e) {
        const auto klass = [&] {
            const auto c = e.code();
            if (c == std::errc::filename_too_long || c == std::errc::no_such_file_or_directory ||
                c == std::errc::not_a_directory || c == std::errc::is_a_directory)
                return error_class::cant_open;
            if (c == std::errc::permission_denied || c == std::errc::operation_not_permitted)
                return error_class::permission;
            if (c == std::errc::no_space_on_device) return error_class::full;
            if (c == std::errc::read_only_file_system) return error_class::read_only;
            return error_class::io;
        }();
        throw library_failure(klass, operation, e.what(), path.string());
    } catch (const std::bad_alloc&) {
        throw library_failure(error_class::no_memory, operation, "out of memory", path.string());
    } catch (const std::exception& e) {
        throw library_failure(error_class::internal, operation, e.what(), path.string());
    }
}

// The process that owns a temporary file named "<prefix><pid><rest>", when it has ended: its
// file is stale (a killed rebuild or inspect) and can go.
[[nodiscard]] inline bool owner_gone(std::string_view name, std::string_view prefix,
                                     std::initializer_list<std::string_view> rests) {
    const auto at = name.rfind(prefix);
    if (at == std::string_view::npos) return false;
    auto rest = name.substr(at + prefix.size());
    long long pid = 0;
    const auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
    if (ec != std::errc{} || p == rest.data() || pid <= 0 || pid > std::numeric_limits<pid_t>::max())
        return false;
    rest.remove_prefix(static_cast<std::size_t>(p - rest.data()));
    const bool shaped = std::any_of(rests.begin(), rests.end(), [&](std::string_view r) {
        if (r == "-<n>") {  // a counter
            return rest.size() > 1 && rest[0] == '-' &&
                   std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; });
        }
        return rest == r;
    });
    return shaped && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// Removes what killed rebuilds left in `dir` (".<name>.rebuild-<pid>" and its journal files),
// or, with `inspect`, killed inspections' scratch directories ("resilite-inspect-<pid>-<n>").
inline void remove_stale_temporaries(const std::filesystem::path& dir, bool inspect) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it{dir, ec}, end; !ec && it != end; it.increment(ec)) {
        const auto name = it->path().filename().string();
        const bool stale = inspect ? name.starts_with("resilite-inspect-") &&
                                         owner_gone(name, "resilite-inspect-", {"-<n>"})
                                   : name.starts_with(".") &&
                                         owner_gone(name, ".rebuild-", {"", "-journal", "-wal", "-shm"});
        std::error_code rm;
        if (stale) std::filesystem::remove_all(it->path(), rm);
    }
}

[[nodiscard]] inline archive_report start_report(const std::filesystem::path& dir,
                                                 const archive_contents& a) {
    archive_report r;
    r.directory = dir;
    r.segments = a.segments;
    r.problems = a.problems;
    r.records = static_cast<std::int64_t>(a.records.size()) + (a.streamed ? a.streamed->count : 0) +
                a.skipped_records + a.history_records;
    r.not_read_through = a.skipped_through;
    r.not_read_records = a.skipped_records;
    if (const auto* start = a.start_record()) {
        const auto& first = a.records.empty() ? *start : a.records.front();
        r.first_seq = a.history_records > 0 ? a.first_seq : first.header.seq;
        r.first_time = a.history_records > 0 ? a.first_utc : first.header.utc;
        r.last_seq = a.last_record()->header.seq;
        r.last_time = a.last_record()->header.utc;
        if (start->header.kind == record_kind::baseline) r.baseline_seq = start->header.seq;
    }
    r.last_seq = std::max(r.last_seq, a.skipped_through);
    return r;
}

// Throws (class archive, the report in the detail) when the archive cannot give everything
// that was committed and the caller did not ask to go on regardless. `records_needed` false: an
// archive without a valid record is no failure when nothing in it is fatal (a replay into a
// database that already holds records, whose archive lost its tail: the caller's evidence
// decides what is missing).
inline void refuse_incomplete(const archive_report& r, bool keep_going, std::string_view operation,
                              std::string_view nothing_done, std::string_view option,
                              const std::filesystem::path& target, bool records_needed = true) {
    if (r.rebuildable() || keep_going) return;
    if (!records_needed && std::none_of(r.problems.begin(), r.problems.end(), [](const auto& p) { return p.fatal; }))
        return;
    throw library_failure(
        error_class::archive, operation,
        resilite::detail::format("the archive cannot give everything that was committed, so {} ({} does "
                                 "what it can):\n{}",
                                 nothing_done, option, r.to_text()),
        target.string());
}

[[nodiscard]] inline std::vector<std::string> user_tables(sqlite::connection& c) {
    std::vector<std::string> out;
    for (auto& name :
         c.query_all<std::string>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))
        if (!reserved_name(name)) out.push_back(std::move(name));
    return out;
}

// Applies the records from index `from` whose sequence number is above `after`, inside the
// caller's transaction. Every trigger the database already has is dropped first and created
// again after the rows (the archive already holds what they did); the archive itself never
// creates one. Leaves the state table at the last
// record applied. Returns the number of records applied. `stop` (if any) is asked every 64
// records: true throws `interrupted`, and the caller's transaction rolls back.
inline std::int64_t apply_records(sqlite::connection& c, const archive_contents& a, std::size_t from,
                                  std::int64_t after, archive_report& report,
                                  const std::function<bool()>& stop = {},
                                  std::int64_t until = std::numeric_limits<std::int64_t>::max(),
                                  const progress_fn* on_progress = nullptr, std::string_view operation = "replay") {
    std::vector<std::pair<std::string, std::string>> held_back;  // table, sql
    for (auto& [name, table, sql] : c.query_all<std::string, std::string, std::string>(
             "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL")) {
        held_back.emplace_back(table, sql);
        c.exec_script(resilite::detail::format("DROP TRIGGER {}", quote_id(name)));
    }
    std::set<std::string> tables;
    for (const auto& t : user_tables(c))
        tables.insert(lower(t));
    std::int64_t applied = 0, last_seq = after, last_id = 0;
    std::size_t considered = 0;  // (stop is asked at the first record and every 64th after it)
    std::uint64_t to_apply = 0;
    // (A streamed read is a rebuild's: everything from its start, nothing held.)
    const auto records = a.streamed ? a.streamed->count : static_cast<std::int64_t>(a.records.size() - from);
    if (a.streamed) {
        to_apply = static_cast<std::uint64_t>(a.streamed->count);
    } else if (on_progress != nullptr && *on_progress) {
        for (std::size_t i = from; i < a.records.size() && a.records[i].header.seq <= until; ++i)
            to_apply += a.records[i].header.seq > after ? 1 : 0;
    }
    progress_meter meter{on_progress, operation, "applying records", "records", to_apply};
    {
        replayer rp{c, std::move(tables)};
        // False: past `until`, the rest not wanted.
        const auto apply = [&](const record& r) {
            if (r.header.seq <= after) return true;
            if (r.header.seq > until) return false;
            if (stop && considered++ % 64 == 0 && stop()) {
                throw library_failure(
                    error_class::interrupted, "apply",
                    resilite::detail::format("stopped after {} of {} records, as asked: nothing was applied",
                                             applied, records),
                    {});
            }
            if (a.bodies) {
                record loaded = r;
                loaded.body = a.bodies->body_of(r);
                if (rp.apply(loaded, report.problems)) ++applied;
            } else if (rp.apply(r, report.problems)) {
                ++applied;
            }
            meter.advance();
            last_seq = r.header.seq;
            last_id = r.header.last_id;
            return true;
        };
        if (a.streamed) {
            for_each_streamed(a, [&](const record& r) { static_cast<void>(apply(r)); });
        } else {
            for (std::size_t i = from; i < a.records.size(); ++i)
                if (!apply(a.records[i])) break;
        }
    }
    for (const auto& [table, sql] : held_back) {
        // (A table a snapshot dropped, as the application had dropped or renamed it, keeps none.)
        if (c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND sql = ?", sql) == 0 &&
            c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table) == 1)
            c.exec_script(sql);
    }
    meter.finish();
    c.exec_script(create_internal_sql);
    if (last_seq > after) {
        c.exec("UPDATE resilite_archive_state SET last_seq = ?, last_id = max(last_id, ?)", last_seq,
               last_id);
        keep_outbox_numbering(c);
    }
    return applied;
}

// Records the schema as it is as the archived one, so opening the result with archiving on
// does not start a new snapshot.
inline void record_schema_as_archived(sqlite::connection& c) {
    c.exec_script("DELETE FROM resilite_archive_schema");
    for (const auto& [type, name, table, sql] : c.query_all<std::string, std::string, std::string, std::string>(
             "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL")) {
        if (!reserved_name(name))
            c.exec("INSERT INTO resilite_archive_schema(type, name, tbl_name, sql) VALUES(?, ?, ?, ?)", type, name,
                   table, sql);
    }
}

// Rows per table; with `hashes` also each table's content hash (sorting every row: the
// comparison with a live database needs it, a plain rebuild does not).
inline void summarize_tables(sqlite::connection& c, archive_report& report, bool hashes) {
    report.tables.clear();
    for (const auto& t : user_tables(c)) {
        if (!hashes) {
            const auto rows =
                c.query_one<std::int64_t>(resilite::detail::format("SELECT count(*) FROM {}", quote_id(t)));
            report.tables.push_back({t, rows.value_or(0), {}, std::nullopt});
            continue;
        }
        std::vector<std::string> cols;
        for (auto& col : schema_inspector{c}.columns(t))
            cols.push_back(col.name);
        auto [rows, hash] = content_hash(c, t, cols);
        report.tables.push_back({t, rows, hash, std::nullopt});
    }
}

// An integrity check's progress (SQLite's virtual-machine steps, counted by its progress
// handler) and its stop: `stop` true interrupts it.
inline constexpr int integrity_steps_per_tick = 100000;
struct integrity_watch {
    progress_meter meter;
    const std::function<bool()>* stop;
};
inline int integrity_tick(void* w) {
    auto& watch = *static_cast<integrity_watch*>(w);
    watch.meter.advance(integrity_steps_per_tick);
    return watch.stop != nullptr && *watch.stop && (*watch.stop)() ? 1 : 0;
}

inline void check_result(sqlite::connection& c, archive_report& report, const progress_fn* on_progress = nullptr,
                         std::string_view operation = "rebuild", const std::function<bool()>* stop = nullptr) {
    std::vector<std::string> integrity;
    {
        integrity_watch watch{{on_progress, operation, "checking integrity", "steps", 0, 10 * integrity_steps_per_tick},
                              stop};
        if (watch.meter.active() || (stop != nullptr && *stop))
            sqlite3_progress_handler(c.native_handle(), integrity_steps_per_tick, &integrity_tick, &watch);
        try {
            integrity = integrity_findings(c, true);
        } catch (const error& e) {
            sqlite3_progress_handler(c.native_handle(), 0, nullptr, nullptr);
            if (e.klass() == error_class::interrupted)
                throw library_failure(error_class::interrupted, operation,
                                      "stopped during the integrity check, as asked: nothing was written", {});
            throw;
        } catch (...) {
            sqlite3_progress_handler(c.native_handle(), 0, nullptr, nullptr);
            throw;
        }
        sqlite3_progress_handler(c.native_handle(), 0, nullptr, nullptr);
        watch.meter.finish();
    }
    for (auto& msg : integrity) {
        if (msg == "ok") break;
        report.problems.push_back({archive_problem::kind::integrity, {}, 0, msg, true});
    }
    for (auto& [table, rowid, parent] : c.query_all<std::string, std::optional<std::int64_t>, std::string>(
             "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")) {
        report.problems.push_back(
            {archive_problem::kind::foreign_key,
             {},
             0,
             resilite::detail::format("{} row {} refers to a missing row of {}", table,
                                      rowid ? resilite::detail::format("{}", *rowid) : std::string{"?"},
                                      parent),
             false});
    }
}

// Builds a database from the archive alone at `file` (which must not exist): from the newest
// snapshot on, fast (no journal on disk, no syncs: the caller syncs the finished file).
inline void build_from_archive(const archive_contents& a, const std::filesystem::path& file,
                               archive_report& report, bool hashes, const std::function<bool()>& stop = {},
                               const progress_fn* on_progress = nullptr) {
    sqlite::connection c{file};
    // Every value of a fresh build comes from a record, where its literal is at least as long
    // as the value: nothing larger can be legitimate. Nothing is ever attached.
    std::size_t largest = a.streamed ? a.streamed->largest : 0;
    for (std::size_t i = a.start; i < a.records.size(); ++i)
        largest = std::max(largest, a.records[i].header.bytes);
    const auto length = std::min<std::size_t>(std::max<std::size_t>(2 * largest, 16u << 20),
                                              static_cast<std::size_t>(sqlite3_limit(c.native_handle(), SQLITE_LIMIT_LENGTH, -1)));
    sqlite3_limit(c.native_handle(), SQLITE_LIMIT_LENGTH, static_cast<int>(length));
    sqlite3_limit(c.native_handle(), SQLITE_LIMIT_ATTACHED, 0);
    c.exec_script("PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; BEGIN IMMEDIATE;");
    c.exec_script(create_internal_sql);
    report.applied_records =
        apply_records(c, a, a.start, 0, report, stop, std::numeric_limits<std::int64_t>::max(), on_progress, "rebuild");
    record_schema_as_archived(c);
    c.exec_script("COMMIT; PRAGMA journal_mode=DELETE;");
    check_result(c, report, on_progress, "rebuild", &stop);
    summarize_tables(c, report, hashes);
}

}  // namespace resilite::detail::archive
