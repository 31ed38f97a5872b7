#pragma once
// resilite::rebuild: a complete database from the text archive alone.
//
//   auto report = resilite::rebuild("app.db.archive", "rebuilt.db");
//
// Reads every segment, checks every record's CRC-32, starts at the newest snapshot and replays
// each record's statements if they have the shapes the writer produces (row upserts of
// literals, deletes by key, additive DDL; never a trigger), under an authorizer. The result is
// built in a temporary file, checked (integrity and foreign keys), synced and renamed into
// place. By default any problem that means a committed change would be missing (a damaged
// record, a gap, a refused statement) is an error and nothing is created; a torn last record (a
// crash while it was appended, never acknowledged) and exact duplicates are only reported.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_apply.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/core/error.hpp>
#include <resilite/core/progress.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/file_set.hpp>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>
#include <system_error>

namespace resilite {

struct rebuild_options {
    bool keep_going = false;  // build what can be built despite fatal problems (they are reported)
    bool replace = false;     // replace an existing database at the target path
    // Asked now and then while records are applied: true stops the rebuild with an
    // `interrupted` error, and nothing is written (e.g. a deadline).
    std::function<bool()> stop_when;
    // Told how far the rebuild has come: records applied, then the integrity check's steps.
    progress_fn on_progress;
    // A point in time: only the records up to this number (0: all) ...
    std::int64_t until_seq = 0;
    // ... and written at or before this UTC time, "2026-11-22T08:01:02Z" or with milliseconds
    // "2026-11-22T08:01:02.123Z" (empty: all).
    std::string until_utc;
    // Only these tables are kept (empty: all). A rebuild to a point in time or of some tables is
    // a new database: it does not take the archived database's identity.
    std::vector<std::string> tables;
};

namespace detail::archive {
inline void remove_database_files(const std::filesystem::path& p) {
    sqlite::file_set{p}.remove_all();
}

// A time as records carry it: "2026-11-22T08:01:02Z" means up to the end of that second.
[[nodiscard]] inline std::string record_time(const std::string& t, const std::filesystem::path& target) {
    const auto digits = [&](std::size_t from, std::size_t n) {
        return std::all_of(t.begin() + static_cast<std::ptrdiff_t>(from),
                           t.begin() + static_cast<std::ptrdiff_t>(from + n),
                           [](char c) { return c >= '0' && c <= '9'; });
    };
    const bool second = t.size() == 20 && t[19] == 'Z';
    const bool milli = t.size() == 24 && t[19] == '.' && t[23] == 'Z' && digits(20, 3);
    if ((second || milli) && digits(0, 4) && t[4] == '-' && digits(5, 2) && t[7] == '-' && digits(8, 2) &&
        t[10] == 'T' && digits(11, 2) && t[13] == ':' && digits(14, 2) && t[16] == ':' && digits(17, 2))
        return second ? t.substr(0, 19) + ".999Z" : t;
    throw detail::library_failure(
        error_class::misuse, "rebuild",
        resilite::detail::format("'{}' is not a UTC time like 2026-11-22T08:01:02Z", t), target.string());
}

// Drops every table not named (with its indexes and triggers); a name the archive never held is
// refused, so a typo does not give an empty database.
inline void keep_only(const std::filesystem::path& file, const std::vector<std::string>& keep,
                      archive_report& report, const std::filesystem::path& target) {
    sqlite::connection c{file};
    std::set<std::string> wanted, present;
    for (const auto& t : keep)
        wanted.insert(lower(t));
    const auto tables = user_tables(c);
    for (const auto& t : tables)
        present.insert(lower(t));
    for (const auto& t : wanted) {
        if (!present.contains(t))
            throw library_failure(error_class::misuse, "rebuild",
                                  resilite::detail::format("the archive holds no table '{}' (it holds: {})",
                                                           t, fmt::join(tables, ", ")),
                                  target.string());
    }
    c.exec_script("PRAGMA foreign_keys=OFF; BEGIN IMMEDIATE;");
    for (const auto& t : tables)
        if (!wanted.contains(lower(t))) c.exec_script(resilite::detail::format("DROP TABLE {}", quote_id(t)));
    c.exec_script("DELETE FROM resilite_archive_schema WHERE lower(tbl_name) NOT IN (SELECT lower(name) FROM "
                  "sqlite_master WHERE type = 'table'); COMMIT; VACUUM;");
    summarize_tables(c, report, false);
}
}  // namespace detail::archive

inline archive_report rebuild(const std::filesystem::path& archive_dir, const std::filesystem::path& new_db,
                              rebuild_options options = {}) {
    namespace a = detail::archive;
    return a::guarded("rebuild", new_db, [&] {
        if (detail::is_link_path(archive_dir)) {
            throw detail::library_failure(
                error_class::archive, "rebuild",
                "the archive directory " + detail::link_not_followed(archive_dir),
                new_db.string());
        }
        if (!std::filesystem::is_directory(archive_dir)) {
            throw detail::library_failure(
                error_class::archive, "rebuild",
                resilite::detail::format("no archive directory at {}", archive_dir.string()),
                new_db.string());
        }
        if (std::filesystem::exists(new_db) && !options.replace) {
            throw detail::library_failure(error_class::misuse, "rebuild",
                                          "the target exists; rebuild never writes over a database unless "
                                          "rebuild_options::replace is set",
                                          new_db.string());
        }
        if (!options.replace) {
            // A log left by a database that was at this path (removed, its -wal not): SQLite's
            // next open would apply it to the rebuilt file and corrupt it. It may hold commits
            // the archive lacks, so it is not removed either.
            const sqlite::file_set files{new_db};
            for (const auto& left : {files.wal(), files.journal()}) {
                std::error_code ec;
                if (const auto size = std::filesystem::file_size(left, ec); !ec && size > 0) {
                    throw detail::library_failure(
                        error_class::misuse, "rebuild",
                        resilite::detail::format(
                            "{} ({} bytes) is left from a database that was at this path: SQLite's next open "
                            "would apply it to the rebuilt database and damage it. It may hold commits the "
                            "archive lacks: move it aside and keep it, then rebuild again; nothing was written",
                            left.string(), size),
                        new_db.string());
                }
            }
        }
        detail::archive::archive_limit limit;
        if (options.until_seq > 0) limit.seq = options.until_seq;
        if (!options.until_utc.empty()) limit.utc = a::record_time(options.until_utc, new_db);
        const bool whole = limit.none() && options.tables.empty();
        const auto contents = a::read_archive(archive_dir, limit, 0, a::archive_chunk_bytes, true);
        auto report = a::start_report(archive_dir, contents);
        const bool fatal = std::any_of(report.problems.begin(), report.problems.end(),
                                       [](const archive_problem& p) { return p.fatal; });
        if (contents.no_record() && !limit.none() && !fatal) {
            // Every record is after the point asked: the archive is not empty, the point is early
            // (damage at or before the point is reported below instead).
            const auto whole_archive =
                a::start_report(archive_dir, a::read_archive(archive_dir, {}, 0, a::archive_chunk_bytes, true));
            if (whole_archive.records > 0)
                throw detail::library_failure(
                    error_class::misuse, "rebuild",
                    resilite::detail::format("no record of the archive is at or before the point asked ({}): its "
                                             "first record is txn {} ({}); nothing was written",
                                             options.until_utc.empty()
                                                 ? resilite::detail::format("txn {}", options.until_seq)
                                                 : options.until_utc,
                                             whole_archive.first_seq, whole_archive.first_time),
                    new_db.string());
        }
        if (options.until_seq > 0 && options.until_utc.empty() && !contents.no_record() && !contents.left_out &&
            !fatal && report.last_seq < options.until_seq) {
            // (Not an error: the archive may simply end there. Said, so that a mistyped number
            // is not taken for the state at it.)
            report.problems.push_back(
                {archive_problem::kind::gap, {}, 0,
                 resilite::detail::format("txn {} was asked for and the archive ends at txn {}: the rebuild is "
                                          "the state at its end",
                                          options.until_seq, report.last_seq),
                 false});
        }
        if (contents.no_record()) {
            throw detail::library_failure(
                error_class::archive, "rebuild",
                resilite::detail::format("the archive holds no valid record\n{}", report.to_text()),
                new_db.string());
        }
        a::refuse_incomplete(report, options.keep_going, "rebuild", "nothing was written",
                             "rebuild_options::keep_going", new_db);
        const auto dir = std::filesystem::absolute(new_db).parent_path();
        std::filesystem::create_directories(dir);
        a::remove_stale_temporaries(dir, false);  // what killed rebuilds left
        // The temporary name carries the pid (so that the next rebuild can tell a stale one) and
        // stays within the file system's name limit, journal suffix included, however long the
        // target's name is.
        const auto tmp = dir / resilite::detail::format(
                                   ".{}.rebuild-{}", new_db.filename().string().substr(0, 200), ::getpid());
        a::remove_database_files(tmp);
        try {
            a::build_from_archive(contents, tmp, report, false, options.stop_when, &options.on_progress);
            if (!options.tables.empty()) a::keep_only(tmp, options.tables, report, new_db);
            if (const auto id = whole ? detail::read_archive_identity(archive_dir) : std::nullopt) {
                // The rebuilt database is the archived one: it takes its identity, so that it
                // opens where the original was (the sidecar there names that identity).
                sqlite::connection c{tmp};
                detail::stamp_identity(c, *id);
            }
            a::refuse_incomplete(report, options.keep_going, "rebuild", "nothing was written",
                                 "rebuild_options::keep_going", new_db);
            if (options.stop_when && options.stop_when()) {  // the last moment nothing is written yet
                throw detail::library_failure(error_class::interrupted, "rebuild",
                                              "stopped before the result was put in place, as asked: nothing was "
                                              "written",
                                              new_db.string());
            }
            if (!detail::fsync_path(tmp, false)) {
                throw detail::library_failure(error_class::io, "rebuild", "could not sync the rebuilt database",
                                              new_db.string());
            }
            if (options.replace) {
                sqlite::file_set{new_db}.remove_side_files();
            }
            std::filesystem::rename(tmp, new_db);
            static_cast<void>(detail::fsync_path(dir, true));
        } catch (...) {
            a::remove_database_files(tmp);
            throw;
        }
        return report;
    });
}

}  // namespace resilite
