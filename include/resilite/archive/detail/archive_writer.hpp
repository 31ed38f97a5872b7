#pragma once
// The archive's writing side: moves outbox rows into the current monthly segment (appended,
// fdatasync'ed), numbers records, repairs a torn tail left by a crash, cancels a record whose
// transaction never committed, and keeps the archived schema and the capture triggers in step
// with every table of the database (at open, and before each commit whose schema changed).
//
// Written ahead (flush on commit): before_commit() appends the transaction's record inside
// the transaction, with its number stored in resilite_archive_state by the same transaction;
// the caller then commits, and cancels the record if the commit failed. The segment's sync runs
// on a helper thread while the COMMIT syncs the WAL; committed() waits for it. When it fails
// after SQLite made the COMMIT durable, the commit stands (reporting it failed would be false):
// a warning names it, the high-water mark is raised and synced so that a heal which finds the
// record missing names it, and the next write to the archive (a commit, a drain, the close)
// carries a full snapshot, synced before its COMMIT. Batched: drain() does
// the same in a transaction of its own. Either way SQLite's write lock serializes every writer
// of every process, so records never interleave, and under that lock a record numbered above
// what the database stores is one whose transaction never committed (see resolve_tail).
// Archived rows are deleted from the outbox in batches (settle).

#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/archive/detail/archive_format.hpp>
#include <resilite/archive/detail/behind_archive.hpp>
#include <resilite/archive/detail/high_water.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/core/detail/background_sync.hpp>
#include <resilite/core/error.hpp>
#include <resilite/core/transaction_mode.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/sqlite/transaction.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

namespace resilite::detail::archive {

class archive_writer {
public:
    // `declared`: the declared tables (their secret columns are never written); every other
    // table of the database is archived too. `database_file`, `identity`: the database whose
    // high-water mark is raised after each commit (empty: none).
    archive_writer(std::filesystem::path dir, std::string database_name, std::vector<capture_table> declared,
                   int settle_rows, std::filesystem::path database_file = {}, std::string identity = {})
        : dir_(std::move(dir)),
          database_(std::move(database_name)),
          declared_(std::move(declared)),
          settle_rows_(settle_rows),
          high_water_(std::move(database_file), std::move(identity)) {}

    [[nodiscard]] const std::filesystem::path& directory() const noexcept { return dir_; }
    [[nodiscard]] const std::vector<capture_table>& declared() const noexcept { return declared_; }
    // Notes worth a warning event since the last call (a record cancelled, ...).
    [[nodiscard]] std::vector<std::string> take_notes() { return std::exchange(notes_, {}); }
    // Rows this writer's own statements changed on its connection (not the application's).
    [[nodiscard]] std::int64_t bookkeeping() const noexcept { return bookkeeping_; }
    [[nodiscard]] std::int64_t last_seq() const noexcept { return last_seq_; }
    // Why the last catch_up or drain refused the database as behind its archive (empty: it did not).
    [[nodiscard]] const std::string& behind() const noexcept { return behind_; }
    void set_settle_rows(int n) noexcept { settle_rows_ = n; }
    // Test hook: when it returns true, a segment sync overlapped with a COMMIT reports a failure.
    void set_sync_fault(std::function<bool()> f) { sync_fault_ = std::move(f); }
    // Drains larger than this are written in a second pass instead of being held in memory.
    void set_memory_limit(std::size_t bytes) noexcept { memory_limit_ = bytes; }
    // Captured rows this writer has not archived yet (another process may have meanwhile).
    // Bytes of the records archived since the newest baseline, as the database stored them at
    // this writer's last write (what archive.baseline_after_bytes is compared with).
    [[nodiscard]] std::int64_t since_baseline() const noexcept { return since_baseline_; }
    [[nodiscard]] std::int64_t pending(sqlite::connection& c) const {
        return c
            .query_one<std::int64_t>("SELECT count(*) FROM resilite_archive_outbox WHERE id > ?", last_id_)
            .value_or(0);
    }

    // At open, before anything else writes: outbox and state tables, agreement with what the
    // archive already holds, schema records (or a snapshot), capture triggers. The caller drains
    // next (a directory that cannot be written must not stop the database: the outbox keeps
    // everything until it can). Returns notes worth an event (empty when all was routine).
    // `migrated`: migrations ran before this; their row changes went through the capture
    // triggers of the old shape, so only a snapshot describes the result for certain.
    // `snapshot_reason`: a full snapshot is asked for (archive repair); the note says why.
    // `baseline`: one is asked for as routine (write_baseline), without a note.
    std::vector<std::string> catch_up(sqlite::connection& c, bool migrated, std::string_view snapshot_reason = {},
                                      bool baseline = false) {
        std::vector<std::string> notes;
        {
            // Its own transaction, or the caller's (a record about to be written ahead).
            std::optional<sqlite::transaction> tx;
            if (!c.in_transaction()) tx.emplace(c, transaction_mode::immediate);
            c.exec_script(create_internal_sql);
            // (Archived by an earlier version: no count of the bytes since the newest baseline;
            // it counts from here.)
            if (c.query_one<int>("SELECT count(*) FROM pragma_table_info('resilite_archive_state') "
                                 "WHERE name = 'since_baseline'")
                    .value_or(0) == 0)
                c.exec_script("ALTER TABLE resilite_archive_state ADD COLUMN since_baseline INTEGER NOT NULL DEFAULT 0");
            since_baseline_ = std::get<1>(stored_state(c));
            const auto [db_seq, db_id] = read_state(c);
            known_ = false;
            // An archive that cannot be read (a segment that is a link or a directory, no
            // permission) must not stop the database: the outbox keeps every change, and each
            // drain reads the archive's end again first.
            bool readable = true;
            try {
                if (auto note = refresh_tail()) notes.push_back(std::move(*note));
            } catch (const error& e) {
                if (format_refused_) throw;  // another format version: never written over
                readable = false;
                notes.push_back(
                    resilite::detail::format("the archive cannot be read ({}); the outbox keeps every change "
                                             "until it can",
                                             e.technical().note));
            }
            bool need_baseline = baseline || !snapshot_reason.empty();
            if (!snapshot_reason.empty()) notes.emplace_back(snapshot_reason);
            if (!readable) {
                last_seq_ = std::max(last_seq_, db_seq);
                last_id_ = db_id;
            } else {
                // Compared with where the archive ends, not with last_seq_: resolve_tail has
                // already raised that to the database's number.
                const auto archive_end = resolve_tail(c);
                auto resolved = take_notes();
                notes.insert(notes.end(), resolved.begin(), resolved.end());
                if (std::exchange(behind_archive_, false)) {
                    // The records after the database's number describe commits this copy does not
                    // hold. Put back by resilite::restore(): rolled back on purpose, and a snapshot
                    // after them makes a heal or a rebuild give this database. Otherwise they are
                    // acknowledged commits the file lost: never written over.
                    notes.push_back(older_copy(db_seq, archive_end) +
                                    ", and a full snapshot was written so that the archive gives this database again");
                    need_baseline = true;
                }
                if (archive_end < db_seq) {
                    need_baseline = true;
                    notes.push_back(resilite::detail::format(
                        "the archive ends at txn {} but the database had archived up to txn {} (archive "
                        "directory replaced or damaged, or a COMMIT reported failed with an I/O error that "
                        "SQLite's recovery "
                        "brought back?); a full snapshot was written so that the archive "
                        "alone can rebuild the database again",
                        archive_end, db_seq));
                    last_seq_ = std::max(last_seq_, db_seq);  // numbers are never used twice
                }
            }
            unsettled_ = c.query_one<std::int64_t>(
                              "SELECT count(*) FROM resilite_archive_outbox WHERE id < ?", last_id_)
                             .value_or(0);
            sync_schema(c, need_baseline, migrated, notes);
            if (tx) tx->commit();
        }
        return notes;
    }

    // Inside the caller's write transaction, before its COMMIT: a schema that changed since the
    // last look (a table created, altered or dropped, by any connection) gets its records and
    // capture triggers first; then, with `append`, the outbox rows not yet archived are written
    // ahead as records, and their number stored by this transaction. Throws when the archive
    // cannot take them: the caller rolls back, so nothing unarchived is acknowledged. With
    // `overlap` the records are synced while the COMMIT runs (committed() waits for it), else
    // here. After the COMMIT the caller calls committed(), or cancel_pending() when it failed.
    void before_commit(sqlite::connection& c, std::chrono::system_clock::time_point now, bool append,
                       bool overlap = false) {
        try {
            before_commit_in(c, now, append, overlap);
        } catch (...) {
            schema_version_ = -1;  // the caller rolls back what the schema sync recorded: look again
            throw;
        }
    }

    // The COMMIT after before_commit() (or a drain) succeeded: the records are committed. When
    // their sync, overlapped with the COMMIT, failed, the commit stands all the same (SQLite made
    // it durable): see the top of this file.
    void committed() noexcept {
        const bool snapshot = std::exchange(snapshot_in_flight_, false);
        if (!pending_) return;
        const auto seq = pending_->seq;
        const int sync_error = pending_->syncing ? syncer_.wait() : 0;
        pending_.reset();
        if (sync_error != 0) {
            kept_.reset();  // a descriptor whose sync failed is not written through again
            known_ = false;
            owe_snapshot(unsynced_record);
            try {
                notes_.push_back(resilite::detail::format(
                    "txn {} is committed in the database, but its archive record could not be made durable "
                    "({}): the archive may lack it. The next write to the archive carries a full snapshot; a "
                    "heal that finds the record missing before then names txn {} as lost",
                    seq, std::error_code(sync_error, std::generic_category()).message(), seq));
            } catch (...) {
            }
        } else if (snapshot) {
            snapshot_due_ = false;
        }
        // Synced when the record may be missing: the mark is then the only evidence of the commit.
        if (!high_water_.raise(seq, sync_error != 0)) {
            try {
                notes_.push_back(resilite::detail::format(
                    "could not raise the archive's high-water mark in {}", high_water_.file().string()));
            } catch (...) {
            }
        }
    }

    // The COMMIT after before_commit() failed and SQLite rolled the transaction back: the record
    // written ahead is taken back (it describes a transaction reported as failed), unless the
    // segment no longer ends with it (another writer cancelled it already, under its lock).
    // `c`: when SQLite already ended the transaction (its write lock is gone), the record is
    // taken back under a write lock of its own, so that no other writer appends meanwhile; if
    // that lock cannot be had, the next writer (or open) cancels it under its lock instead.
    void cancel_pending(sqlite::connection* c = nullptr) noexcept {
        snapshot_in_flight_ = false;
        schema_version_ = -1;  // a schema sync in the rolled-back transaction is gone with it
        static_cast<void>(syncer_.wait());  // the helper is done with the descriptor
        if (!pending_) return;
        const auto p = *std::exchange(pending_, std::nullopt);
        known_ = false;
        try {
            std::optional<sqlite::transaction> lock;
            if (c != nullptr && !c->in_transaction()) lock.emplace(*c, transaction_mode::immediate);
            std::error_code ec;
            if (std::filesystem::file_size(p.segment, ec) != p.end || ec) return;
            const auto t = read_last_record(p.segment, p.end, p.segment.filename().string());
            if (!t || t->seq != p.seq || t->crc != p.crc) return;
            if (p.created) {
                if (::unlink(p.segment.c_str()) == 0) static_cast<void>(fsync_path(dir_, true));
                return;
            }
            const int fd = ::open(p.segment.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) return;
            if (::ftruncate(fd, static_cast<off_t>(p.start)) == 0) static_cast<void>(::fdatasync(fd));
            ::close(fd);
        } catch (...) {
        }
    }

    // The next write to the archive carries a full snapshot, for `why` (said in its note); the
    // debt stays until a commit carrying it is durable.
    void owe_snapshot(std::string_view why) {
        if (!snapshot_due_) snapshot_reason_ = std::string{why};
        snapshot_due_ = true;
    }

    // Batched flush, close, backups: appends the outbox rows not yet archived, in a transaction
    // of its own; with `settle` (or when enough have piled up) also deletes archived rows.
    // Returns the number of records written. Throws on failure; the rows stay in the outbox.
    std::int64_t drain(sqlite::connection& c, std::chrono::system_clock::time_point now, bool settle) {
        try {
            sqlite::transaction tx{c, transaction_mode::immediate};
            if (snapshot_due_) {
                take_snapshot_due(c);  // (at close too: the debt is not left to chance)
            } else if (schema_changed(c)) {
                sync_schema_or_later(c);
            }
            const auto n = drain_in(c, now, settle);
            commit(tx);
            return n;
        } catch (...) {
            schema_version_ = -1;  // what a rolled-back schema sync recorded is gone: look again
            throw;
        }
    }

    // A baseline now (Db::write_baseline(), or archive.baseline_after_bytes): what the outbox
    // holds, then a full snapshot of every table as one record, in a transaction of its own,
    // synced before its COMMIT; it also pays a snapshot owed (owe_snapshot). Returns its number.
    // Throws on failure; nothing is written (the outbox keeps its rows). `unless_below`: none
    // is written (0 is returned) when the records since the newest baseline, as the database
    // stores them under the write lock, hold fewer bytes (another process wrote one meanwhile).
    std::int64_t write_baseline(sqlite::connection& c, std::chrono::system_clock::time_point now,
                                std::int64_t unless_below = 0) {
        const auto since_before = since_baseline_;
        try {
            sqlite::transaction tx{c, transaction_mode::immediate};
            if (unless_below > 0) {
                since_baseline_ = std::get<1>(stored_state(c));
                if (since_baseline_ < unless_below) {
                    tx.rollback();
                    return 0;
                }
            }
            auto notes = catch_up(c, false, {}, true);
            notes_.insert(notes_.end(), notes.begin(), notes.end());
            snapshot_in_flight_ = true;
            static_cast<void>(drain_in(c, now, true));
            commit(tx);
            return last_seq_;
        } catch (...) {
            schema_version_ = -1;
            since_baseline_ = since_before;  // (the count the rolled-back append set is gone with it)
            throw;
        }
    }

    // COMMIT of a transaction whose record was written ahead: the mark raised after it, the
    // record taken back when SQLite rolled the transaction back instead.
    void commit(sqlite::transaction& tx) {
        try {
            tx.commit();
        } catch (...) {
            // Still open (busy): the caller rolls it back, and this writer holds the lock now.
            cancel_pending(tx.conn().in_transaction() ? nullptr : &tx.conn());
            throw;
        }
        committed();
    }

private:
    void before_commit_in(sqlite::connection& c, std::chrono::system_clock::time_point now, bool append,
                          bool overlap) {
        if (append && snapshot_due_) {
            take_snapshot_due(c);
        } else if (schema_changed(c)) {
            sync_schema_noted(c);
        }
        // The commit carrying that snapshot syncs before its COMMIT: if the archive still cannot
        // make it durable, the commit fails (class archive) instead of another warning.
        if (append) static_cast<void>(drain_in(c, now, false, overlap && !snapshot_in_flight_));
    }

    // A batched drain's schema sync, in a savepoint of its own: when it fails (a table it cannot
    // read), the outbox is drained all the same and the next drain tries the schema again.
    void sync_schema_or_later(sqlite::connection& c) {
        // A table created or changed outside a library transaction (exec_script, exec,
        // with_connection, another program): its record, its rows so far and its triggers.
        c.exec_script("SAVEPOINT resilite_schema_sync");
        try {
            sync_schema_noted(c);
            c.exec_script("RELEASE resilite_schema_sync");
        } catch (const std::exception& e) {
            c.exec_script("ROLLBACK TO resilite_schema_sync; RELEASE resilite_schema_sync");
            schema_version_ = -1;
            notes_.push_back(resilite::detail::format(
                "the schema changes made outside a transaction were not archived yet ({}); "
                "the next drain tries again",
                e.what()));
        }
    }

    // The archived schema brought to the live one (sync_schema), its notes kept for the events.
    void sync_schema_noted(sqlite::connection& c) {
        std::vector<std::string> notes;
        sync_schema(c, false, false, notes);
        notes_.insert(notes_.end(), notes.begin(), notes.end());
    }

    // An earlier record's sync failed after its COMMIT: the archive may lack it, so this
    // transaction carries a full snapshot (rolled back with it if it fails). committed() clears
    // the debt once that snapshot is durable.
    void take_snapshot_due(sqlite::connection& c) {
        auto notes = catch_up(c, false, "a full snapshot goes into the archive with this commit, because " + snapshot_reason_);
        notes_.insert(notes_.end(), notes.begin(), notes.end());
        snapshot_in_flight_ = true;
    }

    static constexpr std::string_view unsynced_record = "an earlier record could not be made durable there";

    struct appended {
        std::filesystem::path segment;
        std::uintmax_t start = 0, end = 0;
        std::int64_t seq = 0;
        std::uint32_t crc = 0;
        bool created = false;
        bool syncing = false;  // its sync runs on syncer_: wait before acknowledging or cancelling
    };

    [[nodiscard]] static std::tuple<std::int64_t, std::int64_t> read_state(sqlite::connection& c) {
        return c.query_one<std::int64_t, std::int64_t>("SELECT last_seq, last_id FROM resilite_archive_state")
            .value_or(std::tuple<std::int64_t, std::int64_t>{0, 0});
    }

    [[nodiscard]] bool schema_changed(sqlite::connection& c) {
        const auto v = c.query_one<std::int64_t>("PRAGMA schema_version").value_or(0);
        return v != schema_version_;
    }

    // The tables archived now: every table of the database but the library's own, virtual
    // tables and their shadow tables (a virtual table keeps its own data); declared ones with
    // their secret columns.
    [[nodiscard]] std::vector<capture_table> tables(sqlite::connection& c) const {
        std::vector<capture_table> out;
        for (auto& row : c.query_all<std::string, std::string>(
                 "SELECT name, type FROM pragma_table_list WHERE schema = 'main' ORDER BY name")) {
            const auto& name = std::get<0>(row);
            if (std::get<1>(row) != "table" || reserved_name(name)) continue;
            const auto d = std::find_if(declared_.begin(), declared_.end(),
                                        [&](const capture_table& t) { return lower(t.name) == lower(name); });
            out.push_back(d != declared_.end() ? capture_table{name, d->secrets} : capture_table{name, {}});
        }
        return out;
    }

    // Capture triggers an older version installed, and what they missed; empty when there are none.
    [[nodiscard]] static std::string older_capture_triggers(sqlite::connection& c) {
        const auto count = [&](std::string_view without) {
            return c.query_one<std::int64_t>(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                        "'resilite\\_archive\\_%\\_update' ESCAPE '\\' AND instr(sql, ?) = 0",
                        std::string{without})
                .value_or(0);
        };
        if (count("COLLATE BINARY") > 0)
            return "the capture triggers compared values under each column's collation (a change of case under "
                   "NOCASE was not archived); they compare bytes now, and a full snapshot was written";
        if (count("typeof(") > 0)
            return "the capture triggers took a change of type alone (1 to 1.0) for no change, and their records "
                   "kept a replaced key's old case or type (triggers of an older version); they are rewritten, and "
                   "a full snapshot was written";
        return {};
    }

    // The archived schema brought to the live one: DDL records when the change is additive (and
    // the rows of every table that is new or changed, which no capture trigger saw), a full
    // snapshot otherwise; then the capture triggers for every table. Inside a write transaction.
    void sync_schema(sqlite::connection& c, bool need_baseline, bool migrated, std::vector<std::string>& notes) {
        const auto all = tables(c);
        const auto live = live_objects(c, all);
        const auto archived = archived_objects(c);
        bool baseline = need_baseline;
        if (auto why = older_capture_triggers(c); !why.empty()) {
            // Rewritten below; the snapshot covers what they missed. At an open, and in a running
            // process when a process of an older version put its triggers back (upgrade every
            // process together: until then, each such change costs a snapshot).
            notes.push_back(std::move(why));
            baseline = true;
        }
        std::vector<std::string> ddl;
        std::vector<std::string> snapshot;  // tables whose rows are written whole
        if (!archived.empty() && !baseline && !migrated) {
            // A table the archive knows whose capture triggers are gone (dropped by hand): what
            // was written meanwhile is in no record, so a snapshot describes the table now. A
            // database that never had them here (rebuilt from the archive) holds nothing the
            // archive lacks; migrations that removed them owe a snapshot in the archived schema
            // (schema_setup.hpp).
            std::set<std::string> have;
            for (auto& name : c.query_all<std::string>("SELECT lower(name) FROM sqlite_master WHERE type = 'trigger' "
                                                       "AND name LIKE 'resilite\\_archive\\_%' ESCAPE '\\'"))
                have.insert(std::move(name));
            const bool installed_here =
                !have.empty() ||
                c.query_one<int>("SELECT count(*) FROM resilite_archive_schema WHERE type = ?", capture_installed_type)
                        .value_or(0) > 0;
            std::vector<std::string> missing;
            for (const auto& t : installed_here ? all : std::vector<capture_table>{}) {
                const bool known = std::any_of(archived.begin(), archived.end(), [&](const schema_object& o) {
                    return o.type == "table" && lower(o.name) == lower(t.name);
                });
                const auto name = [&](std::string_view what) { return lower(capture_trigger_name(t.name, what)); };
                if (known && (!have.count(name("insert")) || !have.count(name("update")) || !have.count(name("delete"))))
                    missing.push_back(t.name);
            }
            if (!missing.empty()) {
                baseline = true;
                notes.push_back(resilite::detail::format(
                    "the capture triggers of {} were missing (dropped by hand?): a full "
                    "snapshot was written, which holds what was written without them",
                    fmt::join(missing, ", ")));
            }
        }
        if (archived.empty()) {
            for (const auto& t : all) {
                if (schema_inspector{c}.has_rows(t.name)) baseline = true;
            }
            if (!baseline) {
                for (const auto& o : live)
                    ddl.push_back(if_not_exists(o.sql));
            }
            if (baseline && !need_baseline)
                notes.push_back("archiving started on a database that holds data: a full snapshot was written first");
        } else if (!baseline && migrated) {
            baseline = true;
            notes.push_back("migrations ran: a full snapshot of their outcome was written");
        } else if (!baseline && live != archived) {
            if (auto changes = additive_changes(archived, live)) {
                ddl = std::move(*changes);
                for (const auto& o : live) {
                    if (o.type != "table") continue;
                    const auto same = std::find(archived.begin(), archived.end(), o) != archived.end();
                    if (!same && schema_inspector{c}.has_rows(o.name)) snapshot.push_back(o.name);
                }
            } else {
                baseline = true;
                notes.push_back(
                    "the schema changed in a way a DDL record cannot express (something removed or redefined): "
                    "a full snapshot was written");
            }
        }
        for (const auto& stmt : ddl)
            add_to_outbox(c, stmt);
        for (const auto& name : snapshot) {
            const auto t = std::find_if(all.begin(), all.end(), [&](const capture_table& x) { return x.name == name; });
            if (t != all.end()) add_table_rows(c, *t);
        }
        if (baseline) add_baseline(c, all, live);
        if (live != archived) {
            c.exec_script("DELETE FROM resilite_archive_schema");
            for (const auto& o : live) {
                c.exec("INSERT INTO resilite_archive_schema(type, name, tbl_name, sql) VALUES(?, ?, ?, ?)", o.type,
                       o.name, o.tbl_name, o.sql);
            }
        }
        static_cast<void>(install_triggers(c, all));
        c.exec("INSERT OR IGNORE INTO resilite_archive_schema(type, name, tbl_name, sql) VALUES(?, 'installed', '', '')",
               capture_installed_type);
        schema_version_ = c.query_one<std::int64_t>("PRAGMA schema_version").value_or(0);
    }

    // Under the write lock: where the archive ends, compared with what the database stores.
    // A last record numbered above the database's is either ours with its settle lost (its
    // outbox rows are still there), or a record written ahead whose transaction never committed
    // (a crash between the append and the COMMIT: the records of one append, above the high-water
    // mark), which is set aside and cut off; anything else means the database is older than its
    // archive (restored from a copy), and the archive's numbering goes on. Returns the number of
    // the archive's last record now (0: none).
    std::int64_t resolve_tail(sqlite::connection& c) {
        const auto [db_seq, db_id] = read_state(c);
        if (auto note = refresh_tail()) notes_.push_back(std::move(*note));
        last_id_ = db_id;
        const auto archive_seq = tail_ ? tail_->seq : 0;
        last_seq_ = std::max(archive_seq, db_seq);
        if (archive_seq <= db_seq || !tail_) return archive_seq;
        if (outbox_holds(c, templates_, *tail_)) {
            last_id_ = tail_->last_id;
            return archive_seq;
        }
        if (db_seq + 1 > high_water_.read() && cancel_uncommitted(*tail_, db_seq)) {
            last_seq_ = db_seq;
            return db_seq;
        }
        notes_.push_back(resilite::detail::format(
            "the archive ends at txn {} but the database's outbox does not hold that record "
            "(restored from a copy?); its unarchived changes are numbered from txn {}",
            archive_seq, archive_seq + 1));
        behind_archive_ = true;
        return archive_seq;
    }

    // A database older than its archive. Put back by resilite::restore() (its sidecar says which
    // archive number a restore rolled back to), or with nothing saying the later records
    // committed: the copy is taken as it is, and the returned note says why. Otherwise (the
    // high-water mark is above its number) it lost acknowledged commits: its -wal removed after
    // a crash, an older copy copied over it; throws class corrupt, naming the records (the same
    // rule as behind_its_archive(), which the command asks).
    [[nodiscard]] std::string older_copy(std::int64_t db_seq, std::int64_t archive_end) {
        const auto& db = high_water_.database();
        const auto mark = high_water_.read();
        if (!db.empty() && read_marker(db).rolled_back_to == db_seq)
            return resilite::detail::format(
                "resilite::restore() put back a copy older than its archive, holding its records up to "
                "txn {}: the commits of txn {} to {} stay rolled back",
                db_seq, db_seq + 1, archive_end);
        // A database that holds none of the records (created at the path just now, say, where
        // the one the archive describes was lost) is no older copy: taking the archive over
        // would write a snapshot of nothing after its records, and a heal would give that. (With
        // a high-water mark above 0 for its identity, it lost acknowledged commits: below.)
        if (db_seq == 0 && (db.empty() || mark <= db_seq))
            throw library_failure(
                error_class::archive, "archive",
                resilite::detail::format(
                    "the archive {} holds records up to txn {} and this database none of them: it is "
                    "another database's archive, or the database it describes was lost and a new one "
                    "created at the path; nothing was written to the archive. To get that database back, "
                    "remove the database at the path and its sidecar ({}-resilite; check it holds nothing "
                    "you need: it holds none of the archive's records), then `resilite archive rebuild {} "
                    "{}`; to start a new database, move the archive directory aside",
                    dir_.string(), archive_end, db.empty() ? std::string{"<database>"} : db.string(),
                    dir_.string(), db.empty() ? std::string{"<database>"} : db.string()),
                db.empty() ? dir_.string() : db.string());
        if (db.empty() || mark <= db_seq)
            return resilite::detail::format(
                "the database is older than its archive (it holds its records up to txn {}, the "
                "archive goes on to txn {}) with no high-water mark saying they committed: taken for "
                "a copy put back on purpose",
                db_seq, archive_end);
        behind_ = behind_text(db_seq, archive_end, mark);
        throw library_failure(error_class::corrupt, "archive",
                              resilite::detail::format(
                                  "{}; a heal, or `resilite archive replay {} {}`, brings them back; to keep "
                                  "this older state on purpose, put it back with `resilite restore`, or "
                                  "move the archive directory aside",
                                  behind_, dir_.string(), db.string()),
                              db.string());
    }

    // Sets the record aside ("<segment>.cancelled-<time>", kept) and cuts it off. False when it
    // is not the last thing in its segment, or cannot be set aside.
    bool cancel_uncommitted(const tail_info& t, std::int64_t db_seq) {
        const auto path = dir_ / t.segment;
        const auto file = read_file(path);
        const std::string_view text = file;
        const auto contents = read_segment(text, t.segment);
        // One transaction's append: records db_seq+1 .. t.seq, the last ones of one segment,
        // numbered without a gap and stamped with one time (an append stamps all its records
        // alike; a transaction with DDL writes several). Anything else is left alone.
        const auto first = std::find_if(contents.records.begin(), contents.records.end(),
                                        [&](const record& x) { return x.header.seq == db_seq + 1; });
        if (first == contents.records.end() || contents.records.back().end != text.size() ||
            contents.records.back().header.seq != t.seq)
            return false;
        for (auto r = first; r != contents.records.end(); ++r) {
            if (r->header.seq != db_seq + 1 + (r - first) || r->header.utc != first->header.utc) return false;
        }
        const auto body_at = static_cast<std::size_t>(first->body.data() - text.data());
        const auto start = text.rfind(resilite::detail::format("{}{} ", header_prefix, db_seq + 1), body_at);
        if (start == std::string::npos) return false;
        std::error_code ec;
        auto aside = dir_ / resilite::detail::format("{}.cancelled-{}", t.segment,
                                                     utc_text(std::chrono::system_clock::now()));
        for (int n = 2; std::filesystem::exists(std::filesystem::symlink_status(aside, ec)); ++n)
            aside = dir_ / resilite::detail::format("{}.cancelled-{}-{}", t.segment,
                                                    utc_text(std::chrono::system_clock::now()), n);
        if (!set_aside(aside, std::string_view{text}.substr(start))) fail_io("cannot set aside the last record of", path);
        const int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(start)) != 0 || ::fsync(fd) != 0) {
            const int saved = errno;
            if (fd >= 0) ::close(fd);
            errno = saved;
            fail_io("cannot cut the last record of", path);
        }
        ::close(fd);
        notes_.push_back(resilite::detail::format(
            "{}: {} written ahead of a transaction that never committed (a crash before its COMMIT); moved "
            "to "
            "{}, not part of the archive",
            t.segment,
            t.seq == db_seq + 1 ? resilite::detail::format("record {} was", t.seq)
                                : resilite::detail::format("records {} to {} were", db_seq + 1, t.seq),
            aside.filename().string()));
        known_ = false;
        tail_.reset();
        static_cast<void>(refresh_tail());
        return true;
    }

    // Appends the outbox rows not yet archived as records and stores the last number, inside
    // the caller's write transaction. Returns the number of records written.
    std::int64_t drain_in(sqlite::connection& c, std::chrono::system_clock::time_point now, bool settle,
                          bool overlap = false) {
        // (A sync not waited for belongs to a record never acknowledged; a failed one is still
        // a reason for a snapshot.)
        if (syncer_.wait() != 0) owe_snapshot(unsynced_record);
        pending_.reset();
        try {
            return append_outbox(c, now, settle, overlap);
        } catch (...) {
            cancel_pending();  // the caller's transaction is still open: this writer holds the lock
            throw;
        }
    }

    std::int64_t append_outbox(sqlite::connection& c, std::chrono::system_clock::time_point now, bool settle,
                               bool overlap) {
        const auto archive_end = resolve_tail(c);
        // A copy older than its archive found here (the archive could not be read at open): the
        // next write carries the snapshot that the open would have written, or fails as the open
        // would have.
        if (std::exchange(behind_archive_, false)) owe_snapshot(older_copy(std::get<0>(read_state(c)), archive_end));
        auto utc = utc_text(now);
        if (utc < last_utc_) utc = last_utc_;  // never older than the record before
        // Pass 1: the records (ranges of outbox rows, each a snapshot or a run of changes), their
        // lengths and checksums. Their text is kept while it is small; past memory_limit_ (a
        // snapshot of a large database) it is dropped and written by a second pass, row by row.
        struct planned {
            record_header header;
            std::uint32_t crc;
        };
        std::vector<planned> records;
        std::optional<record_checksum> crc;
        record_header cur;
        std::string text, body;
        bool streaming = false;
        std::int64_t rows = 0, last_row = last_id_;
        const auto close_record = [&] {
            if (!crc) return;
            records.push_back({cur, crc->value()});
            if (!streaming) append_record(text, cur, body);
            body.clear();
            crc.reset();
        };
        for_each_outbox_row(
            c, templates_, last_id_, std::numeric_limits<std::int64_t>::max(),
            [&](std::int64_t id, std::string_view stmt) {
                ++rows;
                last_row = id;
                if (stmt == baseline_begin) close_record();
                if (!crc) {
                    const auto kind = stmt == baseline_begin ? record_kind::baseline : record_kind::changes;
                    cur = {last_seq_ + static_cast<std::int64_t>(records.size()) + 1, utc, kind, id, id, 0};
                    crc.emplace(cur.seq, utc, kind);
                }
                cur.last_id = id;
                if (stmt == baseline_begin) return;
                if (stmt == baseline_end) {
                    close_record();
                    return;
                }
                crc->add(stmt);
                crc->add("\n");
                cur.bytes += stmt.size() + 1;
                if (streaming) return;
                body += stmt;
                body += '\n';
                if (text.size() + body.size() > memory_limit_) {
                    streaming = true;
                    std::string{}.swap(text);
                    std::string{}.swap(body);
                }
            });
        close_record();
        if (!records.empty()) {
            // A tail segment just seen means the directory is there: no stat on every commit.
            const bool have_dir = known_ && !tail_segment_.empty();
            if (std::error_code dir_ec; !have_dir && !std::filesystem::is_directory(dir_, dir_ec)) {
                std::filesystem::create_directories(dir_, dir_ec);
                if (dir_ec) {
                    throw library_failure(
                        error_class::archive, "archive",
                        resilite::detail::format("cannot create the archive directory {}: {}", dir_.string(),
                                                 dir_ec.message()),
                        dir_.string());
                }
                static_cast<void>(fsync_path(dir_.parent_path(), true));
            }
            // Never a segment named before the one the archive ends in (a segment named for a
            // later month: a clock that ran ahead, a file renamed): the reader finds the end in
            // the last segment by name, and a record appended to an earlier one would be unseen.
            auto segment = segment_name(utc);
            if (!tail_segment_.empty() && segment < tail_segment_) segment = tail_segment_;
            if (!tail_segment_.empty() && segment != tail_segment_) {
                // Tells other writers, who only stat the segment they know, that a newer one starts.
                segment_appender old{dir_ / tail_segment_, {}};
                old.buffer() = resilite::detail::format("-- continued in {}\n", segment);
                old.finish();
            }
            // The segment this writer appended to last, still the same file at the size just
            // seen under the lock: appended through the descriptor kept from then.
            const auto path = dir_ / segment;
            const int kept = known_ && segment == tail_segment_ && tail_size_ > 0 ? kept_.for_file(path, tail_stat_) : -1;
            if (kept < 0) kept_.reset();
            std::optional<segment_appender> opened;
            if (kept >= 0)
                opened.emplace(path, kept, static_cast<off_t>(tail_size_));
            else
                opened.emplace(path, segment_preamble(database_, segment));
            auto& out = *opened;
            bool synced = true;
            // Overlapped only through the kept descriptor, which stays open until the sync is
            // waited for (a descriptor opened now could be closed by keep() below). The test hook
            // is asked before anything can be left half done by it.
            const bool overlapped = overlap && kept >= 0;
            const bool fault = overlapped && sync_fault_ && sync_fault_();
            try {
                if (!streaming) {
                    out.buffer() += text;
                } else {  // pass 2: the same rows again (the write lock keeps them as they were)
                    constexpr std::size_t chunk = 1 << 20;
                    for (const auto& r : records) {
                        append_record_head(out.buffer(), r.header);
                        for_each_outbox_row(c, templates_, r.header.first_id - 1, r.header.last_id,
                                            [&](std::int64_t, std::string_view stmt) {
                                                if (stmt == baseline_begin || stmt == baseline_end) return;
                                                out.buffer() += stmt;
                                                out.buffer() += '\n';
                                                out.flush(chunk);
                                            });
                        append_record_tail(out.buffer(), r.header.seq, r.crc);
                    }
                }
                synced = out.finish(!overlapped);
            } catch (...) {
                // What was written is taken back (through the descriptor, before it is closed),
                // and a descriptor that failed is not used again.
                opened.reset();
                kept_.reset();
                throw;
            }
            if (kept < 0) {
                const int fd = out.release();  // (released before the call: nothing to leak)
                kept_.keep(path, fd);
            }
            // Overlapped: the sync runs while the caller COMMITs (the kept descriptor stays open
            // until committed() or cancel_pending() has waited for it).
            if (!synced) syncer_.start(kept, fault);
            tail_segment_ = segment;
            tail_size_ = static_cast<std::uintmax_t>(out.end());
            known_ = kept_.describe(tail_stat_);  // the file appended to: no stat needed
            last_seq_ = records.back().header.seq;
            last_utc_ = utc;
            pending_ = appended{dir_ / segment, static_cast<std::uintmax_t>(out.start()), tail_size_, last_seq_,
                                records.back().crc, out.created(), !synced};
        }
        const auto [stored, since_stored] = stored_state(c);
        // The bytes since the newest baseline: another writer's records are in what it stored.
        auto since = since_stored;
        for (const auto& r : records)  // (a baseline's own bytes do not count: else a large one calls the next)
            since = r.header.kind == record_kind::baseline ? 0 : since + static_cast<std::int64_t>(r.header.bytes);
        const bool moved = last_row != last_id_ || stored != last_seq_ || since != since_stored;
        last_id_ = last_row;
        unsettled_ += rows;
        since_baseline_ = since;
        // The number goes into the database with the transaction it describes: committed
        // together, or not at all.
        const auto changes_before = c.total_changes();
        if (moved)
            c.exec("UPDATE resilite_archive_state SET last_seq = ?, last_id = ?, since_baseline = ?", last_seq_,
                   last_id_, since);
        if ((settle && unsettled_ > 0) || unsettled_ >= settle_rows_) {
            keep_outbox_numbering(c);
            unsettled_ = 0;
        }
        bookkeeping_ += c.total_changes() - changes_before;
        return static_cast<std::int64_t>(records.size());
    }

    // The number and the bytes since the newest baseline the database stores.
    [[nodiscard]] static std::tuple<std::int64_t, std::int64_t> stored_state(sqlite::connection& c) {
        return c.query_one<std::int64_t, std::int64_t>("SELECT last_seq, since_baseline FROM resilite_archive_state")
            .value_or(std::tuple<std::int64_t, std::int64_t>{0, 0});
    }

    // Learns where the archive ends, unless nothing changed since this writer last looked. A torn last record
    // (a crash while appending; its rows are still in the outbox) is moved aside to "<segment>.torn-<time>"
    // and cut off.
    std::optional<std::string> refresh_tail() {
        std::error_code ec;
        // The common case, one stat: the segment this writer last saw has not grown. A drain that
        // starts a newer segment first appends a note to the old one (see drain), so an unchanged
        // tail also means no newer segment: no directory listing on every commit.
        if (known_ && !tail_segment_.empty()) {
            struct ::stat st {};
            if (::lstat((dir_ / tail_segment_).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                static_cast<std::uintmax_t>(st.st_size) == tail_size_ && st.st_ino == tail_stat_.st_ino &&
                st.st_dev == tail_stat_.st_dev)
                return std::nullopt;
        }
        const auto segments = list_segments(dir_);
        if (segments.empty()) {
            known_ = true;
            tail_segment_.clear();
            tail_size_ = 0;
            return std::nullopt;
        }
        std::optional<std::string> note;
        const auto adopt = [&](tail_info t, const std::string& segment) {
            t.segment = segment;
            tail_ = t;
            last_seq_ = std::max(last_seq_, t.seq);
            if (known_) last_id_ = std::max(last_id_, t.last_id);  // another process drained
            last_utc_ = std::max(last_utc_, t.utc);
        };
        for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
            const auto path = dir_ / *it;
            std::error_code size_ec;
            const auto bytes = std::filesystem::file_size(path, size_ec);
            if (!size_ec) {
                if (const auto t = read_last_record(path, bytes, *it)) {
                    adopt(*t, *it);
                    break;
                }
            }
            const auto file = read_file(path);
            const std::string_view text = file;
            const auto contents = read_segment(text, *it);
            if (contents.unknown_format) {
                format_refused_ = true;
                throw library_failure(error_class::archive, "archive",
                                      resilite::detail::format(
                                          "{} was written in another archive format version; nothing is "
                                          "appended to it (upgrade resilite, or archive to a new directory)",
                                          *it),
                                      path.string());
            }
            if (contents.torn_tail && it == segments.rbegin()) {
                // The torn bytes are kept: cut only once they are safely in a file of their own.
                auto aside = dir_ / resilite::detail::format("{}.torn-{}", *it,
                                                             utc_text(std::chrono::system_clock::now()));
                for (int n = 2; std::filesystem::exists(std::filesystem::symlink_status(aside, ec)); ++n)
                    aside = dir_ / resilite::detail::format("{}.torn-{}-{}", *it,
                                                            utc_text(std::chrono::system_clock::now()), n);
                if (!set_aside(aside, std::string_view{text}.substr(contents.good_end)))
                    fail_io("cannot set aside the torn tail of", path);
                const int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(contents.good_end)) != 0 || ::fsync(fd) != 0) {
                    const int saved = errno;
                    if (fd >= 0) ::close(fd);
                    errno = saved;
                    fail_io("cannot cut the torn tail of", path);
                }
                ::close(fd);
                note = resilite::detail::format(
                    "{}: an incomplete last record (a crash while appending) was moved to {}; "
                    "its changes are still in the outbox and were archived again",
                    *it, aside.filename().string());
            }
            if (!contents.records.empty()) {
                const auto best = std::max_element(
                    contents.records.begin(), contents.records.end(),
                    [](const record& a, const record& b) { return a.header.seq < b.header.seq; });
                adopt(tail_info{best->header.seq, best->header.last_id, best->header.first_id, best->crc,
                                best->header.utc, {}},
                      *it);
                break;
            }
        }
        tail_segment_ = segments.back();
        known_ = ::lstat((dir_ / tail_segment_).c_str(), &tail_stat_) == 0 && S_ISREG(tail_stat_.st_mode);
        tail_size_ = known_ ? static_cast<std::uintmax_t>(tail_stat_.st_size) : 0;
        return note;
    }

    std::filesystem::path dir_;
    std::string database_;
    std::vector<capture_table> declared_;
    int settle_rows_;
    high_water high_water_;
    std::optional<appended> pending_;  // written ahead, its COMMIT not yet seen
    std::vector<std::string> notes_;
    std::int64_t schema_version_ = -1;
    std::int64_t bookkeeping_ = 0;
    bool known_ = false;  // tail_segment_/tail_size_ describe the archive's end
    bool format_refused_ = false;
    std::string tail_segment_;
    std::uintmax_t tail_size_ = 0;
    struct ::stat tail_stat_ {};  // the tail segment's device and inode, as last seen
    kept_segment kept_;           // the segment last appended to, open
    std::optional<tail_info> tail_;
    std::int64_t last_seq_ = 0, last_id_ = 0;
    std::string last_utc_;
    std::int64_t unsettled_ = 0;  // archived rows still in the outbox
    std::int64_t since_baseline_ = 0;  // since_baseline(), as last stored
    std::size_t memory_limit_ = 64u << 20;
    template_cache templates_;
    bool behind_archive_ = false;      // resolve_tail: the database is older than its archive (a copy)
    std::string behind_;               // refuse_unless_restored: what it refused
    bool snapshot_due_ = false;        // the next write carries a snapshot (owe_snapshot), for snapshot_reason_
    std::string snapshot_reason_;
    bool snapshot_in_flight_ = false;  // this transaction carries that snapshot
    std::function<bool()> sync_fault_;
    background_sync syncer_;  // last: its thread stops before the descriptors it syncs are closed
};

}  // namespace resilite::detail::archive
