#pragma once
// The schema step of the open flow: a brand-new database gets the declared schema and the latest
// version in one transaction; an existing one gets its pending migrations (each in its own
// transaction, after a backup when backups are on), then schema sync. A database newer than the
// code is refused or opened read-only, as the migrations policy says.

#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/connect.hpp>
#include <resilite/flow/detail/context.hpp>
#include <resilite/flow/detail/operation_flow.hpp>
#include <resilite/policy/migrations.hpp>
#include <resilite/schema/detail/schema_sync.hpp>
#include <resilite/schema/schema_report.hpp>

#include <fmt/format.h>

#include <optional>

namespace resilite::detail {

template <class R>
class schema_setup {
    using schema_type = typename R::schema;
    using migrations_type = typename R::migrations;

public:
    schema_setup(context<R>& ctx, operation_flow<R>& flow) : ctx_(ctx), flow_(flow) {}

    // What schema sync did at open (empty when no schema is declared).
    [[nodiscard]] const schema_report& report() const noexcept { return report_; }
    // Migrations ran at this open (the archive then starts from a full snapshot).
    [[nodiscard]] bool migrated() const noexcept { return migrated_; }

    // `owner` is the Database: migrations run in its transaction type. `backup_first` takes the
    // backup that is the way back from a failed migration.
    template <class Owner, class Backup>
    void prepare(Owner& owner, Backup&& backup_first) {
        constexpr int latest = migrations_type::latest;
        if constexpr (schema_type::empty && latest == 0) return;
        int version = 0;
        bool brand_new = false;
        ctx_.with_lock([&] {
            auto& c = ctx_.connection();
            version = c.template query_one<int>("PRAGMA user_version").value_or(0);
            brand_new = version == 0 && c.template query_one<int>(
                                            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' "
                                            "ESCAPE '\\' AND name NOT LIKE 'resilite\\_%' ESCAPE '\\'") == 0;
        });
        // A deploy rollback: code older than the database (also code without migrations<>, whose
        // latest version is 0) must not write into a schema it does not know.
        if (version > latest) {
            if constexpr (migrations_type::on_newer == newer_database::refuse) {
                throw library_failure(
                    error_class::schema, "open",
                    resilite::detail::format(
                        "the database is at version {}, newer than this application's {}{}; it was not "
                        "opened (newer_database::refuse) and not changed",
                        version, latest, latest == 0 ? " (it declares no migrations)" : ""),
                    ctx_.path.string());
            } else {
                reopen_read_only(ctx_);
                report_.mode = schema_type::mode;
                report_.drifts.push_back(
                    {schema_report::severity::warning,
                     {},
                     {},
                     resilite::detail::format("database version {} is newer than the application's "
                                              "{}: opened read-only, schema not synced",
                                              version, latest)});
                return;
            }
        }
        if (brand_new && !schema_type::empty) {
            sync(latest);
            return;
        }
        if (version < latest) migrate(owner, version, backup_first);
        if constexpr (!schema_type::empty) sync(std::nullopt);
    }

private:
    void sync(std::optional<int> stamp_version) {
        const auto start = ctx_.now();
        ctx_.with_lock([&] {
            report_ = sync_schema(ctx_.connection(), schema_type::definition(), schema_type::mode, stamp_version);
        });
        const auto status = report_.status();
        std::int64_t applied = 0;
        for (const auto& a : report_.actions)
            applied += a.applied ? 1 : 0;
        ctx_.emit_since("schema_sync", start,
                        status == schema_status::ok
                            ? outcome::ok
                            : (status == schema_status::warnings ? outcome::warning : outcome::failed),
                        applied, status == schema_status::critical ? error_class::schema : error_class::none,
                        status == schema_status::ok && applied == 0 ? std::string{} : report_.to_text());
        // The database cannot be brought to the declared schema (a declaration SQLite rejects, or
        // critical drift): open fails rather than hand out a database whose first insert fails.
        // Warnings never fail; report_only only reports.
        if (status == schema_status::critical && schema_type::mode != schema_mode::report_only) {
            throw library_failure(
                error_class::schema, "open",
                resilite::detail::format("the database does not match the declared schema and could not be "
                                         "brought to it; nothing was changed\n{}",
                                         report_.to_text()),
                ctx_.path.string());
        }
    }

    template <class Owner, class Backup>
    void migrate(Owner& owner, int from, Backup& backup_first) {
        using transaction_type = typename Owner::transaction_type;
        if (ctx_.before_migrations) ctx_.before_migrations(from, migrations_type::latest);
        if (ctx_.config.backup.enabled && !ctx_.read_only) backup_first();  // a way back
        // A table rebuilt under enforced foreign keys (create, copy, DROP the old one, rename)
        // would cascade the DROP into its child tables: migrations run with enforcement off, as
        // SQLite's docs ask, and each one checks the keys before it commits. It is turned back
        // on afterwards, also when a migration fails.
        const bool enforced = ctx_.with_lock([&] {
            return ctx_.connection().template query_one<int>("PRAGMA foreign_keys").value_or(0) != 0;
        });
        if (enforced) ctx_.with_lock([&] { ctx_.connection().exec_script("PRAGMA foreign_keys = OFF"); });
        struct enforce_again {
            context<R>& ctx;
            bool on;
            ~enforce_again() {
                if (!on) return;
                try {
                    ctx.with_lock([&] { ctx.connection().exec_script("PRAGMA foreign_keys = ON"); });
                } catch (...) {  // the connection is gone; a reconnect enables it again
                }
            }
        } restore{ctx_, enforced};
        migrations_type::for_each([&](auto id) {
            using M = typename decltype(id)::type;
            if (M::version <= from) return;
            const auto start = ctx_.now();
            const auto label =
                migration_name<M>().empty()
                    ? resilite::detail::format("migration {}", M::version)
                    : resilite::detail::format("migration {} ({})", M::version, migration_name<M>());
            const auto note = resilite::detail::format(
                "{} failed and was rolled back; the database stays at version {}", label, M::version - 1);
            bool applied_elsewhere = false;
            try {
                flow_.template transaction<transaction_type>(
                    owner,
                    [&](transaction_type& tx) {
                        // The version read at open may be stale: another process opening the
                        // same database may have migrated it since. Read again under the write
                        // lock this transaction holds (immediate), so a migration runs once.
                        if (tx.template query_one<int>("PRAGMA user_version").value_or(0) >= M::version) {
                            applied_elsewhere = true;
                            return;
                        }
                        // SQLite refuses ALTER TABLE ... DROP COLUMN while a trigger names the
                        // column: the archive's capture triggers make way. Their absence loses
                        // nothing: the archive records a migration's outcome as a full snapshot
                        // when it starts, and installs them again. The snapshot is owed in the
                        // archived schema too (an object no database has: the schema "changed"),
                        // so an open cut short before the archive starts writes it next time.
                        const auto triggers = tx.template query<std::string>(
                            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                            "'resilite\\_archive\\_%' ESCAPE '\\'");
                        for (const auto& trigger : triggers)
                            tx.exec_script(resilite::detail::format("DROP TRIGGER {}", quote_id(trigger)));
                        if (!triggers.empty())
                            tx.exec("INSERT OR IGNORE INTO resilite_archive_schema(type, name, tbl_name, sql) "
                                    "VALUES('snapshot owed', 'migrations', '', '')");
                        if constexpr (sql_migration<M>) {
                            tx.exec_script(M::sql);
                        } else {
                            static_assert(requires { M::up(tx); },
                                          "resilite::migrations: a migration needs `static constexpr "
                                          "std::string_view sql` or `static void up(auto& tx)`");
                            M::up(tx);
                        }
                        tx.exec(resilite::detail::format("PRAGMA user_version = {}", M::version));
                        if (enforced) {
                            const auto orphans =
                                tx.template query_one<std::int64_t>(
                                      "SELECT count(*) FROM pragma_foreign_key_check")
                                    .value_or(0);
                            if (orphans > 0)
                                throw library_failure(
                                    error_class::migration, "migrate",
                                    resilite::detail::format(
                                        "it would leave {} row{} whose foreign key references no parent "
                                        "row (PRAGMA foreign_key_check)",
                                        orphans, orphans == 1 ? "" : "s"),
                                    ctx_.path.string());
                        }
                    },
                    transaction_mode::immediate);
            } catch (const error& e) {
                technical_detail d = e.technical();
                d.operation = "migrate";
                d.note = d.note.empty() ? note : resilite::detail::format("{}: {}", note, d.note);
                error wrapped{error_class::migration, std::move(d), e};
                ctx_.emit_since("migrate", start, outcome::failed, 0, wrapped.klass(), wrapped.what());
                throw wrapped;
            } catch (const std::exception& e) {
                auto wrapped =
                    library_failure(error_class::migration, "migrate",
                                    resilite::detail::format("{}: {}", note, e.what()), ctx_.path.string());
                ctx_.emit_since("migrate", start, outcome::failed, 0, wrapped.klass(), wrapped.what());
                throw wrapped;
            }
            if (applied_elsewhere) {
                ctx_.emit_since("migrate", start, outcome::ok, 0, error_class::none,
                                resilite::detail::format("{}: already applied by another connection", label));
                return;
            }
            migrated_ = true;
            ctx_.emit_since("migrate", start, outcome::ok, 0, error_class::none, label);
        });
    }

    context<R>& ctx_;
    operation_flow<R>& flow_;
    schema_report report_{};
    bool migrated_ = false;
};

}  // namespace resilite::detail
