#pragma once
// resilite::inspect_archive: validates an archive and reports what a recovery from it would
// give, without touching anything: checksums, sequence gaps, time order, a trial rebuild into a
// scratch directory (integrity and foreign-key check), rows and a content hash per table, and,
// given the live database, whether the archive alone reproduces it table by table.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_apply.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/sqlite/connection.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace resilite {

struct inspect_options {
    std::optional<std::filesystem::path> live_database;  // compare with this database
    // Columns left out of the comparison, as "table.column" in lower case: secret columns are
    // never archived, so the rebuilt table holds their defaults.
    std::set<std::string> excluded_columns;
};

namespace detail::archive {
[[nodiscard]] inline archive_report inspect(const std::filesystem::path& archive_dir, const inspect_options& options) {
    namespace a = detail::archive;
    const auto contents = a::read_archive(archive_dir);
    auto report = a::start_report(archive_dir, contents);
    if (contents.records.empty()) {
        report.problems.push_back(
            {archive_problem::kind::gap, {}, 0, "the archive holds no valid record", true});
        return report;
    }
    static std::atomic<int> counter{0};
    a::remove_stale_temporaries(std::filesystem::temp_directory_path(), true);  // killed inspections'
    const auto scratch = std::filesystem::temp_directory_path() /
                         fmt::format("resilite-inspect-{}-{}", ::getpid(), counter.fetch_add(1));
    std::filesystem::create_directories(scratch);
    const auto cleanup = [&] {
        std::error_code ec;
        std::filesystem::remove_all(scratch, ec);
    };
    try {
        const auto trial = scratch / "trial.db";
        a::build_from_archive(contents, trial, report, true);
        if (options.live_database) {
            sqlite::connection rebuilt{trial, SQLITE_OPEN_READONLY};
            sqlite::connection live{*options.live_database, SQLITE_OPEN_READONLY};
            live.busy_timeout(std::chrono::milliseconds{5000});
            bool all = true;
            live.exec_script("BEGIN");  // one snapshot of the live database for every table
            for (auto& t : report.tables) {
                std::vector<std::string> cols;
                for (const auto& col : detail::schema_inspector{rebuilt}.columns(t.name)) {
                    if (options.excluded_columns.count(detail::lower(t.name + "." + col.name)) == 0)
                        cols.push_back(col.name);
                }
                const auto mine = a::content_hash(rebuilt, t.name, cols);
                bool same = false;
                try {
                    same = a::content_hash(live, t.name, cols) == mine;
                } catch (const error&) {  // the live table lacks the table or a column
                }
                t.matches_live = same;
                if (!same) {
                    all = false;
                    report.problems.push_back(
                        {archive_problem::kind::mismatch,
                         {},
                         0,
                         fmt::format("table {}: the rebuilt rows differ from the live ones", t.name),
                         true});
                }
            }
            live.exec_script("COMMIT");
            for (const auto& t : a::user_tables(live)) {
                const bool archived =
                    std::any_of(report.tables.begin(), report.tables.end(),
                                [&](const archive_table_summary& s) { return s.name == t; });
                if (!archived && options.excluded_columns.count(detail::lower(t) + ".*") == 0) {
                    all = false;
                    report.problems.push_back(
                        {archive_problem::kind::mismatch,
                         {},
                         0,
                         fmt::format("table {} is in the live database but not in the archive", t),
                         true});
                }
            }
            report.reproduces_live = all;
        }
    } catch (...) {
        cleanup();
        throw;
    }
    cleanup();
    return report;
}
}  // namespace detail::archive

// Every failure is a resilite::error.
inline archive_report inspect_archive(const std::filesystem::path& archive_dir,
                                      const inspect_options& options = {}) {
    namespace a = detail::archive;
    return a::guarded("inspect", archive_dir, [&] { return detail::archive::inspect(archive_dir, options); });
}

}  // namespace resilite
