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
#include <resilite/detail/link_path.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/file_set.hpp>

#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <functional>
#include <system_error>

namespace resilite {

struct rebuild_options {
    bool keep_going = false;  // build what can be built despite fatal problems (they are reported)
    bool replace = false;     // replace an existing database at the target path
    // Asked now and then while records are applied: true stops the rebuild with an
    // `interrupted` error, and nothing is written (e.g. a deadline).
    std::function<bool()> stop_when;
};

namespace detail::archive {
inline void remove_database_files(const std::filesystem::path& p) {
    sqlite::file_set{p}.remove_all();
}
}  // namespace detail::archive

inline archive_report rebuild(const std::filesystem::path& archive_dir, const std::filesystem::path& new_db,
                              rebuild_options options = {}) {
    namespace a = detail::archive;
    return a::guarded("rebuild", new_db, [&] {
        if (detail::is_link_path(archive_dir)) {
            throw detail::library_failure(error_class::archive, "rebuild",
                                          fmt::format("the archive directory {} is a symbolic link; resilite never "
                                                      "follows one: give the directory's real path",
                                                      archive_dir.string()),
                                          new_db.string());
        }
        if (!std::filesystem::is_directory(archive_dir)) {
            throw detail::library_failure(error_class::archive, "rebuild",
                                          fmt::format("no archive directory at {}", archive_dir.string()),
                                          new_db.string());
        }
        if (std::filesystem::exists(new_db) && !options.replace) {
            throw detail::library_failure(error_class::misuse, "rebuild",
                                          "the target exists; rebuild never writes over a database unless "
                                          "rebuild_options::replace is set",
                                          new_db.string());
        }
        const auto contents = a::read_archive(archive_dir);
        auto report = a::start_report(archive_dir, contents);
        if (contents.records.empty()) {
            throw detail::library_failure(error_class::archive, "rebuild",
                                          fmt::format("the archive holds no valid record\n{}", report.to_text()),
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
        const auto tmp =
            dir / fmt::format(".{}.rebuild-{}", new_db.filename().string().substr(0, 200), ::getpid());
        a::remove_database_files(tmp);
        try {
            a::build_from_archive(contents, tmp, report, false, options.stop_when);
            if (const auto id = detail::read_archive_identity(archive_dir)) {
                // The rebuilt database is the archived one: it takes its identity, so that it
                // opens where the original was (the sidecar there names that identity).
                sqlite::connection c{tmp};
                detail::stamp_identity(c, *id);
            }
            a::refuse_incomplete(report, options.keep_going, "rebuild", "nothing was written",
                                 "rebuild_options::keep_going", new_db);
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
