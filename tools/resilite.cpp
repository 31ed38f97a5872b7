// resilite: the command for operators. Checks, backs up, restores, drills and heals a database,
// verifies, rebuilds and replays a text archive, prints health and metrics, without writing any
// C++ against the application's policies: the application's settings file (--settings, or
// RESILITE_SETTINGS_FILE) and RESILITE_* variables say where its backups, archive and
// quarantine are, as they do for the application.
//
// Conventions (git- and sqlite3-like): --help on every subcommand; --json prints one JSON object
// on stdout; --quiet prints nothing but errors; messages are plain lines on stderr, never a stack
// trace. Exit codes: 0 ok, 1 critical (or the command could not do what was asked), 2 warnings.
#include <resilite/archive/detail/archive_state.hpp>
#include <resilite/archive/detail/behind_archive.hpp>
#include <resilite/archive/detail/high_water.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/archive/rebuild.hpp>
#include <resilite/archive/repair_archive.hpp>
#include <resilite/archive/replay_archive.hpp>
#include <resilite/detail/link_path.hpp>
#include <resilite/backup/detail/backup_files.hpp>
#include <resilite/backup/restore.hpp>
#include <resilite/database.hpp>
#include <resilite/flow/detail/settings_source.hpp>
#include <resilite/heal/detail/heal_files.hpp>
#include <resilite/heal/reset_healing.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/monitor/to_openmetrics.hpp>
#include <resilite/sqlite/detail/identity.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/version.hpp>

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

enum exit_code : int { ok = 0, critical = 1, warnings = 2 };

struct output {
    bool json = false;
    bool quiet = false;

    // The result: JSON on stdout with --json, else the text unless --quiet.
    void print(const nlohmann::json& j, const std::string& text) const {
        if (json) {
            // Bytes quoted from a damaged file may not be UTF-8: replaced, never a failure.
            std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else if (!quiet) {
            std::fputs(text.c_str(), stdout);
        }
    }
};

// A progress bar on stderr for the long subcommands, only when stderr is a terminal and not
// --quiet: one line redrawn in place, ended when its step ends or another begins.
class progress_bar {
public:
    void enable(bool on) { on_ = on && ::isatty(STDERR_FILENO) == 1; }
    [[nodiscard]] resilite::progress_fn fn() {
        if (!on_) return {};
        return [this](const resilite::progress& p) { draw(p); };
    }
    // Before any other line on stderr.
    void end_line() {
        if (!open_) return;
        std::fputc('\n', stderr);
        open_ = false;
    }

private:
    void draw(const resilite::progress& p) {
        auto key = fmt::format("{}: {}", p.operation, p.step);
        if (key != key_) end_line();
        key_ = std::move(key);
        constexpr std::uint64_t width = 30;
        std::string line;
        if (p.total > 0) {
            const auto pct = std::min<std::uint64_t>(100, p.done * 100 / p.total);
            const auto fill = static_cast<std::size_t>(pct * width / 100);
            line = fmt::format("{} [{}{}] {:3}%", key_, std::string(fill, '#'), std::string(width - fill, '-'), pct);
            // (SQLite's steps have no total in advance: their count says nothing at the end)
            if (p.unit != "%" && p.unit != "steps") line += fmt::format(" ({}/{} {})", p.done, p.total, p.unit);
        } else {
            line = fmt::format("{} ... {} {}", key_, p.done, p.unit);
        }
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
        std::fflush(stderr);
        open_ = true;
        if (p.finished()) end_line();
    }

    bool on_ = false, open_ = false;
    std::string key_;
};
progress_bar bar;

// Ctrl-C during a rebuild or a replay stops it cleanly (nothing written); a second one kills.
volatile std::sig_atomic_t interrupted = 0;
void on_interrupt(int) { interrupted = 1; }
std::function<bool()> stop_on_interrupt() {
    struct ::sigaction sa {};
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    return [] { return interrupted != 0; };
}

// what(), then the lines of its report when it has one (what a heal tried, how to recover by
// hand): the command is the only place an operator sees them.
void print_error(const resilite::error& e) {
    std::string line = e.what();
    const auto& report = e.technical().report;
    constexpr std::string_view pointer = " in technical().report)";
    if (const auto at = line.find(pointer); at != std::string::npos && !report.empty())
        line.replace(at, pointer.size(), " below)");
    std::fprintf(stderr, "resilite: %s\n", line.c_str());
    if (report.empty()) return;
    for (std::size_t pos = 0; pos < report.size();) {
        const auto nl = report.find('\n', pos);
        const auto end = nl == std::string::npos ? report.size() : nl;
        std::fprintf(stderr, "  %.*s\n", static_cast<int>(end - pos), report.data() + pos);
        pos = end + 1;
    }
}

// One plain line on stderr; the command then exits with `critical`.
struct refusal {
    std::string message;
};

void require_database(const fs::path& db) {
    std::error_code ec;
    if (!fs::exists(db, ec)) throw refusal{fmt::format("no database at {}", db.string())};
    if (!fs::is_regular_file(db, ec)) throw refusal{fmt::format("{} is not a file", db.string())};
}

// A database, or where one was: gone, with the sidecar saying resilite had initialised it (health
// and metrics report it missing, with the heals and quarantines the files still show).
void require_database_or_its_sidecar(const fs::path& db) {
    std::error_code ec;
    if (!fs::exists(db, ec) && !fs::is_symlink(db, ec) && resilite::detail::read_marker(db).exists) return;
    require_database(db);
}

using resilite::detail::link_not_followed;

void require_directory(const fs::path& dir) {
    std::error_code ec;
    if (resilite::detail::is_link_path(dir)) throw refusal{link_not_followed(dir)};
    if (!fs::is_directory(dir, ec)) throw refusal{fmt::format("no archive directory at {}", dir.string())};
}

// Why the file at the path is not the database resilite keeps there (another database copied over
// it, or one without resilite's identity where the sidecar names one), in the words open and
// `backup` refuse it with; nothing when it is, or when the file cannot be read for it (the check
// says what it can).
std::optional<std::string> not_this_database(const fs::path& db) {
    try {
        const auto [target, flags] = resilite::detail::read_target(db);  // (a read-only volume)
        resilite::sqlite::connection c{target, flags};
        auto found = resilite::detail::check_identity(db, c);
        if (!found.problem.empty()) return std::move(found.problem);
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

// A check that found the file sound, unless it is another database: that is no database to use
// (the application's open refuses it), so the check reports it as damage.
resilite::health_report with_identity(const fs::path& db, resilite::health_report r) {
    if (r.result != resilite::health_report::finding::ok) return r;
    if (auto problem = not_this_database(db))
        r = {resilite::health_report::finding::corrupt, r.level, std::move(*problem)};
    return r;
}


// A check that could not read the file on a volume mounted read-only (its WAL or journal holds
// changes SQLite cannot apply there): not checked, which is no finding of damage.
bool not_checked_here(const fs::path& db, const std::optional<resilite::health_report>& r) {
    return r && r->result == resilite::health_report::finding::io_error && resilite::detail::on_read_only_volume(db);
}

// What the command opens when it needs the library's flows (backup, drill, heal): no schema of
// its own (it declares nothing, so it changes no table) and no archive writer (the application
// archives; a heal and a drill read the archive directory of the settings, a backup records the
// archive record its copy holds); healing only when asked to heal; the application's settings
// otherwise. (A batched archive's window is the application's to name: this Database does not
// know the archive is batched.)
using tool_db = resilite::Database<resilite::backup<>, resilite::healing<>, resilite::null_observer>;

// Where the application keeps its backups, archive and quarantine: its settings file and the
// environment, read and checked as the library reads and checks them (a bad value is refused the
// same way), except what only the application's policies decide (synchronous=NORMAL needs its
// relaxed_durability<>, archive.enabled its archive<>): the command cannot know them.
struct places {
    resilite::settings settings;
    fs::path backups, archive, quarantine;
    fs::path settings_file;
};

places find_places(const fs::path& db, const fs::path& settings_file, const fs::path& backup_dir = {}) {
    places p;
    p.settings = tool_db::default_settings();  // (the defaults of the policies the application most likely has)
    p.settings_file = settings_file;
    if (const char* named = std::getenv(std::string{resilite::detail::settings_file_variable}.c_str());
        named != nullptr && *named != '\0' && p.settings_file.empty())  // (--settings wins)
        p.settings_file = named;
    if (!p.settings_file.empty()) {
        std::string why;
        const auto text = resilite::detail::read_text_file(p.settings_file, why);
        if (!text) throw refusal{fmt::format("cannot read the settings file {}: {}", p.settings_file.string(), why)};
        resilite::detail::settings_overlay file;
        if (auto r = resilite::detail::parse_settings_json(*text, file))
            throw refusal{fmt::format("the settings file {}: {}", p.settings_file.string(), *r)};
        file.apply_to(p.settings);
    }
    const auto env = resilite::detail::read_environment("resilite", db.string());
    env.apply_to(p.settings);
    auto problem = resilite::detail::field_range_problem(p.settings);
    if (!problem) problem = p.settings.problem();
    if (problem) {
        std::string from = p.settings_file.empty() ? std::string{} : "the settings file " + p.settings_file.string();
        if (!env.empty()) from += (from.empty() ? "" : " and ") + std::string{"the environment"};
        throw refusal{fmt::format("the settings{}{}: {}", from.empty() ? "" : " from ", from, *problem)};
    }
    // Read and checked here: the Database this command opens is given them (tool_options), and
    // does not read them again against its own policies, which are not the application's.
    for (const auto* f : env.fields)
        ::unsetenv(f->variable().c_str());
    ::unsetenv(std::string{resilite::detail::settings_file_variable}.c_str());
    if (!backup_dir.empty()) p.settings.backup.directory = backup_dir.string();
    p.backups = resilite::detail::backup_directory(db, p.settings.backup);
    p.archive = resilite::detail::archive::archive_directory(db, p.settings.archive.directory);
    p.quarantine = resilite::detail::quarantine_root(db, p.settings.healing);
    return p;
}


tool_db::options tool_options(const places& p, bool heal) {
    tool_db::options o;
    // The application's settings, but for what this Database's policies decide: it writes with
    // synchronous=FULL and writes no archive (the application archives).
    auto s = p.settings;
    s.sync = tool_db::default_settings().sync;
    s.archive = tool_db::default_settings().archive;
    s.backup.enabled = true;
    // Retention is the application's (its policy may keep more than the defaults): the command
    // never removes a backup.
    s.backup.keep_last = 1'000'000;
    s.backup.keep_hourly = s.backup.keep_daily = s.backup.keep_weekly = 0;
    s.archive.directory = p.archive.string();  // (the offsite settings: a backup goes off the machine, a heal fetches back)
    s.healing.enabled = heal;
    o.settings = s;
    o.on_progress = bar.fn();
    return o;
}

// Another process has the database open: the sidecar lists the processes that opened it
// (healing<> only), and a connection in WAL mode holds a read lock on byte 128 of the -shm
// file while it is open (SQLite's "DMS" lock), which F_GETLK names whatever the policies.
// (This process holds no connection to it here: closing the descriptor drops no lock of ours.)
[[nodiscard]] std::vector<long> open_elsewhere(const fs::path& db) {
    auto opened = resilite::detail::read_marker(db).opened;
    std::erase_if(opened, [](long pid) { return resilite::detail::process_gone(pid) || pid == ::getpid(); });
    if (const int fd = ::open((db.string() + "-shm").c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        struct ::flock probe {};
        probe.l_type = F_WRLCK;
        probe.l_whence = SEEK_SET;
        probe.l_start = 128;
        probe.l_len = 1;
        // (A holder in another PID namespace, a container sharing the volume, reads as pid 0.)
        if (::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) {
            const long pid = probe.l_pid > 0 ? long{probe.l_pid} : 0;
            if (pid != ::getpid() && std::find(opened.begin(), opened.end(), pid) == opened.end()) opened.push_back(pid);
        }
        ::close(fd);
    }
    return opened;
}

// "process 12", "processes 12, 34"; 0 is one this process cannot see (another PID namespace).
std::string processes_text(const std::vector<long>& pids) {
    std::vector<std::string> names;
    for (const long pid : pids)
        names.push_back(pid > 0 ? std::to_string(pid) : "(one in another PID namespace)");
    return fmt::format("{} {}", pids.size() == 1 ? "process" : "processes", fmt::join(names, ", "));
}

std::string utc_text(std::chrono::system_clock::time_point t) {
    return resilite::detail::utc_format(t, "%Y-%m-%dT%H:%M:%S") + "Z";
}

// The figures the files show, without the application's process: check, pages, WAL, backups,
// archive, sidecar, audit fallback.
resilite::health_snapshot file_health(const fs::path& db, const places& p) {
    resilite::health_snapshot s;
    const auto check = with_identity(db, resilite::check_health(db, resilite::check_level::quick));
    s.last_check = check;
    s.last_check_time = std::chrono::system_clock::now();
    s.healthy = check.ok();
    if (!check.ok()) s.damage = fmt::format("{}: {}", resilite::to_string(check.result), check.detail);
    s.wal_bytes = resilite::sqlite::file_set{db}.wal_size();
    if (check.ok()) {
        try {
            const auto [target, flags] = resilite::detail::read_target(db);  // (a read-only volume)
            resilite::sqlite::connection c{target, flags};
            s.page_count = c.query_one<std::int64_t>("PRAGMA page_count").value_or(0);
            s.freelist_count = c.query_one<std::int64_t>("PRAGMA freelist_count").value_or(0);
            const bool archived =
                c.query_one<std::int64_t>(
                     "SELECT count(*) FROM sqlite_master WHERE name IN ('resilite_archive_state', "
                     "'resilite_archive_outbox')")
                    .value_or(0) == 2;
            // One statement, one snapshot: read apart, a commit in between (its outbox rows in,
            // and archived: last_id moved past them) was counted as waiting for the archive.
            if (archived) {
                if (const auto st = c.query_one<std::int64_t, std::int64_t>(
                        "SELECT last_seq, (SELECT count(*) FROM resilite_archive_outbox WHERE id > s.last_id) "
                        "FROM resilite_archive_state s")) {
                    s.archive_seq = std::get<0>(*st);
                    s.archive_pending = std::get<1>(*st);
                }
            }
        } catch (const std::exception&) {  // busy or unreadable: the check said what it could
        }
    }
    if (const auto newest = resilite::detail::newest_listed_backup(db, p.backups)) {
        s.last_backup_time = newest->taken;
        s.last_backup_age =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - newest->taken);
    }
    const auto m = resilite::detail::read_marker(db);
    s.heals = m.heal_epoch;
    s.heal_attempts = m.heal_attempts;
    std::ifstream fallback(db.string() + ".audit-fallback.jsonl");
    for (std::string line; std::getline(fallback, line);)
        if (!line.empty()) ++s.audit_fallback_entries;
    return s;
}

void require_existing_database(const fs::path& db) {
    require_database(db);
    if (resilite::check_health(db, resilite::check_level::header).result ==
        resilite::health_report::finding::not_a_database)
        throw refusal{fmt::format("{} is not an SQLite database", db.string())};
}

int health(const output& out, const fs::path& db, const places& p) {
    require_database_or_its_sidecar(db);
    const auto s = file_health(db, p);
    const auto quarantines = resilite::detail::list_quarantines(db, p.quarantine);
    auto j = nlohmann::json::parse(s.to_json());
    // Only what the files show: a running application's counters are its own (db.health()).
    for (const auto* key : {"operations", "failures", "failures_by_class", "retries", "latency_samples", "latency_ns",
                            "latency_histogram", "database_busy", "available", "unavailable_reason", "unavailable_since",
                            "unavailable_detail", "queue_depth", "queue_rejected", "last_drill_time", "last_drill_ok",
                            "offsite_enabled", "offsite_pending", "offsite_lag_s", "last_offsite_time", "offsite_error"})
        j.erase(key);
    j["database"] = db.string();
    j["backups_directory"] = p.backups.string();
    j["backups"] = resilite::detail::list_backups(db, p.backups).size();
    j["archive_directory"] = p.archive.string();
    j["quarantines"] = quarantines.size();
    const auto open_by = open_elsewhere(db);
    j["open_by_pids"] = open_by;
    const bool not_checked = not_checked_here(db, s.last_check);
    std::string text = fmt::format("{}: {}\n", db.string(),
                                   s.healthy     ? std::string{"sound (quick check)"}
                                   : not_checked ? "NOT CHECKED: " + s.damage
                                                 : "DAMAGED: " + s.damage);
    text += fmt::format("  pages {} ({} free), WAL {} bytes\n", s.page_count, s.freelist_count, s.wal_bytes);
    text += s.last_backup_time ? fmt::format("  newest backup {} ({} s ago), {} in {}\n", utc_text(*s.last_backup_time),
                                             s.last_backup_age->count(), j["backups"].get<std::size_t>(),
                                             p.backups.string())
                               : resilite::detail::is_link_path(p.backups)
                                   ? fmt::format("  backups: {}\n", link_not_followed(p.backups))
                                   : fmt::format("  no backup in {}\n", p.backups.string());
    // (A damaged database is not read: its archive still exists, and may be what heals it.)
    std::error_code ec;
    text += s.archive_seq ? fmt::format("  archive: record {} written, {} changes not yet archived ({})\n",
                                        *s.archive_seq, s.archive_pending, p.archive.string())
            : resilite::detail::is_link_path(p.archive)
                ? fmt::format("  archive: {}\n", link_not_followed(p.archive))
            : fs::is_directory(p.archive, ec)
                ? fmt::format("  archive: {} (the database's own record of it not read)\n", p.archive.string())
                : std::string{"  archive: none\n"};
    text += fmt::format("  heals: {} finished, {} begun since the last that succeeded; {} quarantined copies in {}\n",
                        s.heals, s.heal_attempts, quarantines.size(), p.quarantine.string());
    if (s.audit_fallback_entries > 0)
        text += fmt::format("  {} audit entries wait in the fallback file\n", s.audit_fallback_entries);
    // (0: a process in another PID namespace, a container sharing the volume)
    text += open_by.empty() ? std::string{"  open by no other process\n"}
                            : fmt::format("  open by process{} {}\n", open_by.size() == 1 ? "" : "es",
                                          fmt::join(open_by, ", "));
    // Sound by every check, and still missing commits the archive holds: critical.
    const auto behind = resilite::detail::archive::behind_its_archive(db, p.archive);
    j["behind_archive"] = behind ? nlohmann::json(*behind) : nlohmann::json(nullptr);
    if (behind) text += fmt::format("  BEHIND ITS ARCHIVE: {}; `resilite heal` brings them back\n", *behind);
    out.print(j, text);
    if ((!s.healthy && !not_checked) || behind) return critical;
    return not_checked || s.heal_attempts > 0 || s.archive_pending > 0 ? warnings : ok;
}

int metrics(const output& out, const fs::path& db, const places& p) {
    require_database_or_its_sidecar(db);
    const auto s = file_health(db, p);
    if (out.json) return health(out, db, p);  // the same figures as JSON
    if (!out.quiet) std::fputs(resilite::to_openmetrics(s, db.string(), resilite::metrics_scope::files).c_str(), stdout);
    return ok;
}

// Why a backup cannot be used for the database whose identity is `identity`, or nothing: it
// must match its manifest entry, and be this database's. Another database of the same file name
// may keep its backups in the same directory.
std::optional<std::string> why_not_usable(const fs::path& backup,
                                          const std::map<std::string, resilite::detail::manifest_entry>& manifest,
                                          const std::string& identity) {
    if (auto untrusted = resilite::detail::untrusted_backup(backup, manifest)) return untrusted;
    const auto id = resilite::detail::identity_in_file(backup);
    if (identity.empty() || id == identity) return std::nullopt;
    return id ? fmt::format("a backup of another database (identity {}; this database is {})", *id, identity)
              : fmt::format("a backup with no identity (this database is {}): not taken for this database's",
                            identity);
}

int backups(const output& out, const fs::path& db, const places& p) {
    // (the database itself may be gone: its backups are what is left)
    std::error_code ec;
    if (resilite::detail::is_link_path(p.backups)) throw refusal{link_not_followed(p.backups)};
    if (!fs::exists(db, ec) && !fs::is_directory(p.backups, ec))
        throw refusal{fmt::format("no database at {} and no backups in {}", db.string(), p.backups.string())};
    // The files first, then the manifest: a backup's line is written before its file gets its
    // name, so every file listed has its line in what is read after (one being promoted included).
    const auto all = resilite::detail::list_backups(db, p.backups);
    const auto manifest = resilite::detail::read_manifest(p.backups);
    const auto identity = resilite::detail::database_identity(db);
    nlohmann::json list = nlohmann::json::array();
    std::string text;
    std::size_t good = 0, listed = 0;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
        const auto check = resilite::check_health(it->path, resilite::check_level::quick);
        const auto untrusted = why_not_usable(it->path, manifest, identity);
        const auto entry = manifest.find(it->path.filename().string());
        std::error_code ec;
        const auto bytes = fs::file_size(it->path, ec);
        // Gone since the listing (retention removed it meanwhile): what was read is of no backup.
        if (std::error_code gone; !fs::exists(fs::symlink_status(it->path, gone))) continue;
        ++listed;
        const bool usable = check.ok() && !untrusted;
        good += usable ? 1 : 0;
        nlohmann::json b{{"name", it->path.filename().string()},
                         {"taken", utc_text(it->taken)},
                         {"bytes", ec ? 0 : bytes},
                         {"check", std::string{resilite::to_string(check.result)}},
                         {"trusted", !untrusted},
                         {"usable", usable}};
        b["archive_seq"] = entry != manifest.end() && entry->second.archive_seq ? nlohmann::json(*entry->second.archive_seq)
                                                                                : nlohmann::json(nullptr);
        b["problem"] = untrusted ? nlohmann::json(*untrusted)
                                 : check.ok() ? nlohmann::json(nullptr) : nlohmann::json(check.detail);
        text += fmt::format("  {}  {}  {} bytes  archive record {}  {}\n", it->path.filename().string(), utc_text(it->taken),
                            ec ? 0 : bytes, b["archive_seq"].is_null() ? std::string{"-"} : b["archive_seq"].dump(),
                            usable ? std::string{"ok"} : "NOT USABLE: " + b["problem"].get<std::string>());
        list.push_back(std::move(b));
    }
    text = fmt::format("{} backups of {} in {}, newest first\n", listed, db.string(), p.backups.string()) + text;
    out.print({{"database", db.string()}, {"directory", p.backups.string()}, {"backups", std::move(list)}}, text);
    if (listed == 0 || good == 0) return critical;
    return good < listed ? warnings : ok;
}

int quarantine_list(const output& out, const fs::path& db, const places& p) {
    const auto all = resilite::detail::list_quarantines(db, p.quarantine);
    // (A database healed and then removed still has its copies listed.)
    std::error_code ec;
    if (all.empty() && !fs::exists(db, ec) && !resilite::detail::read_marker(db).exists)
        throw refusal{fmt::format("no database at {}, and no quarantined copy of one in {}", db.string(),
                                  p.quarantine.string())};
    nlohmann::json list = nlohmann::json::array();
    std::string text = fmt::format("{} quarantined copies of {} in {}\n", all.size(), db.string(), p.quarantine.string());
    for (const auto& q : all) {
        std::uintmax_t bytes = 0;
        std::vector<std::string> files;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(q, ec)) {
            files.push_back(e.path().filename().string());
            std::error_code sz;
            const auto n = fs::is_regular_file(e.path(), sz) ? fs::file_size(e.path(), sz) : 0;
            bytes += sz ? 0 : n;
        }
        std::sort(files.begin(), files.end());
        list.push_back({{"path", q.string()}, {"files", files}, {"bytes", bytes}});
        text += fmt::format("  {}  {} bytes: {}\n", q.string(), bytes, fmt::join(files, ", "));
    }
    out.print({{"database", db.string()}, {"directory", p.quarantine.string()}, {"quarantines", std::move(list)}}, text);
    return ok;
}

int backup(const output& out, const fs::path& db, const places& p, const std::string& method) {
    require_existing_database(db);
    auto o = tool_options(p, false);
    o.settings->backup.how = method == "vacuum" ? resilite::backup_settings::method::vacuum_into : resilite::backup_settings::method::online;
    tool_db d{db, o};
    const auto r = d.backup_now();
    nlohmann::json j{{"database", db.string()},  {"backup", r.path.string()}, {"bytes", r.bytes},
                     {"pages", r.pages},         {"check", std::string{resilite::to_string(r.check.result)}},
                     {"taken", utc_text(r.taken)}};
    j["archive_seq"] = r.archive_seq ? nlohmann::json(*r.archive_seq) : nlohmann::json(nullptr);
    j["sink_error"] = r.sink_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.sink_error);
    j["offsite_error"] = r.offsite_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.offsite_error);
    std::string text = fmt::format("{}: backup {} ({} bytes, {} check: {})\n", db.string(), r.path.string(), r.bytes,
                                   resilite::to_string(r.check.level), resilite::to_string(r.check.result));
    for (const auto* e : {&r.sink_error, &r.offsite_error})
        if (!e->empty()) text += fmt::format("  warning: {}\n", *e);
    out.print(j, text);
    if (!r.check.ok()) return critical;
    return r.sink_error.empty() && r.offsite_error.empty() ? ok : warnings;
}

int restore(const output& out, const fs::path& backup_file, const fs::path& db, const places& p, bool force,
            const std::string& warning) {
    require_database(backup_file);
    std::error_code ec;
    const bool sound = fs::exists(db, ec) && resilite::check_health(db, resilite::check_level::quick).ok();
    if (!force && sound)
        throw refusal{fmt::format("{} passes its quick check: restoring would drop every commit since the backup; add "
                                  "--force to replace it anyway (nothing was changed)",
                                  db.string())};
    if (const auto pids = open_elsewhere(db); !pids.empty())
        throw refusal{fmt::format("{} is open in {}; stop the application first (nothing was changed)",
                                  db.string(), processes_text(pids))};
    const auto quarantined = resilite::restore(backup_file, db);
    nlohmann::json j{{"database", db.string()}, {"backup", backup_file.string()}};
    j["quarantined"] = quarantined.empty() ? nlohmann::json(nullptr) : nlohmann::json(quarantined.string());
    auto text = fmt::format("{}: restored from {}{}\n", db.string(), backup_file.string(),
                            quarantined.empty() ? std::string{}
                            : sound             ? "; the database it replaced is kept in " + quarantined.string()
                                                : "; the damaged files are in " + quarantined.string());
    // The commits the restore rolled back are still in the archive (where the application's
    // settings keep it): say how to get them back, and until when.
    const auto& archive_dir = p.archive;
    const auto restored = resilite::detail::archive_number_of(db);
    const auto end = resilite::detail::archive::archive_end(archive_dir);
    j["rolled_back_records"] = end > restored ? nlohmann::json::array({restored + 1, end}) : nlohmann::json(nullptr);
    if (end > restored)
        text += fmt::format("  the archive holds records {} to {} after this backup (the commits the restore rolled "
                            "back): `resilite archive replay {} {}` brings them back; run it before the application "
                            "opens the database, whose next open keeps the restored state\n",
                            restored + 1, end, archive_dir.string(), db.string());
    out.print(j, text + warning);
    return ok;
}

// Secret columns are never archived and the command does not know them: --exclude names them.
std::set<std::string> excluded_columns(const std::vector<std::string>& excluded) {
    std::set<std::string> out;
    for (const auto& column : excluded) {
        if (column.find('.') == std::string::npos)
            throw refusal{fmt::format("--exclude takes table.column, not '{}'", column)};
        std::string lower = column;
        for (auto& ch : lower)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        out.insert(lower);
    }
    return out;
}

int drill(const output& out, const fs::path& db, const places& p, const std::vector<std::string>& excluded) {
    require_existing_database(db);
    const auto columns = excluded_columns(excluded);
    tool_db d{db, tool_options(p, false)};
    const auto r = d.drill(columns);
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& t : r.tables)
        tables.push_back({{"name", t.name}, {"live_rows", t.live_rows}, {"restored_rows", t.restored_rows},
                          {"matches", t.matches}});
    nlohmann::json j{{"database", db.string()}, {"ok", r.ok},         {"source", r.source},
                     {"tables", tables},       {"problem", r.problem}, {"duration_ms", r.duration.count() / 1000000},
                     {"skipped_backups", r.skipped_backups}};
    j["behind"] = r.behind.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.behind);
    out.print(j, r.to_text());
    return !r.ok ? critical : r.skipped_backups.empty() && r.behind.empty() ? ok : warnings;
}

int check(const output& out, const fs::path& db, const std::string& level_name) {
    // A path with nothing there is bad input, unless resilite's sidecar says a database was
    // there: then it is the finding "missing".
    std::error_code ec;
    if (!fs::exists(db, ec) && !fs::exists(resilite::detail::marker_path(db), ec))
        throw refusal{fmt::format("no database at {}", db.string())};
    const auto level = level_name == "header" ? resilite::check_level::header
                       : level_name == "full" ? resilite::check_level::full
                                              : resilite::check_level::quick;
    const auto r = with_identity(db, resilite::check_health(db, level, bar.fn()));
    const nlohmann::json j{{"database", db.string()},
                           {"level", std::string{resilite::to_string(r.level)}},
                           {"result", std::string{resilite::to_string(r.result)}},
                           {"ok", r.ok()},
                           {"detail", r.detail}};
    out.print(j, fmt::format("{}: {} ({} check){}\n", db.string(), resilite::to_string(r.result),
                             resilite::to_string(r.level), r.detail.empty() ? "" : ": " + r.detail));
    return r.ok() ? ok : not_checked_here(db, r) ? warnings : critical;
}

nlohmann::json archive_json(const resilite::archive_report& r) {
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& t : r.tables) {
        nlohmann::json row{{"name", t.name}, {"rows", t.rows}, {"content_hash", t.content_hash}};
        row["matches_live"] = t.matches_live ? nlohmann::json(*t.matches_live) : nlohmann::json(nullptr);
        tables.push_back(std::move(row));
    }
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : r.problems) {
        problems.push_back({{"kind", std::string{resilite::to_string(p.what)}},
                            {"segment", p.segment},
                            {"line", p.line},
                            {"fatal", p.fatal},
                            {"message", p.message}});
    }
    nlohmann::json j{{"directory", r.directory.string()},
                     {"status", std::string{resilite::to_string(r.status())}},
                     {"segments", r.segments},
                     {"records", r.records},
                     {"first_seq", r.first_seq},
                     {"last_seq", r.last_seq},
                     {"first_time", r.first_time},
                     {"last_time", r.last_time},
                     {"baseline_seq", r.baseline_seq},
                     {"not_read_through", r.not_read_through},
                     {"not_read_records", r.not_read_records},
                     {"rebuildable", r.rebuildable()},
                     {"tables", std::move(tables)},
                     {"problems", std::move(problems)}};
    j["reproduces_live"] = r.reproduces_live ? nlohmann::json(*r.reproduces_live) : nlohmann::json(nullptr);
    return j;
}

// The database beside a directory named "<db>.archive" (the default place), or nothing.
fs::path database_beside(const fs::path& dir) {
    std::error_code ec;
    const auto name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
    if (!name.ends_with(".archive") || name.size() <= 8) return {};
    const auto beside = (dir.filename().empty() ? dir.parent_path() : dir).parent_path() /
                        name.substr(0, name.size() - std::string_view{".archive"}.size());
    return fs::is_regular_file(beside, ec) ? beside : fs::path{};
}

int archive_inspect(const output& out, const fs::path& dir, const fs::path& db,
                    const std::vector<std::string>& excluded) {
    require_directory(dir);
    resilite::inspect_options options;
    if (!db.empty()) {
        require_database(db);
        options.live_database = db;
    }
    options.excluded_columns = excluded_columns(excluded);
    // What committed, from outside the archive: the high-water mark beside the database (the one
    // given, or the one beside "<db>.archive"). Read before the archive: a writer raises it only
    // after its record is in the archive.
    const auto evidence = db.empty() ? database_beside(dir) : db;
    const auto mark = evidence.empty() ? std::int64_t{0}
                                       : resilite::detail::archive::read_high_water(
                                             resilite::detail::archive::high_water_path(evidence))
                                             .for_database(resilite::detail::read_marker(evidence).identity);
    auto r = resilite::inspect_archive(dir, options);
    // (Compared with a live database, the report ends at the database's own record: the archive
    // may go on, a database behind it.)
    const auto end = std::max(r.last_seq, resilite::detail::archive::archive_end(dir));
    if (mark > end) {
        // A cut tail is not "a torn tail never acknowledged" when the mark says it committed.
        r.problems.push_back({resilite::archive_problem::kind::gap, {}, 0,
                              fmt::format("records {} to {} are missing: the high-water mark beside {} says record {} "
                                          "committed, and the archive ends at record {}",
                                          end + 1, mark, evidence.string(), mark, end),
                              true, mark});
    }
    out.print(archive_json(r), r.to_text());
    return r.exit_code();
}


nlohmann::json heal_json(const resilite::heal_report& r) {
    nlohmann::json sources = nlohmann::json::array();
    for (const auto& a : r.sources)
        sources.push_back({{"source", a.source}, {"healed", a.healed}, {"detail", a.detail}});
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& t : r.tables)
        tables.push_back({{"name", t.name}, {"rows", t.rows}});
    nlohmann::json j{{"database", r.database.string()}, {"healed", r.healed},         {"found", r.found},
                     {"quarantine", r.quarantine.string()}, {"sources", sources},     {"tables", tables},
                     {"verification", r.verification},      {"may_be_lost", r.may_be_lost},
                     {"evidence", r.evidence},              {"duration_ms", r.duration.count() / 1000000}};
    j["backup_used"] = r.backup_used ? nlohmann::json(r.backup_used->string()) : nlohmann::json(nullptr);
    j["committed_seq"] = r.committed_seq ? nlohmann::json(*r.committed_seq) : nlohmann::json(nullptr);
    j["healed_seq"] = r.healed_seq ? nlohmann::json(*r.healed_seq) : nlohmann::json(nullptr);
    return j;
}

// A heal, through the library: only when the database is damaged (or missing where the sidecar
// says one was, or a heal was left unfinished), unless --force.
// A new machine (the database and its sidecar gone with the old one's disk): when the settings
// name a remote whose folder for this database name holds copies, a sidecar naming their
// identity is written, so that the heal below restores the database from them. Removed again
// if the heal does not succeed. False when there is no remote or no copy there.
bool claim_from_remote(const fs::path& db, const places& p) {
    if (p.settings.offsite.remote.empty()) return false;
    const auto id = resilite::detail::offsite_identity(p.settings.offsite, db);
    if (!id.error.empty()) throw refusal{fmt::format("no database at {}, and the remote cannot be read: {}", db.string(), id.error)};
    if (!id.identity) return false;
    resilite::detail::marker m;
    m.exists = true;
    m.identity = *id.identity;
    m.restore_requested = "a new machine: `resilite heal` restores it from the copies off the machine";
    if (!resilite::detail::write_marker(db, m))
        throw refusal{fmt::format("cannot write the sidecar {}", resilite::detail::marker_path(db).string())};
    return true;
}

int heal(const output& out, const fs::path& db, const places& p, bool force) {
    std::error_code ec;
    bool known = resilite::detail::read_marker(db).exists;
    bool new_machine = false;
    if (!fs::exists(db, ec) && !known) {
        new_machine = known = claim_from_remote(db, p);
        if (!known)
            throw refusal{fmt::format("no database at {}{}", db.string(),
                                      p.settings.offsite.remote.empty()
                                          ? std::string{" (with the settings' offsite.remote, a heal fetches one from there)"}
                                          : fmt::format(", and the remote holds no copy of a database named {}",
                                                        db.filename().string()))};
    }
    // A deleted database file the sidecar knows: the operator's heal asks for it back (an open
    // alone never guesses whether a missing file was removed on purpose).
    bool asked = false;
    if (!new_machine && !fs::exists(db, ec)) {
        auto m = resilite::detail::read_marker(db);
        if (m.restore_requested.empty() && m.heal_quarantine.empty()) {
            m.restore_requested = "`resilite heal` was asked to bring it back";
            asked = resilite::detail::write_marker(db, m);
        }
    }
    // Undone if the heal does not succeed: the sidecar written (or the request in it). What a
    // failed heal fetched from the remote stays beside the database (the report names it).
    struct undo_claim {
        const fs::path& db;
        bool remove_sidecar, forget_request;
        ~undo_claim() {
            std::error_code ignored;
            // (a failure after the heal at open succeeded, e.g. busy: the healed database stays known)
            if ((remove_sidecar || forget_request) && fs::exists(db, ignored) &&
                resilite::check_health(db, resilite::check_level::quick).ok())
                return;
            if (remove_sidecar) {
                fs::remove(resilite::detail::marker_path(db), ignored);
            } else if (forget_request) {
                auto m = resilite::detail::read_marker(db);
                m.restore_requested.clear();
                static_cast<void>(resilite::detail::write_marker(db, m));
            }
        }
    } undo{db, new_machine, asked};
    // Another database at the path is not "sound, nothing to heal": it goes to the library, whose
    // open refuses it (it is not damage a heal repairs), in its own words.
    const auto found = with_identity(db, resilite::check_health(db, resilite::check_level::quick));
    if (!known && !found.ok() && !resilite::detail::starts_like_sqlite(db))
        throw refusal{fmt::format("{} is not an SQLite database resilite has seen (no sidecar); nothing was changed",
                                  db.string())};
    // A file behind its archive (its -wal lost, an older copy put back by hand) passes every
    // check, but lacks commits the archive holds: a heal brings them back.
    const auto behind = resilite::detail::archive::behind_its_archive(db, p.archive);
    const bool damaged = !found.ok() || resilite::detail::damage_at_open(db).has_value() || behind.has_value();
    if (!damaged && !force) {
        out.print({{"database", db.string()}, {"healed", false}, {"found", "sound"}},
                  fmt::format("{}: sound (quick check); nothing to heal (--force heals it anyway)\n", db.string()));
        return ok;
    }
    tool_db d{db, tool_options(p, true)};  // damage the open sees is healed by the open
    auto r = d.last_heal();
    if (!r) r = d.heal();
    undo.remove_sidecar = new_machine && !r->healed;
    undo.forget_request = asked && !r->healed;
    out.print(heal_json(*r), r->to_text());
    return r->may_be_lost.empty() ? ok : warnings;
}

// What a heal would do now, changing nothing: the files it would move aside, the sources in the
// order it tries them, and what the evidence says could be lost. It verifies nothing: the real
// heal checks each candidate (integrity, foreign keys, equal to a trial rebuild) before using it.
int heal_plan(const output& out, const fs::path& db, const places& p) {
    std::error_code ec;
    const auto sidecar = resilite::detail::read_marker(db);
    if (!fs::exists(db, ec) && !sidecar.exists) throw refusal{fmt::format("no database at {}", db.string())};
    // (before the check: a read-only check of a WAL database leaves an empty -wal and -shm)
    const resilite::sqlite::file_set files{db};
    nlohmann::json moved = nlohmann::json::array();
    for (const auto& f : {files.database(), files.wal(), files.shm(), files.journal()})
        if (fs::exists(f, ec)) moved.push_back(f.string());
    const auto checked = resilite::check_health(db, resilite::check_level::quick);
    const auto found = with_identity(db, checked);
    const bool stranger = checked.ok() && !found.ok();  // another database: a heal's open refuses it
    auto damage = resilite::detail::damage_at_open(db);
    if (!damage) damage = resilite::detail::archive::behind_its_archive(db, p.archive);

    // The evidence of what committed, beside the database: the high-water mark. Read before the
    // archive: a writer committing meanwhile raises it only after its record is in the archive,
    // so a mark read after the archive could pass the archive's end without any loss.
    const auto mark = resilite::detail::archive::read_high_water(resilite::detail::archive::high_water_path(db));
    std::optional<resilite::archive_report> archive;
    const bool archive_link = resilite::detail::is_link_path(p.archive);
    if (!archive_link && fs::is_directory(p.archive, ec)) archive = resilite::inspect_archive(p.archive);
    const auto identity = resilite::detail::database_identity(db);
    // Another database's archive is no source: the heal's replay refuses it (its records would
    // overwrite this database's rows by key), and so does its rebuild's identity check.
    std::string foreign_archive;
    if (const auto owner = resilite::detail::read_archive_identity(p.archive);
        archive && owner && !identity.empty() && *owner != identity) {
        foreign_archive = fmt::format("the archive {} belongs to another database (identity {}; this database is {})",
                                      p.archive.string(), *owner, identity);
        archive.reset();
    }
    // Whether the archive can carry a restore from record `after` to its end.
    const auto tail_ok = [&](std::int64_t after) {
        if (!archive || archive->records == 0) return false;
        if (archive->first_seq > after + 1 && archive->baseline_seq == 0) return false;
        return std::none_of(archive->problems.begin(), archive->problems.end(), [&](const auto& q) {
            return q.fatal && (q.up_to_seq == 0 || q.up_to_seq > after);
        });
    };
    const bool accept = p.settings.healing.accept_loss_since_backup;
    // The files first, then the manifest: a backup's line is written before its file gets its
    // name, so every file listed has its line in what is read after (one being promoted included).
    const auto all = resilite::detail::list_backups(db, p.backups);
    const auto manifest = resilite::detail::read_manifest(p.backups);
    nlohmann::json sources = nlohmann::json::array();
    std::string text = fmt::format("heal plan for {} (nothing is changed; nothing is verified until a real heal)\n",
                                   db.string());
    text += fmt::format("  found: {}\n", !found.ok() ? fmt::format("{}: {}", resilite::to_string(found.result), found.detail)
                                         : damage   ? *damage
                                                    : std::string{"sound (quick check): a heal is not needed"});
    text += fmt::format("  would move aside into {}: {}\n", p.quarantine.string(),
                        moved.empty() ? std::string{"nothing (no file there)"} : fmt::format("{}", fmt::join(moved, ", ")));
    std::string first;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
        const auto check = resilite::check_health(it->path, resilite::check_level::quick);
        const auto untrusted = why_not_usable(it->path, manifest, identity);
        const auto entry = manifest.find(it->path.filename().string());
        // (Two plain values, not an optional: g++ 12 at -O2 takes the optional's value for maybe
        // uninitialized once tail_ok is inlined, and -Werror stops the build.)
        bool has_after = false;
        std::int64_t after = 0;
        if (entry != manifest.end() && entry->second.archive_seq) {
            has_after = true;
            after = *entry->second.archive_seq;
        }
        std::string why;
        if (!check.ok()) why = fmt::format("fails its check: {}", check.detail);
        else if (untrusted) why = *untrusted;
        else if (archive && has_after && !tail_ok(after)) why = fmt::format("the archive cannot carry it from record {}", after);
        else if ((!archive || !has_after) && !accept)
            why = "alone it lacks every commit after it: a heal uses it only with healing.accept_loss_since_backup";
        const auto name = fmt::format("backup {}{}", it->path.filename().string(), archive ? " + archive" : "");
        sources.push_back({{"source", name}, {"usable", why.empty()}, {"detail", why}});
        text += fmt::format("  source: {}: {}\n", name, why.empty() ? "looks usable" : why);
        if (why.empty() && first.empty()) first = name;
    }
    if (resilite::detail::is_link_path(p.backups)) {
        sources.push_back({{"source", "backups"}, {"usable", false}, {"detail", link_not_followed(p.backups)}});
        text += fmt::format("  source: backups: {}\n", link_not_followed(p.backups));
    }
    if (archive_link) {
        sources.push_back({{"source", "archive alone"}, {"usable", false}, {"detail", link_not_followed(p.archive)}});
        text += fmt::format("  source: archive alone: {}\n", link_not_followed(p.archive));
    }
    if (archive) {
        const bool alone = archive->rebuildable() && (archive->first_seq == 1 || archive->baseline_seq > 0);
        const auto why = alone ? std::string{} : std::string{"the archive cannot rebuild everything alone"};
        sources.push_back({{"source", "archive alone"}, {"usable", alone}, {"detail", why}});
        text += fmt::format("  source: archive alone: {}\n", alone ? "looks usable" : why);
        if (alone && first.empty()) first = "archive alone";
    } else if (!foreign_archive.empty()) {
        sources.push_back({{"source", "archive alone"}, {"usable", false}, {"detail", foreign_archive}});
        text += fmt::format("  source: archive alone: {}\n", foreign_archive);
    }
    const auto committed = mark.for_database(sidecar.identity);
    const auto reach = archive ? archive->last_seq : std::int64_t{0};
    std::string lost;
    if (committed > reach)
        lost = fmt::format("records {} to {} committed (high-water mark) but are not in the archive", reach + 1, committed);
    // The heal's own rules: a loss the evidence shows is refused unless accepted; the circuit
    // breaker stops every heal until `resilite heal reset`; a sound database holding changes its
    // archive has not received is put back rather than healed without them.
    std::int64_t pending = 0;
    if (found.ok() && !damage) {
        try {
            pending = resilite::detail::archive::unarchived_in(db).value_or(0);
        } catch (const resilite::error&) {  // (busy: the plan says what it can)
        }
    }
    std::string refusal_reason;
    if (resilite::detail::on_read_only_volume(db))
        refusal_reason = "the volume holding the database is mounted read-only: nothing can be moved aside or "
                         "written there (remount it read-write first)";
    else if (stranger)
        refusal_reason = "another database at the path is not damage a heal repairs: its open refuses it, as the "
                         "application's does (see found)";
    else if (sidecar.heal_attempts >= p.settings.healing.max_attempts)
        refusal_reason = fmt::format("healing stopped after {} heals in a row that did not succeed: recover by hand, "
                                     "then resilite heal reset",
                                     sidecar.heal_attempts);
    else if (pending > 0)
        refusal_reason = fmt::format("the database is sound and holds {} captured changes its archive has not "
                                     "received, which every source lacks: a heal would lose them, so it puts the "
                                     "database back unchanged (open it with the application, whose archive takes "
                                     "them, then heal)",
                                     pending);
    else if (!lost.empty() && !accept)
        refusal_reason = "a heal refuses to lose them unless healing.accept_loss_since_backup";
    else if (first.empty())
        refusal_reason = "no source looks usable";
    if (!refusal_reason.empty()) first.clear();
    text += fmt::format("  would try first: {}\n", first.empty() ? std::string{"nothing"} : first);
    text += fmt::format("  may be lost: {}\n", lost.empty() ? std::string{"nothing the evidence shows"} : lost);
    if (!refusal_reason.empty()) text += fmt::format("  a heal would refuse, deleting nothing: {}\n", refusal_reason);
    nlohmann::json j{{"database", db.string()},
                     {"found", found.ok() ? (damage ? *damage : std::string{"sound"})
                                          : fmt::format("{}: {}", resilite::to_string(found.result), found.detail)},
                     {"needed", !found.ok() || damage.has_value()},
                     {"quarantine_directory", p.quarantine.string()},
                     {"would_move", moved},
                     {"sources", sources},
                     {"committed_seq", committed},
                     {"archive_last_seq", reach},
                     {"may_be_lost", lost.empty() ? nlohmann::json(nullptr) : nlohmann::json(lost)},
                     {"would_refuse", refusal_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(refusal_reason)}};
    j["would_try_first"] = first.empty() ? nlohmann::json(nullptr) : nlohmann::json(first);
    out.print(j, text);
    if (first.empty()) return critical;
    return lost.empty() ? ok : warnings;
}

int archive_rebuild(const output& out, const fs::path& dir, const fs::path& target, std::int64_t until_seq,
                    const std::string& until_time, const std::vector<std::string>& tables) {
    require_directory(dir);
    std::error_code ec;
    if (fs::exists(target, ec)) throw refusal{fmt::format("{} exists; rebuild never writes over a database", target.string())};
    resilite::rebuild_options o;
    o.until_seq = until_seq;
    o.until_utc = until_time;
    o.tables = tables;
    o.on_progress = bar.fn();
    o.stop_when = stop_on_interrupt();
    const auto r = resilite::rebuild(dir, target, o);
    auto j = archive_json(r);
    j["target"] = target.string();
    out.print(j, fmt::format("rebuilt {} from {}\n{}", target.string(), dir.string(), r.to_text()));
    return r.exit_code();
}

int archive_replay(const output& out, const fs::path& dir, const fs::path& db) {
    require_directory(dir);
    require_existing_database(db);
    if (const auto pids = open_elsewhere(db); !pids.empty())
        throw refusal{fmt::format("{} is open in {}; stop the application first (nothing was changed)",
                                  db.string(), processes_text(pids))};
    resilite::replay_options o;
    o.on_progress = bar.fn();
    o.stop_when = stop_on_interrupt();
    const auto r = resilite::replay_archive(dir, db, o);
    auto j = archive_json(r);
    j["applied_records"] = r.applied_records;
    out.print(j, fmt::format("replayed {} records from {} into {}\n{}", r.applied_records, dir.string(), db.string(),
                             r.to_text()));
    return r.exit_code();
}

// Without --db, the database beside a directory named "<db>.archive" (the default place) is
// the one whose write lock keeps the writers out; with none, the operator must say that every
// writer is stopped.
int archive_repair(const output& out, const fs::path& dir, fs::path db, bool writers_stopped) {
    require_directory(dir);
    std::error_code ec;
    if (db.empty() && !writers_stopped) {
        if (const auto beside = database_beside(dir); !beside.empty()) db = beside;
        else
            throw refusal{fmt::format("name the database that writes {} with --db (its write lock keeps the "
                                      "application's writers out while the archive is rewritten), or stop every "
                                      "writer and pass --writers-stopped; nothing was changed",
                                      dir.string())};
    }
    // The operator's word that the writers stopped is checked where it can be: an application
    // that has the database beside the archive open is writing it (the segment rewritten under
    // it would lose the commits it appends meanwhile).
    if (db.empty() && writers_stopped) {
        if (const auto beside = database_beside(dir); !beside.empty()) {
            if (const auto pids = open_elsewhere(beside); !pids.empty())
                throw refusal{fmt::format("--writers-stopped, but {} (the database beside {}) is open in {}: "
                                          "stop it, or leave out --writers-stopped so that the database's write lock "
                                          "keeps its writers out; nothing was changed",
                                          beside.string(), dir.string(), processes_text(pids))};
        }
    }
    resilite::repair_options o;
    if (!db.empty()) {
        require_existing_database(db);
        o.live_database = db;
    }
    o.writers_stopped = writers_stopped;
    const auto r = resilite::repair_archive(dir, o);
    nlohmann::json repaired = nlohmann::json::array();
    for (const auto& s : r.repaired)
        repaired.push_back({{"segment", s.segment},
                            {"kept_records", s.kept_records},
                            {"removed_spans", s.removed_spans},
                            {"removed_bytes", s.removed_bytes},
                            {"set_aside", s.set_aside.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.set_aside.string())}});
    nlohmann::json j{{"directory", dir.string()},       {"database", db.empty() ? nlohmann::json(nullptr) : nlohmann::json(db.string())},
                     {"repaired", std::move(repaired)}, {"left_alone", r.left_alone}, {"conflicts", r.conflicts},
                     {"after", archive_json(r.after)}};
    j["snapshot_seq"] = r.snapshot_seq ? nlohmann::json(*r.snapshot_seq) : nlohmann::json(nullptr);
    out.print(j, r.to_text());
    return r.exit_code();
}

int heal_reset(const output& out, const fs::path& db) {
    // The sidecar is what it resets: a file gone with its sidecar left is the very case the
    // circuit breaker sends the operator here for (heals that did not finish left it quarantined).
    require_database_or_its_sidecar(db);
    const auto attempts = resilite::detail::read_marker(db).heal_attempts;
    resilite::reset_healing(db);
    out.print({{"database", db.string()}, {"reset", attempts > 0}, {"heal_attempts_before", attempts}},
              attempts > 0 ? fmt::format("{}: healing had stopped after {} heals in a row that did not succeed; it "
                                         "may run again at the next open\n",
                                         db.string(), attempts)
                           : fmt::format("{}: healing was not stopped; nothing to reset\n", db.string()));
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{fmt::format("resilite {}.{}.{}: check, verify and repair resilite databases and archives",
                             resilite::version.major, resilite::version.minor, resilite::version.patch),
                 "resilite"};
    app.require_subcommand(1);
    app.fallthrough();  // --json and --quiet also after a subcommand: "resilite check app.db --json"
    output out;
    app.add_flag("--json", out.json, "Print the result as one JSON object on stdout");
    app.add_flag("-q,--quiet", out.quiet, "Print nothing but errors");
    app.set_version_flag("--version", fmt::format("resilite {}.{}.{}", resilite::version.major,
                                                  resilite::version.minor, resilite::version.patch));
    app.footer("Exit codes: 0 ok, 1 critical (or nothing done), 2 warnings.");
    int code = ok;

    fs::path db, dir, settings_file;
    std::string level = "quick";
    auto* check_cmd = app.add_subcommand("check", "Check a database file: header, quick_check or integrity_check");
    check_cmd->add_option("DB", db, "The database file")->required();
    check_cmd->add_option("--level", level, "How deep: header, quick (default) or full")
        ->check(CLI::IsMember({"header", "quick", "full"}));
    check_cmd->callback([&] { code = check(out, db, level); });

    auto* archive_cmd = app.add_subcommand("archive", "Work with a text archive directory");
    archive_cmd->require_subcommand(1);
    auto* verify_cmd = archive_cmd->add_subcommand(
        "verify", "Read every record and rebuild in memory: can the archive rebuild the database?");
    verify_cmd->add_option("DIR", dir, "The archive directory")->required();
    verify_cmd->callback([&] { code = archive_inspect(out, dir, {}, {}); });
    auto* report_cmd = archive_cmd->add_subcommand(
        "report", "What the archive holds, table by table; with --db, compared with the live database");
    report_cmd->add_option("DIR", dir, "The archive directory")->required();
    report_cmd->add_option("--db", db, "The live database to compare with");
    std::vector<std::string> excluded;
    report_cmd->add_option("--exclude", excluded,
                           "A column left out of the comparison, as table.column (repeatable): secret columns "
                           "are never archived, so a rebuild holds placeholders there");
    report_cmd->callback([&] { code = archive_inspect(out, dir, db, excluded); });

    auto* heal_cmd = app.add_subcommand(
        "heal", "Heal a damaged database from its backups and archive; --dry-run says what a heal would do");
    heal_cmd->require_subcommand(0, 1);
    bool dry_run = false, force = false;
    heal_cmd->add_option("DB", db, "The database file");
    heal_cmd->add_flag("--dry-run", dry_run, "Change nothing: what would be moved aside, which sources, what may be lost");
    heal_cmd->add_flag("--force", force, "Heal even a database that passes its quick check");
    heal_cmd->add_option("--settings", settings_file, "The application's settings file (backups, archive, quarantine)");
    heal_cmd->callback([&] {
        if (heal_cmd->get_subcommands().empty()) {
            if (db.empty()) throw CLI::RequiredError("DB");
            const auto p = find_places(db, settings_file);
            code = dry_run ? heal_plan(out, db, p) : heal(out, db, p, force);
        }
    });
    auto* reset_cmd = heal_cmd->add_subcommand(
        "reset", "Let healing run again after its circuit breaker stopped it (changes nothing else)");
    reset_cmd->add_option("DB", db, "The database file")->required();
    reset_cmd->callback([&] { code = heal_reset(out, db); });

    auto* health_cmd = app.add_subcommand("health", "What the files show: check, pages, WAL, backups, archive, heals");
    health_cmd->add_option("DB", db, "The database file")->required();
    health_cmd->add_option("--settings", settings_file, "The application's settings file (where its backups are)");
    health_cmd->callback([&] { code = health(out, db, find_places(db, settings_file)); });

    bool prometheus = true;
    auto* metrics_cmd = app.add_subcommand("metrics", "The files' figures as OpenMetrics text, for Prometheus");
    metrics_cmd->add_option("DB", db, "The database file")->required();
    metrics_cmd->add_flag("--prometheus", prometheus, "OpenMetrics text (the only format)");
    metrics_cmd->add_option("--settings", settings_file, "The application's settings file (where its backups are)");
    metrics_cmd->callback([&] { code = metrics(out, db, find_places(db, settings_file)); });

    fs::path backup_dir;
    std::string method = "online";
    auto* backup_cmd = app.add_subcommand("backup", "Take a backup now (checked, synced, in the manifest)");
    backup_cmd->add_option("DB", db, "The database file")->required();
    backup_cmd->add_option("--dir", backup_dir, "Where (default: the application's, or <DB>.backups)");
    backup_cmd->add_option("--method", method, "online (default) or vacuum")->check(CLI::IsMember({"online", "vacuum"}));
    backup_cmd->add_option("--settings", settings_file, "The application's settings file");
    backup_cmd->callback([&] { code = backup(out, db, find_places(db, settings_file, backup_dir), method); });

    auto* backups_cmd = app.add_subcommand("backups", "The backups and each one's check against its manifest entry");
    backups_cmd->add_option("DB", db, "The database file")->required();
    backups_cmd->add_option("--dir", backup_dir, "Where (default: the application's, or <DB>.backups)");
    backups_cmd->add_option("--settings", settings_file, "The application's settings file");
    backups_cmd->callback([&] { code = backups(out, db, find_places(db, settings_file, backup_dir)); });

    fs::path backup_file;
    auto* restore_cmd = app.add_subcommand(
        "restore", "Put a backup in place of a database (checked first; the database it replaces is moved aside)");
    restore_cmd->add_option("BACKUP", backup_file, "The backup file")->required();
    restore_cmd->add_option("DB", db, "The database to replace")->required();
    restore_cmd->add_flag("--force", force, "Replace a database that passes its quick check (kept aside)");
    restore_cmd->add_option("--settings", settings_file, "The application's settings file (where its archive is)");
    restore_cmd->callback([&] {
        // The settings only say where the archive is: settings from the environment that cannot be
        // read never block a restore (a file named with --settings must be readable).
        places p;
        std::string warning;
        try {
            p = find_places(db, settings_file);
        } catch (const refusal& r) {
            if (!settings_file.empty()) throw;
            p.archive = resilite::detail::archive::archive_directory(db, {});
            warning = fmt::format("  warning: {}; the archive is looked for at {}\n", r.message, p.archive.string());
        }
        code = restore(out, backup_file, db, p, force, warning);
    });

    auto* drill_cmd = app.add_subcommand(
        "drill", "A restore drill: the newest backup plus the archive, restored aside and compared with the live tables");
    drill_cmd->add_option("DB", db, "The database file")->required();
    drill_cmd->add_option("--settings", settings_file, "The application's settings file");
    drill_cmd->add_option("--exclude", excluded,
                          "A secret column left out of the comparison, as table.column (repeatable): never archived");
    drill_cmd->callback([&] { code = drill(out, db, find_places(db, settings_file), excluded); });

    auto* quarantine_cmd = app.add_subcommand("quarantine", "The damaged copies heals moved aside");
    quarantine_cmd->require_subcommand(1);
    auto* qlist_cmd = quarantine_cmd->add_subcommand("list", "List them, oldest first");
    qlist_cmd->add_option("DB", db, "The database file")->required();
    qlist_cmd->add_option("--settings", settings_file, "The application's settings file");
    qlist_cmd->callback([&] { code = quarantine_list(out, db, find_places(db, settings_file)); });

    fs::path target;
    std::int64_t until_seq = 0;
    std::string until_time;
    std::vector<std::string> tables;
    auto* rebuild_cmd = archive_cmd->add_subcommand(
        "rebuild", "Build a new database from the archive alone; to a point in time, or some tables only");
    rebuild_cmd->add_option("DIR", dir, "The archive directory")->required();
    rebuild_cmd->add_option("NEW", target, "The database to create (must not exist)")->required();
    rebuild_cmd->add_option("--until", until_seq, "The last record to apply (a number)")->check(CLI::PositiveNumber);
    rebuild_cmd->add_option("--until-time", until_time, "The last time to apply, UTC: 2026-12-05T10:00:00Z");
    rebuild_cmd->add_option("--tables", tables, "Only these tables (comma-separated)")->delimiter(',');
    rebuild_cmd->callback([&] { code = archive_rebuild(out, dir, target, until_seq, until_time, tables); });
    auto* replay_cmd = archive_cmd->add_subcommand(
        "replay", "Apply to a database (e.g. a restored backup) the archive records it does not hold yet");
    replay_cmd->add_option("DIR", dir, "The archive directory")->required();
    replay_cmd->add_option("DB", db, "The database")->required();
    replay_cmd->callback([&] { code = archive_replay(out, dir, db); });

    bool writers_stopped = false;
    auto* repair_cmd = archive_cmd->add_subcommand(
        "repair", "Set aside damaged, torn and garbage records into kept files; with the database, a fresh snapshot "
                  "so the archive can rebuild everything again");
    repair_cmd->add_option("DIR", dir, "The archive directory")->required();
    repair_cmd->add_option("--db", db, "The database that writes this archive (default: <DB>.archive's DB)");
    repair_cmd->add_flag("--writers-stopped", writers_stopped,
                         "No database is named: every application that writes this archive is stopped");
    repair_cmd->callback([&] { code = archive_repair(out, dir, db, writers_stopped); });

    try {
        // (--quiet may come anywhere on the line, and the callbacks need the bar)
        bar.enable(true);
        for (int i = 1; i < argc; ++i)
            if (std::string_view{argv[i]} == "-q" || std::string_view{argv[i]} == "--quiet") bar.enable(false);
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        bar.end_line();
        std::fprintf(stderr, "resilite: %s (see resilite --help)\n", e.what());
        return critical;
    } catch (const refusal& r) {
        bar.end_line();
        std::fprintf(stderr, "resilite: %s\n", r.message.c_str());
        return critical;
    } catch (const resilite::error& e) {
        bar.end_line();
        print_error(e);
        return critical;
    } catch (const std::exception& e) {
        bar.end_line();
        std::fprintf(stderr, "resilite: %s\n", e.what());
        return critical;
    }
    bar.end_line();
    return code;
}
