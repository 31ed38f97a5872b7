#pragma once
// The restore drill, top to bottom (drill_flow::run): what Litestream users are told to do by
// hand, done by the library.
//   1. drain the archive, so that it holds every commit so far;
//   2. restore into a scratch file beside the database: the newest backup that passes its
//      check plus the archive records after it, or the archive alone, never past the record
//      the live database holds;
//   3. under the writer lock: drain again, fix a snapshot of the live database (a read
//      transaction), replay the archive into the scratch file up to the record that snapshot
//      holds, and compare every table with the live one (row count and content hash; secret
//      columns left out): one commit on both sides, whatever other processes write meanwhile;
//   4. remove the scratch file, keep the report for health(), emit `drill` (failed: an error
//      event: the backups or the archive cannot heal this database).

#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/archive/detail/behind_archive.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/archive/rebuild.hpp>
#include <resilite/archive/replay_archive.hpp>
#include <resilite/backup/detail/backup_files.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/archive_flow.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/heal_flow.hpp>
#include <resilite/heal/drill_report.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/schema/detail/schema_sync.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/file_set.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace resilite::detail {

template <class R>
class drill_flow {
public:
    drill_flow(context<R>& ctx, archive_flow<R>& archive) : ctx_(ctx), archive_(archive) {}

    // `excluded`: columns ("table.column", lower case) left out of the comparison besides the
    // declared secret ones (a program that declares no schema names them).
    drill_report run(const std::set<std::string>& excluded = {}) {
        const auto start = ctx_.now();
        drill_report rep;
        rep.when = ctx_.clock.utc_now();
        const auto s = ctx_.with_lock([&] { return ctx_.config; });
        const auto here = std::filesystem::absolute(ctx_.path).parent_path();
        remove_stale_temp_files(here, ".resilite-drill-");
        const sqlite::file_set scratch{here / scratch_name(".resilite-drill-", ctx_.path)};
        try {
            ctx_.with_lock([&] { archive_.drain_quietly(true); });  // 1.
            const auto archive_dir = archive_.directory();
            std::error_code ec;
            const bool has_archive =
                std::filesystem::is_directory(archive_dir, ec) && !archive::list_segments(archive_dir).empty();
            restore(scratch, s, has_archive, archive_dir, rep);  // 2.
            if (rep.problem.empty()) compare(scratch, has_archive, archive_dir, rep, excluded);  // 3.
            // Equal at the file's own record says nothing about the records after it that the
            // archive holds and the file lost (a database opened without archive<>).
            if (has_archive)
                if (auto behind = archive::behind_its_archive(ctx_.path, archive_dir))
                    rep.behind = *behind + "; a heal brings them back";
        } catch (const std::exception& e) {
            rep.problem = e.what();
        }
        scratch.remove_all();  // 4.
        rep.ok = rep.problem.empty();
        rep.duration = ctx_.now() - start;
        ctx_.with_lock([&] { last_ = rep; });
        // A drill that fails says the backups and the archive could not heal this database: a
        // problem of theirs (class archive), not damage of the live database.
        // (Ok with a backup passed over, or behind its archive: a warning, as that backup could
        // not heal, and the file lacks commits.)
        const auto result = !rep.ok                                             ? outcome::failed
                            : rep.skipped_backups.empty() && rep.behind.empty() ? outcome::ok
                                                                                : outcome::warning;
        ctx_.emit_since("drill", start, result, static_cast<std::int64_t>(rep.tables.size()),
                        rep.ok ? error_class::none : error_class::archive,
                        result == outcome::ok ? std::string{} : rep.to_text());
        return rep;
    }

    // The caller holds the writer lock.
    [[nodiscard]] const std::optional<drill_report>& last() const noexcept { return last_; }

private:
    void restore(const sqlite::file_set& scratch, const settings& s, bool has_archive,
                 const std::filesystem::path& archive_dir, drill_report& rep) {
        scratch.remove_all();
        // Never past the record the live database holds now (it only grows): a record above it
        // was written ahead of a COMMIT that has not happened, or never will (a crash; the next
        // open cancels it), or the database is an older copy put back by hand.
        const auto live_seq = ctx_.with_lock([&] { return archive::stored_archive_seq(ctx_.connection()).value_or(0); });
        const auto dir = backup_directory(ctx_.path, s.backup);
        std::error_code ec;
        auto backups = std::filesystem::is_directory(dir, ec) ? list_backups(ctx_.path, dir) : std::vector<backup_file>{};
        std::reverse(backups.begin(), backups.end());
        const auto manifest = read_manifest(dir);
        // (Two databases of one file name may share a backup directory.)
        const auto mine = database_identity(ctx_.path);
        for (const auto& b : backups) {
            auto why = untrusted_backup(b.path, manifest);
            if (!why && !mine.empty()) {
                if (const auto from = identity_in_file(b.path); from && *from != mine)
                    why = resilite::detail::format("a backup of another database (identity {}; this database is {})",
                                                   *from, mine);
            }
            if (!why) {
                if (const auto check = check_health(b.path, check_level::quick); !check.ok())
                    why = resilite::detail::format("fails its quick check ({})", check.detail);
            }
            if (why) {
                rep.skipped_backups.push_back(
                    resilite::detail::format("{}: {}", b.path.filename().string(), *why));
                continue;
            }
            std::filesystem::copy_file(b.path, scratch.database());
            rep.backup_used = b.path;
            rep.source = resilite::detail::format("backup {}{}", b.path.filename().string(),
                                                  has_archive ? " + archive" : "");
            if (has_archive) {
                replay_options o;
                o.until_seq = live_seq;
                static_cast<void>(replay_archive(archive_dir, scratch.database(), o));
            }
            return;
        }
        if (has_archive) {
            rebuild_options o;
            o.until_seq = live_seq;
            static_cast<void>(rebuild(archive_dir, scratch.database(), o));
            rep.source = "archive alone";
            return;
        }
        rep.problem = backups.empty() ? "there is neither a backup nor an archive to restore from"
                                      : "no backup passes its check, and there is no archive";
    }

    // Both sides at one commit: a read transaction on the live database fixes its snapshot, and
    // the archive is replayed up to the record that snapshot holds (another process may commit
    // meanwhile: it changes neither side).
    void compare(const sqlite::file_set& scratch, bool has_archive, const std::filesystem::path& archive_dir,
                 drill_report& rep, const std::set<std::string>& excluded) {
        std::lock_guard lock(ctx_.mutex);
        archive_.drain_quietly(true);
        auto& live = ctx_.connection();
        sqlite::transaction snapshot{live, transaction_mode::deferred};
        const auto seq = archive::stored_archive_seq(live).value_or(0);
        if (has_archive) {
            replay_options o;
            o.until_seq = seq;
            static_cast<void>(replay_archive(archive_dir, scratch.database(), o));
        }
        sqlite::connection restored{scratch.database(), SQLITE_OPEN_READONLY};
        std::vector<std::string> different;
        const auto declared = archive::capture_tables(R::schema::definition());
        auto left_out = excluded;  // and the columns the capture triggers leave out (undeclared secrets)
        left_out.merge(archive::unarchived_columns(live));
        for (const auto& name : archive::user_tables(live)) {
            const auto d = std::find_if(declared.begin(), declared.end(),
                                        [&](const archive::capture_table& x) { return lower(x.name) == lower(name); });
            const archive::capture_table t = d != declared.end() ? *d : archive::capture_table{name, {}};
            std::vector<std::string> columns;
            for (auto& c : live.template query_all<std::string>("SELECT name FROM pragma_table_info(?)", t.name))
                if (t.secrets.count(lower(c)) == 0 && !left_out.contains(lower(t.name) + "." + lower(c)))
                    columns.push_back(std::move(c));
            const auto a = archive::content_hash(live, t.name, columns);
            // A table the restored database lacks (created where nothing archived it) is a
            // difference to name, not an error of the drill's own.
            if (restored.template query_one<int>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                                 "name = ? COLLATE NOCASE",
                                                 t.name) == 0) {
                rep.tables.push_back({t.name, a.first, 0, false});
                different.push_back(resilite::detail::format("{} (not in the restored database)", t.name));
                continue;
            }
            const auto b = archive::content_hash(restored, t.name, columns);
            rep.tables.push_back({t.name, a.first, b.first, a == b});
            if (a != b) different.push_back(t.name);
        }
        snapshot.rollback();
        if (!different.empty()) {
            rep.problem = resilite::detail::format(
                "the restored database differs from the live one in {}{}", fmt::join(different, ", "),
                has_archive ? "" : " (there is no archive: a backup lacks the commits after it)");
        }
    }

    context<R>& ctx_;
    archive_flow<R>& archive_;
    std::optional<drill_report> last_;
};

}  // namespace resilite::detail
