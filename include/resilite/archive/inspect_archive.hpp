#pragma once
// resilite::inspect_archive: validates an archive and reports what a recovery from it would
// give, without touching anything: checksums, sequence gaps, time order, a trial rebuild into a
// scratch directory (integrity and foreign-key check), rows and a content hash per table, and,
// given the live database, whether the archive alone reproduces it table by table.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_apply.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/archive/detail/behind_archive.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/identity.hpp>

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
    // The live database is compared at the record it holds: the archive is read up to that record
    // (a later one is a commit after its snapshot, by a process writing now). True: with every
    // record, for a database no one writes (a heal's candidate must hold them all).
    bool whole_archive = false;
};

namespace detail::archive {
[[nodiscard]] inline archive_report inspect(const std::filesystem::path& archive_dir, const inspect_options& options) {
    namespace a = detail::archive;
    // One consistent point: the live database's snapshot is taken first, and the archive is read
    // up to the record that snapshot says it holds. A later record is a commit after the
    // snapshot (another process writing now: a record is written before its COMMIT), not a
    // difference.
    // Committed records the archive holds beyond the database's own number (the database lost
    // them): read past the snapshot's number below, they would be taken for a writer's.
    // Another database's archive (its IDENTITY names another identity): its records say nothing
    // about this database, and compared with it every table would "differ".
    std::optional<std::string> foreign;
    if (options.live_database) {
        const auto owner = read_archive_identity(archive_dir);
        sqlite::connection c{*options.live_database, SQLITE_OPEN_READONLY};
        c.busy_timeout(std::chrono::milliseconds{5000});
        if (const auto id = owner ? read_identity(c) : std::nullopt; id && *id != *owner)
            foreign = resilite::detail::format(
                "the archive belongs to another database (identity {}; {} is {}): not compared with it",
                *owner, options.live_database->string(), *id);
    }
    const bool compare = options.live_database && !foreign;
    const auto behind = compare && !options.whole_archive
                            ? a::behind_its_archive(*options.live_database, archive_dir)
                            : std::nullopt;
    std::optional<sqlite::connection> live;
    a::archive_limit limit;
    std::int64_t unarchived = 0;  // changes the snapshot's outbox holds that the archive has not received
    if (compare) {
        live.emplace(*options.live_database, SQLITE_OPEN_READONLY);
        live->busy_timeout(std::chrono::milliseconds{5000});
        live->exec_script("BEGIN");
        static_cast<void>(live->query_one<std::int64_t>("SELECT count(*) FROM sqlite_master"));  // (the snapshot)
        try {
            if (const auto seq = live->query_one<std::int64_t>("SELECT last_seq FROM resilite_archive_state");
                seq && *seq > 0 && !options.whole_archive)
                limit.seq = *seq;
            unarchived = live->query_one<std::int64_t>("SELECT count(*) FROM resilite_archive_outbox WHERE id > "
                                                       "(SELECT last_id FROM resilite_archive_state)")
                             .value_or(0);
        } catch (const error&) {  // (a database that never had an archive)
        }
    }
    // (Streamed: no entry per record is kept, the trial rebuild reads the records again.)
    const auto contents = a::read_archive(archive_dir, limit, 0, a::archive_chunk_bytes, true);
    auto report = a::start_report(archive_dir, contents);
    if (foreign) {
        report.problems.push_back({archive_problem::kind::mismatch, {}, 0, *foreign, true});
        report.reproduces_live = false;
    }
    if (contents.no_record()) {
        // (A link is never read: it would read as an archive with no record.)
        report.problems.push_back(
            detail::is_link_path(archive_dir)
                ? archive_problem{archive_problem::kind::damaged, {}, 0,
                                  "the archive directory " + detail::link_not_followed(archive_dir), true}
                : archive_problem{archive_problem::kind::gap, {}, 0, "the archive holds no valid record", true});
        return report;
    }
    static std::atomic<int> counter{0};
    a::remove_stale_temporaries(std::filesystem::temp_directory_path(), true);  // killed inspections'
    const auto scratch = std::filesystem::temp_directory_path() /
                         resilite::detail::format("resilite-inspect-{}-{}", ::getpid(), counter.fetch_add(1));
    std::filesystem::create_directories(scratch);
    const auto cleanup = [&] {
        std::error_code ec;
        std::filesystem::remove_all(scratch, ec);
    };
    try {
        const auto trial = scratch / "trial.db";
        a::build_from_archive(contents, trial, report, true);
        if (live) {
            sqlite::connection rebuilt{trial, SQLITE_OPEN_READONLY};
            bool all = true;
            // An archive behind the snapshot's outbox (batched, or changes another program made
            // through the capture triggers) differs by what it has not received yet: a lag, said
            // as such, not a loss.
            const auto lag = unarchived == 0
                                 ? std::string{}
                                 : resilite::detail::format(
                                       " (the live database holds {} change{} its archive has not received "
                                       "yet: the archive lags, and its next drain takes them)",
                                       unarchived, unarchived == 1 ? "" : "s");
            for (auto& t : report.tables) {
                std::vector<std::string> cols;
                for (const auto& col : detail::schema_inspector{rebuilt}.columns(t.name)) {
                    if (options.excluded_columns.count(detail::lower(t.name + "." + col.name)) == 0)
                        cols.push_back(col.name);
                }
                const auto mine = a::content_hash(rebuilt, t.name, cols);
                bool same = false;
                try {
                    same = a::content_hash(*live, t.name, cols) == mine;
                } catch (const error&) {  // the live table lacks the table or a column
                }
                t.matches_live = same;
                if (!same) {
                    all = false;
                    report.problems.push_back(
                        {archive_problem::kind::mismatch,
                         {},
                         0,
                         resilite::detail::format("table {}: the rebuilt rows differ from the live ones{}",
                                                  t.name, lag),
                         lag.empty()});
                }
            }
            const auto live_tables = a::user_tables(*live);
            live->exec_script("COMMIT");
            for (const auto& t : live_tables) {
                const bool archived =
                    std::any_of(report.tables.begin(), report.tables.end(),
                                [&](const archive_table_summary& s) { return s.name == t; });
                if (!archived && options.excluded_columns.count(detail::lower(t) + ".*") == 0) {
                    all = false;
                    report.problems.push_back(
                        {archive_problem::kind::mismatch,
                         {},
                         0,
                         resilite::detail::format("table {} is in the live database but not in the archive{}",
                                                  t, lag),
                         lag.empty()});
                }
            }
            if (behind) {
                all = false;
                report.problems.push_back({archive_problem::kind::behind, {}, 0,
                                           *behind + "; a heal, or `archive replay`, brings them back", true});
            }
            report.reproduces_live = all;
            report.unarchived_changes = unarchived;
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
