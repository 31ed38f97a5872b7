#pragma once
// resilite::replay_archive: applies to an existing database the archive records it does not
// hold yet (those after the sequence number it stores), in one transaction. Idempotent:
// replaying again applies nothing, and every archived statement is an upsert or a delete by
// key, so even a record applied twice leaves the same rows.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/archive/detail/archive_apply.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/core/error.hpp>
#include <resilite/core/progress.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

namespace resilite {

struct replay_options {
    bool keep_going = false;  // apply what can be applied despite fatal problems
    // Asked now and then while records are applied: true stops the replay with an
    // `interrupted` error, and nothing is applied (e.g. a deadline).
    std::function<bool()> stop_when;
    // Told how far the replay has come: records applied.
    progress_fn on_progress;
    // The last record to apply (0: all): a restore drill replays up to the record its
    // snapshot of the live database holds, so both sides show the same commit.
    std::int64_t until_seq = 0;
    // The report's tables with their row counts (a pass over every table; a heal, which counts
    // them itself after its integrity check, does without).
    bool count_rows = true;
    // false: the COMMIT does not wait for the disk (synchronous=OFF). For a copy the caller makes
    // durable itself before anyone relies on it (a heal's candidate, flushed beside its checks).
    bool sync = true;
};

namespace detail::archive {

// One replay in one transaction. `tail_only`: the records the database already holds are not
// read (read_archive's not_needed_through); returns nothing, and leaves the database as it was,
// when that meets any problem.
inline std::optional<archive_report> replay_once(const std::filesystem::path& archive_dir,
                                                 const std::filesystem::path& db, const replay_options& options,
                                                 bool tail_only) {  // (a copy: it may turn false below)
    sqlite::connection c{db, SQLITE_OPEN_READWRITE};
    c.busy_timeout(std::chrono::milliseconds{5000});
    if (!options.sync) c.exec("PRAGMA synchronous=OFF");
    // The archive is read before the write transaction, as other writers of the database would
    // wait for it; in the tail, after the records the database holds now (checked again below).
    std::int64_t held = 0;
    if (tail_only) {
        held = stored_archive_seq(c).value_or(0);
        if (held == 0) return std::nullopt;
    }
    const auto contents = read_archive(archive_dir, {}, held);
    auto report = start_report(archive_dir, contents);
    // Read in full after all (the walk met something unusual): its lines are exact, go on as a full read.
    if (tail_only && contents.skipped_records == 0) tail_only = false;
    if (tail_only && !report.problems.empty()) return std::nullopt;
    sqlite::transaction tx{c, transaction_mode::immediate};
    c.exec_script(create_internal_sql);
    const auto after = c.query_one<std::int64_t>("SELECT last_seq FROM resilite_archive_state").value_or(0);
    if (tail_only && after != held) return std::nullopt;  // another replay came first
    // A damaged record or a gap the database already holds past costs this replay nothing:
    // reported, not fatal (a backup plus its tail never needs the records before it).
    for (auto& p : report.problems) {
        if (p.fatal && p.up_to_seq > 0 && p.up_to_seq <= after) {
            p.fatal = false;
            p.message +=
                resilite::detail::format(" (the database already holds record {}: not needed)", after);
        }
    }
    refuse_incomplete(report, options.keep_going, "replay", "nothing was replayed", "replay_options::keep_going", db,
                      after == 0);
    // A database behind the newest snapshot starts from it: older records may be incomplete.
    const bool from_snapshot = !contents.records.empty() && after < contents.records[contents.start].header.seq;
    try {
        report.applied_records =
            apply_records(c, contents, from_snapshot ? contents.start : 0, after, report, options.stop_when,
                          options.until_seq > 0 ? options.until_seq : std::numeric_limits<std::int64_t>::max(),
                          &options.on_progress, "replay");
    } catch (const error& e) {
        // A failure that cites a line: read again in full, so that the line is right.
        if (tail_only && e.klass() == error_class::archive) return std::nullopt;
        throw;
    }
    if (tail_only && !report.problems.empty()) return std::nullopt;
    refuse_incomplete(report, options.keep_going, "replay", "nothing was replayed", "replay_options::keep_going", db,
                      after == 0);
    // A database that never recorded an archived schema (a backup taken before archiving
    // started) now holds what the archive describes, as a rebuild does: its next open with
    // archiving continues the archive instead of writing a full snapshot.
    if (report.applied_records > 0 &&
        c.query_one<std::int64_t>("SELECT count(*) FROM resilite_archive_schema").value_or(0) == 0)
        record_schema_as_archived(c);
    tx.commit();
    if (options.count_rows) summarize_tables(c, report, false);
    return report;
}

// An archive belongs to the database its IDENTITY file names: another database's records would
// overwrite its rows by key. A database with no identity (a point-in-time rebuild) takes any.
inline void refuse_another_database(const std::filesystem::path& archive_dir, const std::filesystem::path& db) {
    const auto owner = read_archive_identity(archive_dir);
    if (!owner) return;
    sqlite::connection c{db, SQLITE_OPEN_READWRITE};
    c.busy_timeout(std::chrono::milliseconds{5000});
    if (const auto id = read_identity(c); id && *id != *owner)
        throw library_failure(
            error_class::misuse, "replay",
            resilite::detail::format("the archive {} belongs to another database (identity {}, {} is {}); "
                                     "nothing was replayed",
                                     archive_dir.string(), *owner, db.string(), *id),
            db.string());
}

}  // namespace detail::archive

inline archive_report replay_archive(const std::filesystem::path& archive_dir,
                                     const std::filesystem::path& db, replay_options options = {}) {
    namespace a = detail::archive;
    return a::guarded("replay", db, [&] {
        if (!std::filesystem::exists(db)) {
            throw detail::library_failure(error_class::cant_open, "replay",
                                          "no database to replay into; use rebuild", db.string());
        }
        a::refuse_another_database(archive_dir, db);
        // First reading only the records after those the database holds (after a restore, the
        // tail of a long history); on any problem at all, everything again with every record
        // read and checked, so that what is reported is exact.
        if (auto r = a::replay_once(archive_dir, db, options, true)) return std::move(*r);
        return std::move(*a::replay_once(archive_dir, db, options, false));
    });
}

}  // namespace resilite
