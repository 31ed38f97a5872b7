// The `resilite` command, run as an operator runs it: the real binary on real files, its exit
// codes, its JSON (parsed, not grepped) and the files it leaves.
#include "archive_support.hpp"

#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace cli_resilite_tests {

using namespace test::archive;

namespace {

struct cli_result {
    int code = -1;
    std::string out, err;
    [[nodiscard]] nlohmann::json json() const { return nlohmann::json::parse(out); }
    [[nodiscard]] std::size_t err_lines() const {
        return static_cast<std::size_t>(std::count(err.begin(), err.end(), '\n'));
    }
};

// `resilite <args>` with stdout and stderr kept apart (the paths are temporary directories').
// `env`: "NAME=value ..." for the command's environment.
cli_result run_cli(const test::temp_dir& dir, const std::string& args, const std::string& env = {}) {
    const auto out = dir / "cli.out", err = dir / "cli.err";
    const auto cmd = fmt::format("{}{}'{}' {} > '{}' 2> '{}'", env, env.empty() ? "" : " ", RESILITE_CLI_PATH, args,
                                 out.string(), err.string());
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_all(out), read_all(err)};
}

// `resilite <args>` with stdout and stderr on a pseudo-terminal, as an operator's shell has
// them; what the terminal received, both streams together.
cli_result run_cli_on_terminal(const std::vector<std::string>& args) {
    std::vector<std::string> owned{RESILITE_CLI_PATH};
    owned.insert(owned.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : owned)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    int master = -1;
    const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    std::string out;
    char buf[4096];
    for (;;) {  // until the command has exited and its side of the terminal is closed (EIO)
        const auto n = ::read(master, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(master);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, {}};
}

// reset_healing changes nothing in the sidecar but the count of heals that did not succeed.
bool read_marker_unchanged_except_attempts(const resilite::detail::marker& before,
                                           const resilite::detail::marker& after) {
    return before.identity == after.identity && before.synchronous == after.synchronous &&
           before.heal_quarantine == after.heal_quarantine && before.heal_epoch == after.heal_epoch &&
           before.damage_seen == after.damage_seen;
}

std::int64_t count_items(const std::filesystem::path& db, const char* table = "items") {
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    return c.query_one<std::int64_t>(fmt::format("SELECT count(*) FROM {}", table)).value_or(-1);
}

void add_items(const std::filesystem::path& db, int from, int to) {
    ItemsDb d{db};
    for (int i = from; i <= to; ++i)
        d.insert(Item{i, fmt::format("item {}", i), i * 0.25, "secret"});
}

// A database with an archive: 20 items and a log line, one commit each.
void archived_database(const std::filesystem::path& db) {
    ItemsDb d{db};
    for (int i = 1; i <= 20; ++i)
        d.insert(Item{i, fmt::format("item {}", i), i * 0.25, "secret"});
    d.insert(Log{"done"});
}

}  // namespace

TEST_CASE("cli.help: resilite --help lists every subcommand, each has its own --help", "[cli]") {
    test::temp_dir dir;
    const auto r = run_cli(dir, "--help");
    CHECK(r.code == 0);
    for (const char* sub : {"check", "health", "metrics", "backup", "backups", "restore", "drill", "heal",
                            "quarantine", "archive"})
        CHECK(r.out.find(fmt::format("\n  {} ", sub)) != std::string::npos);
    const auto archive = run_cli(dir, "archive --help");
    for (const char* sub : {"verify", "report", "rebuild", "replay", "repair"})
        CHECK(archive.out.find(fmt::format("\n  {} ", sub)) != std::string::npos);
    CHECK(run_cli(dir, "heal --help").out.find("--dry-run") != std::string::npos);
    CHECK(run_cli(dir, "quarantine list --help").code == 0);
    CHECK(r.out.find("Exit codes") != std::string::npos);
    const auto verify = run_cli(dir, "archive verify --help");
    CHECK(verify.code == 0);
    CHECK(verify.out.find("DIR") != std::string::npos);
    const auto version = run_cli(dir, "--version");
    CHECK(version.code == 0);
    CHECK(version.out.find(fmt::format("resilite {}.{}.{}", resilite::version.major, resilite::version.minor,
                                       resilite::version.patch)) != std::string::npos);
}

TEST_CASE("cli.usage: an unknown flag, a missing argument or subcommand is one line on stderr and exit 1",
          "[cli]") {
    test::temp_dir dir;
    for (const char* args : {"check --no-such-flag x.db", "check", "archive", "frobnicate", ""}) {
        INFO(args);
        const auto r = run_cli(dir, args);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err_lines() == 1);
        CHECK(r.err.rfind("resilite: ", 0) == 0);
    }
}

TEST_CASE("cli.check: a sound database is 0, a damaged one 1, a missing path 1 and nothing created", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);

    auto r = run_cli(dir, fmt::format("--json check '{}'", db.string()));
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    auto j = r.json();
    CHECK(j["result"] == "ok");
    CHECK(j["level"] == "quick");
    CHECK(j["ok"] == true);
    CHECK(j["database"] == db.string());

    // The global flags may also follow the subcommand.
    r = run_cli(dir, fmt::format("check '{}' --json", db.string()));
    CHECK(r.code == 0);
    CHECK(r.json()["result"] == "ok");

    r = run_cli(dir, fmt::format("check --level full '{}'", db.string()));
    CHECK(r.code == 0);
    CHECK(r.out.find("ok (full check)") != std::string::npos);
    CHECK(run_cli(dir, fmt::format("--quiet check '{}'", db.string())).out.empty());

    std::mt19937_64 rng{7};
    resilite::testing::overwrite_header(db, rng);
    const auto before = read_all(db);
    r = run_cli(dir, fmt::format("--json check '{}'", db.string()));
    CHECK(r.code == 1);
    j = r.json();
    CHECK(j["ok"] == false);
    CHECK(j["result"] != "ok");
    CHECK(read_all(db) == before);  // a check changes nothing

    const auto missing = dir / "missing.db";
    r = run_cli(dir, fmt::format("check '{}'", missing.string()));
    CHECK(r.code == 1);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("no database at") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(missing));

    // The file gone where resilite had a database: the finding "missing", not bad input.
    std::filesystem::remove(db);
    r = run_cli(dir, fmt::format("--json check '{}'", db.string()));
    CHECK(r.code == 1);
    CHECK(r.json()["result"] == "missing");

    // A file that is not a database at all.
    const auto text = dir / "notes.txt";
    { std::ofstream{text} << std::string(4096, 'x'); }
    r = run_cli(dir, fmt::format("--json check '{}'", text.string()));
    CHECK(r.code == 1);
    CHECK(r.json()["result"] == "not a database");
}

TEST_CASE("cli.archive: verify and report read the archive, compared with the live database it reproduces it",
          "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    const auto archive = dir / "app.db.archive";

    auto r = run_cli(dir, fmt::format("--json archive verify '{}'", archive.string()));
    CHECK(r.code == 0);
    auto j = r.json();
    CHECK(j["status"] == "ok");
    CHECK(j["rebuildable"] == true);
    CHECK(j["records"].get<int>() >= 21);
    CHECK(j["problems"].empty());
    CHECK(j["reproduces_live"].is_null());

    // The secret column holds placeholders in a rebuild: compared as it is, items differs.
    r = run_cli(dir, fmt::format("--json archive report '{}' --db '{}'", archive.string(), db.string()));
    CHECK(r.code == 1);
    CHECK(r.json()["reproduces_live"] == false);
    r = run_cli(dir, fmt::format("--json archive report '{}' --db '{}' --exclude items.token", archive.string(),
                                 db.string()));
    CHECK(r.code == 0);
    j = r.json();
    CHECK(j["reproduces_live"] == true);
    bool saw_items = false;
    for (const auto& t : j["tables"]) {
        if (t["name"] != "items") continue;
        saw_items = true;
        CHECK(t["rows"] == 20);
        CHECK(t["matches_live"] == true);
    }
    CHECK(saw_items);

    // A row written behind resilite's back: the capture triggers put it in the outbox, and the
    // archive lags by it until the next drain: a warning, and named.
    {
        resilite::sqlite::connection c{db};
        c.exec("INSERT INTO logs(msg) VALUES('behind its back')");
    }
    r = run_cli(dir, fmt::format("--json archive report '{}' --db '{}' --exclude items.token", archive.string(),
                                 db.string()));
    CHECK(r.code == 2);
    CHECK(r.json()["reproduces_live"] == false);
    // One the capture triggers did not see either (they were dropped first): critical.
    {
        resilite::sqlite::connection c{db};
        c.exec_script("DROP TRIGGER resilite_archive_logs_insert");
        c.exec("INSERT INTO logs(msg) VALUES('unseen')");
        c.exec_script("DELETE FROM resilite_archive_outbox");  // (nothing waits: a loss, not a lag)
    }
    r = run_cli(dir, fmt::format("--json archive report '{}' --db '{}' --exclude items.token", archive.string(),
                                 db.string()));
    CHECK(r.code == 1);
    CHECK(r.json()["reproduces_live"] == false);
    CHECK(run_cli(dir, fmt::format("archive report '{}' --exclude token", archive.string())).code == 1);

    // Not an archive directory: one line, exit 1.
    r = run_cli(dir, fmt::format("archive verify '{}'", (dir / "nowhere").string()));
    CHECK(r.code == 1);
    CHECK(r.err_lines() == 1);
}

TEST_CASE("cli.archive repair: damage set aside into a kept file, a gap named, a snapshot of the database makes the "
          "archive whole again, refusals change nothing",
          "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    const auto archive = dir / "app.db.archive";
    const auto segment = archive / resilite::detail::archive::list_segments(archive).front();
    // One record's text changed (its CRC-32 no longer matches), garbage after it, a torn tail.
    auto text = read_all(segment);
    const auto at = text.find("'item 7'");
    REQUIRE(at != std::string::npos);
    text[at + 1] = 'I';
    const auto next = text.find("-- txn ", at);
    text.insert(next, "garbage from elsewhere\n");
    text += "-- txn 999 2026-12-05T10:00:00.000Z changes outbox 1-1 bytes 80\nBEGIN;\nINSERT";
    write_all(segment, text);
    REQUIRE(run_cli(dir, fmt::format("archive verify '{}'", archive.string())).code == 1);

    // A copy of the directory under another name: no database can be found for it, so nothing
    // keeps writers out: refused unless the operator says every writer is stopped.
    const auto copy = dir / "copy";
    std::filesystem::copy(archive, copy);
    auto r = run_cli(dir, fmt::format("archive repair '{}'", copy.string()));
    CHECK(r.code == 1);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("--writers-stopped") != std::string::npos);
    CHECK(read_all(copy / segment.filename()) == text);
    r = run_cli(dir, fmt::format("--json archive repair '{}' --writers-stopped", copy.string()));
    CHECK(r.code == 1);  // the changed record is gone: a gap, and no database to take a snapshot from
    auto j = r.json();
    REQUIRE(j["repaired"].size() == 1);
    CHECK(j["repaired"][0]["removed_spans"] == 2);
    const auto aside = read_all(j["repaired"][0]["set_aside"].get<std::string>());
    CHECK(aside.find("'Item 7'") != std::string::npos);
    CHECK(aside.find("garbage from elsewhere") != std::string::npos);
    CHECK(aside.find("-- txn 999") != std::string::npos);
    CHECK(j["snapshot_seq"].is_null());
    CHECK(j["after"]["rebuildable"] == false);
    bool gap = false;
    for (const auto& p : j["after"]["problems"])
        gap = gap || (p["kind"] == "sequence gap" && p["fatal"] == true);
    CHECK(gap);

    // The default directory: its database is found beside it, locked, and snapshotted.
    r = run_cli(dir, fmt::format("--json archive repair '{}'", archive.string()));
    CHECK(r.code == 2);
    j = r.json();
    CHECK(j["database"] == db.string());
    CHECK(j["snapshot_seq"].is_number());
    CHECK(j["after"]["rebuildable"] == true);
    CHECK(j["after"]["reproduces_live"] == true);
    // Whole again: what was set aside stays missing from the history before the snapshot, a
    // warning (a rebuild to a point before it cannot be done), nothing fatal.
    r = run_cli(dir, fmt::format("--json archive verify '{}'", archive.string()));
    CHECK(r.code == 2);
    j = r.json();
    CHECK(j["rebuildable"] == true);
    CHECK_FALSE(j["problems"].empty());
    for (const auto& p : j["problems"]) {
        CHECK(p["fatal"] == false);
        CHECK(p["message"].get<std::string>().find("before the snapshot a rebuild starts from") != std::string::npos);
    }
    const auto rebuilt = dir / "rebuilt.db";
    REQUIRE(run_cli(dir, fmt::format("--quiet archive rebuild '{}' '{}'", archive.string(), rebuilt.string())).code == 2);
    CHECK(count_items(rebuilt) == 20);
    r = run_cli(dir, fmt::format("archive repair '{}' --db '{}'", archive.string(), db.string()));
    CHECK(r.code == 0);
    CHECK(r.out.find("nothing to repair") != std::string::npos);
}

TEST_CASE("cli.archive repair: --writers-stopped is refused while an application has the database beside the "
          "archive open (its commits would be cut from the rewritten segment)",
          "[cli][archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    const auto archive = dir / "app.db.archive";
    const auto segment = archive / resilite::detail::archive::list_segments(archive).front();
    {
        ItemsDb open{db};  // an application with the database open (this process, not the command's)
        // A torn tail, as a crash leaves one (written after the open, which would have cut it).
        write_all(segment, read_all(segment) + "-- txn 999 2026-12-05T10:00:00.000Z changes outbox 1-1 bytes 80\nBEGIN;\nINSERT");
        const auto text = read_all(segment);
        auto r = run_cli(dir, fmt::format("archive repair '{}' --writers-stopped", archive.string()));
        CHECK(r.code == 1);
        CHECK(r.err_lines() == 1);
        CHECK(r.err.find("is open in process") != std::string::npos);
        CHECK(read_all(segment) == text);  // nothing was changed
    }
    // Once the application stopped, the operator's word is taken.
    const auto r = run_cli(dir, fmt::format("archive repair '{}' --writers-stopped", archive.string()));
    CHECK(r.code != 1);
    CHECK(r.err.empty());
    CHECK(read_all(segment).find("-- txn 999") == std::string::npos);
}

TEST_CASE("cli.progress: on a terminal rebuild, replay, a full check, backup and heal draw a bar on stderr, "
          "redirected or --quiet, nothing",
          "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    {
        ItemsDb d{db};
        for (int i = 1; i <= 300; ++i)
            d.insert(Item{i, fmt::format("item {}", i), i * 0.25, "secret"});
    }
    const auto archive = (dir / "app.db.archive").string();
    const auto bar_of = [](const std::string& out, const std::string& what) {
        // The bar's end for that step: "<what> [####...] 100%", drawn over its earlier states.
        return out.find("\r") != std::string::npos && out.find(what + " [") != std::string::npos &&
               out.find(what + " [" + std::string(30, '#') + "] 100%") != std::string::npos;
    };
    auto r = run_cli_on_terminal({"archive", "rebuild", archive, (dir / "rebuilt.db").string()});
    CHECK(r.code == 0);
    CHECK(bar_of(r.out, "rebuild: applying records"));
    CHECK(r.out.find("records)") != std::string::npos);
    CHECK(r.out.find("rebuild: checking integrity") != std::string::npos);
    CHECK(count_items(dir / "rebuilt.db") == 300);

    // Redirected (a script, a log) or --quiet: no bar at all.
    auto plain = run_cli(dir, fmt::format("archive rebuild '{}' '{}'", archive, (dir / "again.db").string()));
    CHECK(plain.code == 0);
    CHECK(plain.err.empty());
    r = run_cli_on_terminal({"--quiet", "archive", "rebuild", archive, (dir / "quiet.db").string()});
    CHECK(r.code == 0);
    CHECK(r.out.empty());

    REQUIRE(run_cli(dir, fmt::format("--quiet archive rebuild '{}' '{}' --until 100", archive,
                                     (dir / "partial.db").string()))
                .code == 0);
    r = run_cli_on_terminal({"archive", "replay", archive, (dir / "partial.db").string()});
    CHECK(r.code == 0);
    CHECK(bar_of(r.out, "replay: applying records"));

    r = run_cli_on_terminal({"check", "--level", "full", db.string()});
    CHECK(r.code == 0);
    CHECK(r.out.find("check: integrity_check") != std::string::npos);

    r = run_cli_on_terminal({"backup", db.string()});
    CHECK(r.code == 0);
    CHECK(bar_of(r.out, "backup: copying pages"));

    add_items(db, 301, 310);
    std::mt19937_64 rng{7};
    resilite::testing::overwrite_header(db, rng);
    r = run_cli_on_terminal({"heal", db.string()});
    CHECK(r.code == 2);  // healed; the secret column of the rows after the backup is named
    CHECK(r.out.find("heal: replaying the archive [") != std::string::npos);
    CHECK(r.out.find("heal: swap [") != std::string::npos);
    CHECK(count_items(db) == 310);
}

TEST_CASE("cli.heal: heal reset lets healing run again, and refuses a path with no database", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    auto r = run_cli(dir, fmt::format("--json heal reset '{}'", db.string()));
    CHECK(r.code == 0);
    CHECK(r.json()["reset"] == false);  // nothing had stopped healing

    // The circuit breaker open: 3 heals in a row did not succeed.
    auto side = resilite::detail::read_marker(db);
    side.heal_attempts = 3;
    REQUIRE(resilite::detail::write_marker(db, side));
    r = run_cli(dir, fmt::format("--json heal reset '{}'", db.string()));
    CHECK(r.code == 0);
    CHECK(r.json()["reset"] == true);
    CHECK(r.json()["heal_attempts_before"] == 3);
    CHECK(resilite::detail::read_marker(db).heal_attempts == 0);
    CHECK(read_marker_unchanged_except_attempts(side, resilite::detail::read_marker(db)));
    r = run_cli(dir, fmt::format("heal reset '{}'", (dir / "none.db").string()));
    CHECK(r.code == 1);
    CHECK(r.err.find("no database at") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "none.db"));
}


TEST_CASE("cli.backup: backup, backups (each copy checked against its manifest entry) and restore", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);

    auto r = run_cli(dir, fmt::format("--json backup '{}'", db.string()));
    REQUIRE(r.code == 0);
    auto j = r.json();
    const std::filesystem::path first = j["backup"].get<std::string>();
    CHECK(std::filesystem::exists(first));
    CHECK(first.parent_path() == std::filesystem::path{db.string() + ".backups"});
    CHECK(j["check"] == "ok");
    CHECK(j["archive_seq"].get<std::int64_t>() >= 21);  // the archive record the copy holds

    r = run_cli(dir, fmt::format("--json backups '{}'", db.string()));
    CHECK(r.code == 0);
    j = r.json();
    REQUIRE(j["backups"].size() == 1);
    CHECK(j["backups"][0]["usable"] == true);
    CHECK(j["backups"][0]["trusted"] == true);

    // A copy changed after it was taken no longer matches its manifest entry: not usable.
    { std::ofstream{first, std::ios::app} << 'x'; }
    r = run_cli(dir, fmt::format("--json backups '{}'", db.string()));
    CHECK(r.code == 1);  // no usable backup
    CHECK(r.json()["backups"][0]["trusted"] == false);
    add_items(db, 21, 22);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}' --method vacuum", db.string())).code == 0);
    r = run_cli(dir, fmt::format("--json backups '{}'", db.string()));
    CHECK(r.code == 2);  // one usable, one not
    j = r.json();
    REQUIRE(j["backups"].size() == 2);
    CHECK(j["backups"][0]["usable"] == true);  // newest first
    const std::filesystem::path second = j["backups"][0]["name"].get<std::string>();

    // Elsewhere with --dir: the same manifest rules there.
    r = run_cli(dir, fmt::format("--json backup '{}' --dir '{}'", db.string(), (dir / "elsewhere").string()));
    CHECK(r.code == 0);
    CHECK(std::filesystem::path{r.json()["backup"].get<std::string>()}.parent_path() == dir / "elsewhere");

    // Restore over a damaged database: the damaged files are kept aside, the copy put in place.
    std::mt19937_64 rng{11};
    resilite::testing::overwrite_header(db, rng);
    const auto copy = std::filesystem::path{db.string() + ".backups"} / second;
    r = run_cli(dir, fmt::format("--json restore '{}' '{}'", copy.string(), db.string()));
    REQUIRE(r.code == 0);
    j = r.json();
    CHECK_FALSE(j["quarantined"].is_null());
    CHECK(std::filesystem::exists(j["quarantined"].get<std::string>()));
    CHECK(count_items(db) == 22);

    // Over a sound database only with --force (every commit since the backup would go).
    add_items(db, 23, 23);
    r = run_cli(dir, fmt::format("restore '{}' '{}'", copy.string(), db.string()));
    CHECK(r.code == 1);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("--force") != std::string::npos);
    CHECK(count_items(db) == 23);
    // Refused while an application has the database open, and nothing changes.
    {
        ItemsDb open{db};
        r = run_cli(dir, fmt::format("restore '{}' '{}' --force", copy.string(), db.string()));
        CAPTURE(r.err, r.out);
        CHECK(r.code == 1);
        CHECK(r.err_lines() == 1);
        // (The command names the process: it asks who holds SQLite's lock on the -shm file.)
        CHECK(r.err.find(fmt::format("is open in process {}", ::getpid())) != std::string::npos);
    }
    CHECK(count_items(db) == 23);
    r = run_cli(dir, fmt::format("--json restore '{}' '{}' --force", copy.string(), db.string()));
    CHECK(r.code == 0);
    // Sound: replaced on purpose, and kept aside (never destroyed) with the commit since the backup.
    REQUIRE_FALSE(r.json()["quarantined"].is_null());
    CHECK(count_items(std::filesystem::path{r.json()["quarantined"].get<std::string>()} / "app.db") == 23);
    CHECK_THAT(run_cli(dir, fmt::format("restore '{}' '{}' --force", copy.string(), db.string())).out,
               Catch::Contains("the database it replaced is kept in"));
    CHECK(count_items(db) == 22);
    // The commit it rolled back is named, with how to get it back before the application opens.
    const auto rolled_back = r.json()["rolled_back_records"];
    REQUIRE(rolled_back.is_array());
    CHECK(rolled_back[0].get<std::int64_t>() <= rolled_back[1].get<std::int64_t>());
    r = run_cli(dir, fmt::format("restore '{}' '{}' --force", copy.string(), db.string()));
    CHECK_THAT(r.out, Catch::Contains("archive replay"));
    r = run_cli(dir, fmt::format("archive replay '{}.archive' '{}'", db.string(), db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 0);
    CHECK(count_items(db) == 23);
    r = run_cli(dir, fmt::format("restore '{}' '{}' --force", copy.string(), db.string()));
    CHECK(count_items(db) == 22);
    // A damaged page (the header intact) is kept aside too, not overwritten.
    resilite::testing::zero_page(db, 2);
    r = run_cli(dir, fmt::format("--json restore '{}' '{}'", copy.string(), db.string()));
    CHECK(r.code == 0);
    CHECK_FALSE(r.json()["quarantined"].is_null());
    // Bad input: a backup that is not there.
    r = run_cli(dir, fmt::format("restore '{}' '{}'", (dir / "none.db").string(), db.string()));
    CHECK(r.code == 1);
    CHECK(r.err_lines() == 1);
}

TEST_CASE("cli.drill: the newest backup plus the archive, compared with the live tables", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    add_items(db, 21, 30);
    // Secret columns are never archived: the command finds them in the database's capture
    // triggers (it declares no schema), and --exclude may name more.
    auto r = run_cli(dir, fmt::format("--json drill '{}'", db.string()));
    CHECK(r.code == 0);
    r = run_cli(dir, fmt::format("--json drill '{}' --exclude items.token", db.string()));
    CAPTURE(r.err, r.out);
    CHECK(r.code == 0);
    auto j = r.json();
    CHECK(j["ok"] == true);
    bool saw_items = false;
    for (const auto& t : j["tables"]) {
        if (t["name"] != "items") continue;
        saw_items = true;
        CHECK(t["live_rows"] == 30);
        CHECK(t["restored_rows"] == 30);
    }
    CHECK(saw_items);
    // Without the archive, the backup alone lacks the 10 items after it: the drill fails.
    std::filesystem::rename(dir / "app.db.archive", dir / "aside");
    r = run_cli(dir, fmt::format("--json drill '{}'", db.string()));
    CHECK(r.code == 1);
    CHECK(r.json()["ok"] == false);
}

TEST_CASE("cli.heal: heal --dry-run changes nothing and names the source, heal brings every item back", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    add_items(db, 21, 25);

    // Sound: nothing to heal, and nothing happens.
    auto r = run_cli(dir, fmt::format("--json heal '{}'", db.string()));
    CHECK(r.code == 0);
    CHECK(r.json()["healed"] == false);
    CHECK_FALSE(std::filesystem::exists(dir / "quarantine"));

    std::mt19937_64 rng{5};
    resilite::testing::overwrite_header(db, rng);
    const auto damaged = read_all(db);
    r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    CHECK(r.code == 0);
    auto j = r.json();
    CHECK(j["needed"] == true);
    CHECK(j["would_try_first"].get<std::string>().starts_with("backup app-"));
    CHECK(j["may_be_lost"].is_null());
    CHECK(j["would_move"].size() >= 1);
    CHECK(j["committed_seq"].get<std::int64_t>() == j["archive_last_seq"].get<std::int64_t>());
    CHECK(read_all(db) == damaged);  // nothing changed, nothing moved
    CHECK_FALSE(std::filesystem::exists(dir / "quarantine"));

    // Without the archive, the plan says what the high-water mark shows would be lost, and that a
    // heal refuses that loss (as the real heal does, unless healing.accept_loss_since_backup).
    std::filesystem::rename(dir / "app.db.archive", dir / "aside");
    r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    CHECK(r.code == 1);
    j = r.json();
    CHECK_FALSE(j["may_be_lost"].is_null());
    CHECK_FALSE(j["would_refuse"].is_null());
    CHECK(j["would_try_first"].is_null());
    std::filesystem::rename(dir / "aside", dir / "app.db.archive");

    r = run_cli(dir, fmt::format("--json heal '{}'", db.string()));
    REQUIRE(r.code == 2);  // healed; what it names is the secret column of the rows after the backup
    j = r.json();
    CHECK(j["healed"] == true);
    CHECK(j["may_be_lost"].get<std::string>().find("secret columns (items.token)") != std::string::npos);
    CHECK(j["backup_used"].get<std::string>().find("app-") != std::string::npos);
    CHECK(count_items(db) == 25);
    {
        // The secret column's values came from the backup (the archive never held them).
        resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
        CHECK(c.query_one<std::int64_t>("SELECT count(*) FROM items WHERE id <= 20 AND token = 'secret'") == 20);
    }
    {
        ItemsDb reopened{db};  // the application opens it again and goes on
        reopened.insert(Item{26, "after", 1.0, "s"});
    }
    CHECK(count_items(db) == 26);

    r = run_cli(dir, fmt::format("--json quarantine list '{}'", db.string()));
    CHECK(r.code == 0);
    j = r.json();
    REQUIRE(j["quarantines"].size() == 1);
    CHECK(j["quarantines"][0]["files"].size() >= 1);
    CHECK(run_cli(dir, fmt::format("heal '{}'", (dir / "none.db").string())).code == 1);
    CHECK(run_cli(dir, fmt::format("quarantine list '{}'", (dir / "none.db").string())).code == 1);

    // The file deleted (the sidecar knows it): an open refuses to guess whether on purpose, the
    // operator's heal brings it back.
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(db.string() + suffix);
    CHECK_THROWS_AS(ItemsDb{db}, resilite::error);
    r = run_cli(dir, fmt::format("--json heal '{}'", db.string()));
    CHECK(r.code == 2);
    CHECK(r.json()["healed"] == true);
    CHECK(count_items(db) == 26);
    CHECK(resilite::detail::read_marker(db).restore_requested.empty());
}

TEST_CASE("cli.heal: on a volume mounted read-only, check and health say sound, heal --dry-run says a heal would "
          "refuse, and backup, drill and heal --force fail at once with class read_only",
          "[cli]") {
    test::temp_dir dir;
    const test::small_volume volume{dir.path(), "8m"};
    if (!volume.mounted()) {
        WARN("cannot mount a small tmpfs here (needs root): the read-only volume is not exercised");
        return;
    }
    const auto db = volume.path() / "app.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    // Another database under a sidecar that names app.db's identity: still another database there.
    const auto other = volume.path() / "other.db";
    archived_database(other);
    std::filesystem::copy_file(resilite::detail::marker_path(db), resilite::detail::marker_path(other),
                               std::filesystem::copy_options::overwrite_existing);
    REQUIRE(volume.remount_read_only());
    {
        const auto o = run_cli(dir, fmt::format("check '{}'", other.string()));
        INFO(o.out << o.err);
        CHECK(o.code == 1);
        CHECK_THAT(o.out, Catch::Contains("different database"));
    }

    auto r = run_cli(dir, fmt::format("check '{}'", db.string()));
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    CHECK(r.json()["healthy"] == true);
    r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    CHECK(r.code == 1);
    CHECK_THAT(r.json()["would_refuse"].get<std::string>(), Catch::Contains("mounted read-only"));
    for (const char* sub : {"backup", "drill", "heal --force"}) {
        r = run_cli(dir, fmt::format("{} '{}'", sub, db.string()));
        INFO(sub << ": " << r.err);
        CHECK(r.code == 1);
        CHECK_THAT(r.err, Catch::Contains("class read_only") && Catch::Contains("mounted read-only"));
    }
    r = run_cli(dir, fmt::format("--json heal '{}'", db.string()));  // sound: left alone
    CHECK(r.code == 0);
    CHECK(r.json()["healed"] == false);
}

TEST_CASE("cli.heal: a database behind its archive (an older copy put back by hand) is found by heal --dry-run "
          "and drill, and healed with every commit",
          "[cli]") {
    // Before: "sound; nothing to heal" and "may be lost: nothing the evidence shows", while 15
    // acknowledged commits were in the archive and not in the file.
    test::temp_dir dir;
    const auto db = dir / "app.db";
    const auto older = dir / "older.db";
    {
        ItemsBackupDb d{db};
        for (int i = 1; i <= 30; ++i) {
            d.insert(Item{i, fmt::format("item {}", i), i * 0.25, "secret"});
            if (i == 10) static_cast<void>(d.backup_now());
            if (i == 15) {
                static_cast<void>(d.checkpoint(resilite::checkpoint_mode::truncate));
                std::filesystem::copy_file(db, older);
            }
        }
    }
    std::filesystem::copy_file(older, db, std::filesystem::copy_options::overwrite_existing);
    for (const char* suffix : {"-wal", "-shm"})
        std::filesystem::remove(db.string() + suffix);
    REQUIRE(count_items(db) == 15);

    auto r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.json()["behind_archive"].get<std::string>(), Catch::Contains("up to txn"));

    // Compared with the database, the report stops at its record, and says the database is
    // behind: not that the archive lost the records after it (it holds them).
    r = run_cli(dir, fmt::format("--json archive report '{}' --db '{}'", (dir / "app.db.archive").string(),
                                 db.string()));
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    bool behind = false;
    const auto report = r.json();
    for (const auto& p : report["problems"]) {
        const auto kind = p["kind"].get<std::string>();
        CHECK(kind != "sequence gap");
        behind = behind || kind == "database behind its archive";
    }
    CHECK(behind);

    r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    INFO(r.out << r.err);
    auto j = r.json();
    CHECK(j["needed"] == true);
    CHECK_THAT(j["found"].get<std::string>(), Catch::Contains("behind its archive"));
    CHECK(count_items(db) == 15);  // nothing changed

    // A drill compares at the database's own record (equal there), and says it is behind: a
    // drill that only said ok here hid 15 committed transactions missing from the file.
    r = run_cli(dir, fmt::format("--json drill '{}' --exclude items.token", db.string()));
    INFO(r.out << r.err);
    CHECK(r.code == 2);
    j = r.json();
    CHECK(j["ok"] == true);
    CHECK_THAT(j["behind"].get<std::string>(), Catch::Contains("behind its archive"));
    CHECK(count_items(db) == 15);

    r = run_cli(dir, fmt::format("--json heal '{}'", db.string()));
    INFO(r.out << r.err);
    CHECK(r.code == 2);  // healed; the secrets of rows after the backup are placeholders, and it says so
    j = r.json();
    CHECK(j["healed"] == true);
    CHECK(count_items(db) == 30);
}

TEST_CASE("cli.identity: check, health, metrics and heal call a different database at the path what open and "
          "backup call it, never sound",
          "[cli][identity]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    const auto other = dir / "other" / "other.db";  // another application's database, its own identity
    std::filesystem::create_directories(other.parent_path());
    archived_database(other);
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(db.string() + suffix);
    std::filesystem::copy_file(other, db);  // copied over ours; our sidecar stays
    const auto before = read_all(db);
    const auto quarantine = dir / "quarantine";

    // What the library's open (and so `resilite backup`) says: the words each command must use.
    const auto backup = run_cli(dir, fmt::format("backup '{}'", db.string()));
    CHECK(backup.code == 1);
    REQUIRE_THAT(backup.err, Catch::Contains("a different database is at this path"));

    for (const char* level : {"header", "quick", "full"}) {
        INFO(level);
        const auto r = run_cli(dir, fmt::format("--json check '{}' --level {}", db.string(), level));
        INFO(r.out << r.err);
        CHECK(r.code == 1);
        CHECK(r.json()["ok"] == false);
        CHECK_THAT(r.json()["detail"].get<std::string>(), Catch::Contains("a different database is at this path"));
    }
    {
        const auto r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
        INFO(r.out << r.err);
        CHECK(r.code == 1);
        CHECK(r.json()["healthy"] == false);
        CHECK_THAT(r.json()["damage"].get<std::string>(), Catch::Contains("a different database is at this path"));
    }
    {
        const auto r = run_cli(dir, fmt::format("metrics '{}' --prometheus", db.string()));
        INFO(r.out << r.err);
        CHECK(r.out.find(fmt::format("resilite_healthy{{database=\"{}\"}} 0", db.string())) != std::string::npos);
    }
    // A heal refuses it (open's refusal: another database at the path is not damage to heal), and
    // the plan says so.
    {
        const auto r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
        INFO(r.out << r.err);
        CHECK(r.code == 1);
        const auto j = r.json();
        CHECK(j["needed"] == true);
        CHECK_THAT(j["found"].get<std::string>(), Catch::Contains("a different database is at this path"));
        CHECK(j["would_try_first"].is_null());
        CHECK_FALSE(j["would_refuse"].is_null());
    }
    {
        const auto r = run_cli(dir, fmt::format("heal '{}'", db.string()));
        INFO(r.out << r.err);
        CHECK(r.code == 1);
        CHECK_THAT(r.err, Catch::Contains("a different database is at this path"));
    }
    CHECK(read_all(db) == before);  // none of them changed or moved it
    CHECK_FALSE(std::filesystem::exists(quarantine));

    // A plain SQLite database (no identity at all) where the sidecar names one: the same.
    for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(db.string() + suffix);
    {
        resilite::sqlite::connection c{db};
        c.exec_script("CREATE TABLE t(x); INSERT INTO t VALUES('stranger')");
    }
    const auto r = run_cli(dir, fmt::format("--json check '{}'", db.string()));
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.json()["detail"].get<std::string>(), Catch::Contains("not the database resilite keeps here"));
}

TEST_CASE("cli.health and cli.metrics --prometheus: what the files show, without the application", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    auto r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    CHECK(r.code == 0);
    auto j = r.json();
    CHECK(j["healthy"] == true);
    CHECK(j["backups"] == 0);
    CHECK(j["archive_seq"].get<std::int64_t>() >= 21);
    CHECK(j["archive_pending"] == 0);
    CHECK_FALSE(j.contains("operations"));  // a running process's counters are its own
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    CHECK(run_cli(dir, fmt::format("--json health '{}'", db.string())).json()["backups"] == 1);

    r = run_cli(dir, fmt::format("metrics '{}' --prometheus", db.string()));
    CHECK(r.code == 0);
    REQUIRE(r.out.ends_with("# EOF\n"));
    std::set<std::string> families;
    std::istringstream lines{r.out};
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("# TYPE ")) {
            families.insert(line.substr(7, line.find(' ', 7) - 7));
            continue;
        }
        if (line.starts_with("#")) continue;
        CAPTURE(line);
        CHECK(line.find(fmt::format("{{database=\"{}\"}} ", db.string())) != std::string::npos);
    }
    CHECK(families.contains("resilite_healthy"));
    CHECK(families.contains("resilite_backup_age_seconds"));
    CHECK(families.contains("resilite_archive_seq"));
    CHECK_FALSE(families.contains("resilite_operations"));

    std::mt19937_64 rng{3};
    resilite::testing::overwrite_header(db, rng);
    CHECK(run_cli(dir, fmt::format("--json health '{}'", db.string())).code == 1);
    CHECK(run_cli(dir, fmt::format("metrics '{}'", db.string())).out.find("resilite_healthy{") != std::string::npos);

    // The file gone, its sidecar left (a heal moved it, someone deleted it): reported missing,
    // with what the files still show, not refused as a path with nothing there.
    std::filesystem::remove(db);
    r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(r.json()["healthy"] == false);
    CHECK(r.json()["backups"] == 1);
    r = run_cli(dir, fmt::format("metrics '{}' --prometheus", db.string()));
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(r.out.find(fmt::format("resilite_healthy{{database=\"{}\"}} 0", db.string())) != std::string::npos);
    // Nothing there and no sidecar: bad input.
    CHECK(run_cli(dir, fmt::format("health '{}'", (dir / "none.db").string())).code == 1);
    CHECK(run_cli(dir, fmt::format("health '{}'", (dir / "none.db").string())).err.find("no database at") !=
          std::string::npos);
}

TEST_CASE("cli.settings: RESILITE_* variables and the settings file are checked as the application checks them by "
          "every subcommand that reads them, and what only the application's policies decide is the application's",
          "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    const auto file = dir / "settings.json";
    // Values the application refuses at open: refused here too, the health and metrics included.
    for (const auto& [env, cmd] : std::vector<std::pair<std::string, std::string>>{
             {"RESILITE_RETRY_CAP=1ms", "health"},
             {"RESILITE_BACKUP_KEEP_LAST=0", "metrics --prometheus"},
             {"RESILITE_RETRY_CAP=1ms", "backup"},
             {"RESILITE_RETRY_CAP=1ms", "heal --dry-run"}}) {
        const auto r = run_cli(dir, fmt::format("{} '{}'", cmd, db.string()), env);
        INFO(env << " " << cmd << ": " << r.err);
        CHECK(r.code == 1);
        CHECK(r.err.find("the settings from the environment") != std::string::npos);
    }
    { std::ofstream{file} << R"({"retry": {"base": "50ms", "cap": "10ms"}})"; }
    auto r = run_cli(dir, fmt::format("health '{}' --settings '{}'", db.string(), file.string()));
    CHECK(r.code == 1);
    CHECK(r.err.find("retry cap (10 ms) must be at least the base (50 ms)") != std::string::npos);
    // synchronous=NORMAL is the application's choice (its relaxed_durability<>): the same from
    // the environment and from the file, for every subcommand.
    { std::ofstream{file} << R"({"sync": "normal"})"; }
    r = run_cli(dir, fmt::format("--quiet backup '{}'", db.string()), "RESILITE_SYNC=normal");
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(run_cli(dir, fmt::format("--quiet backup '{}' --settings '{}'", db.string(), file.string())).code == 0);
    r = run_cli(dir, fmt::format("--json heal --dry-run '{}'", db.string()), "RESILITE_SYNC=normal");
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(run_cli(dir, fmt::format("health '{}'", db.string()), "RESILITE_SYNC=normal").code == 0);
}

TEST_CASE("cli.archive rebuild and replay: to a point in time, some tables, and a restored backup brought up to date",
          "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    const auto archive = dir / "app.db.archive";
    const auto last = run_cli(dir, fmt::format("--json archive verify '{}'", archive.string())).json()["last_seq"].get<std::int64_t>();

    auto r = run_cli(dir, fmt::format("--json archive rebuild '{}' '{}'", archive.string(), (dir / "all.db").string()));
    CHECK(r.code == 0);
    CHECK(count_items(dir / "all.db") == 20);
    // Never over an existing file.
    r = run_cli(dir, fmt::format("archive rebuild '{}' '{}'", archive.string(), (dir / "all.db").string()));
    CHECK(r.code == 1);
    CHECK(r.err_lines() == 1);

    // Up to 5 records before the end: the last 5 commits (the log line and items 17..20) are not there.
    r = run_cli(dir, fmt::format("--json archive rebuild '{}' '{}' --until {}", archive.string(),
                                 (dir / "then.db").string(), last - 5));
    CHECK(r.code == 0);
    CHECK(count_items(dir / "then.db") == 16);
    CHECK(count_items(dir / "then.db", "logs") == 0);
    // A time before every record: nothing to rebuild from.
    r = run_cli(dir, fmt::format("archive rebuild '{}' '{}' --until-time 2000-01-01T00:00:00Z", archive.string(),
                                 (dir / "none.db").string()));
    CHECK(r.code == 1);
    CHECK_FALSE(std::filesystem::exists(dir / "none.db"));
    CHECK(run_cli(dir, fmt::format("archive rebuild '{}' '{}' --until-time yesterday", archive.string(),
                                   (dir / "none.db").string()))
              .code == 1);
    r = run_cli(dir, fmt::format("archive rebuild '{}' '{}' --until-time 2999-01-01T00:00:00Z", archive.string(),
                                 (dir / "now.db").string()));
    CHECK(r.code == 0);
    CHECK(count_items(dir / "now.db") == 20);

    // Some tables only.
    r = run_cli(dir, fmt::format("--json archive rebuild '{}' '{}' --tables logs", archive.string(),
                                 (dir / "logs.db").string()));
    CHECK(r.code == 0);
    CHECK(count_items(dir / "logs.db", "logs") == 1);
    {
        resilite::sqlite::connection c{dir / "logs.db", SQLITE_OPEN_READONLY};
        CHECK(c.query_one<int>("SELECT count(*) FROM sqlite_master WHERE name = 'items'") == 0);
    }
    r = run_cli(dir, fmt::format("archive rebuild '{}' '{}' --tables nosuch", archive.string(),
                                 (dir / "bad.db").string()));
    CHECK(r.code == 1);
    CHECK(r.err.find("no table 'nosuch'") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "bad.db"));

    // A backup restored elsewhere, then brought up to date from the archive.
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    add_items(db, 21, 24);
    const auto backups = run_cli(dir, fmt::format("--json backups '{}'", db.string())).json();
    const auto copy = std::filesystem::path{db.string() + ".backups"} / backups["backups"][0]["name"].get<std::string>();
    std::filesystem::copy_file(copy, dir / "restored.db");
    CHECK(count_items(dir / "restored.db") == 20);
    r = run_cli(dir, fmt::format("--json archive replay '{}' '{}'", archive.string(), (dir / "restored.db").string()));
    CHECK(r.code == 0);
    CHECK(r.json()["applied_records"] == 4);
    CHECK(count_items(dir / "restored.db") == 24);
}


// The files a directory holds, with their contents (the command's own cli.out and cli.err left out).
std::map<std::string, std::string> files_in(const std::filesystem::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        const auto rel = std::filesystem::relative(e.path(), dir).string();
        if (rel == "cli.out" || rel == "cli.err") continue;
        out[rel] = e.is_regular_file() ? read_all(e.path()) : std::string{"(directory)"};
    }
    return out;
}

// Their names, for a failure's message.
std::string names_of(const std::map<std::string, std::string>& files) {
    std::string out;
    for (const auto& [name, text] : files)
        out += name + " ";
    return out;
}

TEST_CASE("cli.archive replay: another database's archive is refused before anything changes", "[cli][identity]") {
    test::temp_dir dir;
    std::filesystem::create_directories(dir / "x");
    std::filesystem::create_directories(dir / "y");
    const auto x = dir / "x" / "app.db", y = dir / "y" / "app.db";
    archived_database(x);
    {
        ItemsDb other{y};  // another database, with an archive of its own
        for (int i = 1; i <= 5; ++i)
            other.insert(Item{i, fmt::format("y {}", i), 1.0, "s"});
    }
    const auto before = files_in(dir / "y");
    const auto r = run_cli(dir, fmt::format("archive replay '{}' '{}'", (dir / "x" / "app.db.archive").string(),
                                            y.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("belongs to another database") != std::string::npos);
    CHECK(r.err.find("nothing was replayed") != std::string::npos);
    const auto after = files_in(dir / "y");  // (before a read-only look leaves its -wal and -shm)
    CAPTURE(names_of(before), names_of(after));
    CHECK(after == before);
    CHECK(count_items(y) == 5);
}

TEST_CASE("cli.restore: a backup unlike its manifest entry, or another database's, is refused and nothing moves, and "
          "the records rolled back are named from the archive the settings keep",
          "[cli][restore]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    const auto archive = dir / "kept-elsewhere.archive";
    const auto settings = dir / "settings.json";
    { std::ofstream{settings} << fmt::format(R"({{"archive": {{"directory": "{}"}}}})", archive.string()); }
    auto o = items_options();
    o.settings->archive.directory = archive.string();
    {
        ItemsDb d{db, o};
        for (int i = 1; i <= 5; ++i)
            d.insert(Item{i, fmt::format("item {}", i), i * 0.25, "secret"});
    }
    auto r = run_cli(dir, fmt::format("--json backup '{}' --settings '{}'", db.string(), settings.string()));
    REQUIRE(r.code == 0);
    const std::filesystem::path backup = r.json()["backup"].get<std::string>();
    {
        ItemsDb d{db, o};
        for (int i = 6; i <= 8; ++i)
            d.insert(Item{i, fmt::format("item {}", i), i * 0.25, "secret"});
    }
    // A copy changed after it was taken (one byte of a row's text: it still passes its checks).
    const auto changed = dir / "changed";
    std::filesystem::create_directory(changed);
    std::filesystem::copy_file(backup, changed / backup.filename());
    std::filesystem::copy_file(backup.parent_path() / "MANIFEST", changed / "MANIFEST");
    {
        std::fstream f{changed / backup.filename(), std::ios::in | std::ios::out | std::ios::binary};
        std::string bytes{std::istreambuf_iterator<char>{f}, {}};
        const auto at = bytes.find("item 3");
        REQUIRE(at != std::string::npos);
        f.seekp(static_cast<std::streamoff>(at + 5));
        f.put('X');
    }
    r = run_cli(dir, fmt::format("restore '{}' '{}' --force", (changed / backup.filename()).string(), db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("manifest"));
    CHECK(count_items(db) == 8);
    // Another database's backup.
    const auto other = dir / "other.db";
    add_items(other, 1, 2);
    r = run_cli(dir, fmt::format("--json backup '{}'", other.string()));
    REQUIRE(r.code == 0);
    r = run_cli(dir, fmt::format("restore '{}' '{}' --force", r.json()["backup"].get<std::string>(), db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("another database"));
    CHECK(count_items(db) == 8);
    // The commits the restore rolls back are in the archive the settings name.
    r = run_cli(dir, fmt::format("--json restore '{}' '{}' --force --settings '{}'", backup.string(), db.string(),
                                 settings.string()));
    CAPTURE(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(count_items(db) == 5);
    const auto rolled_back = r.json()["rolled_back_records"];
    REQUIRE(rolled_back.is_array());
    CHECK(rolled_back[1].get<std::int64_t>() - rolled_back[0].get<std::int64_t>() == 2);  // items 6 to 8
    r = run_cli(dir, fmt::format("archive replay '{}' '{}'", archive.string(), db.string()));
    CHECK(r.code == 0);
    CHECK(count_items(db) == 8);
}

TEST_CASE("cli.archive verify: a cut tail the high-water mark says committed is a fatal loss, not a torn tail",
          "[cli][archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    const auto archive = std::filesystem::path{db.string() + ".archive"};
    auto r = run_cli(dir, fmt::format("archive verify '{}'", archive.string()));
    REQUIRE(r.code == 0);
    const auto segment = archive / resilite::detail::archive::list_segments(archive).back();
    std::filesystem::resize_file(segment, std::filesystem::file_size(segment) - 40);  // the last record cut
    r = run_cli(dir, fmt::format("--json archive verify '{}'", archive.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.out, Catch::Contains("high-water mark"));
    // Without the database beside it, the archive alone cannot tell: a torn tail, a warning.
    const auto elsewhere = dir / "copy.archive";
    std::filesystem::copy(archive, elsewhere);
    CHECK(run_cli(dir, fmt::format("archive verify '{}'", elsewhere.string())).code == 2);
}

TEST_CASE("cli.backups: two databases of one file name sharing a backup directory each vouch only for their own "
          "copies, in backups and heal --dry-run",
          "[cli][backup]") {
    test::temp_dir dir;
    const auto shared = dir / "shared-backups";
    const auto settings = dir / "settings.json";
    { std::ofstream{settings} << fmt::format(R"({{"backup": {{"directory": "{}"}}}})", shared.string()); }
    std::filesystem::create_directories(dir / "a");
    std::filesystem::create_directories(dir / "b");
    const auto a = dir / "a" / "app.db";
    const auto b = dir / "b" / "app.db";
    add_items(a, 1, 3);
    add_items(b, 1, 7);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}' --settings '{}'", b.string(), settings.string())).code == 0);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}' --settings '{}'", a.string(), settings.string())).code == 0);

    auto r = run_cli(dir, fmt::format("--json backups '{}' --settings '{}'", a.string(), settings.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 2);  // one usable (its own), one not
    auto j = r.json();
    REQUIRE(j["backups"].size() == 2);
    int own = 0, other = 0;
    for (const auto& backup : j["backups"]) {
        const auto problem = backup["problem"].is_null() ? std::string{} : backup["problem"].get<std::string>();
        if (backup["usable"] == true) {
            ++own;
        } else {
            ++other;
            CHECK_THAT(problem, Catch::Contains("another database"));
        }
    }
    CHECK(own == 1);
    CHECK(other == 1);

    // a damaged: the plan names a's backup only, never b's (which holds 7 items, not 3).
    std::mt19937_64 rng{11};
    resilite::testing::overwrite_header(a, rng);
    r = run_cli(dir, fmt::format("--json heal '{}' --dry-run --settings '{}'", a.string(), settings.string()));
    CAPTURE(r.out, r.err);
    j = r.json();
    int usable = 0;
    for (const auto& source : j["sources"]) {
        const auto name = source["source"].get<std::string>();
        if (source["usable"] != true || !name.starts_with("backup ")) continue;
        ++usable;
        const auto used = shared / name.substr(7, name.find(' ', 7) - 7);
        CHECK(resilite::detail::identity_in_file(used) == resilite::detail::database_identity(a));
    }
    CHECK(usable == 1);
}

TEST_CASE("cli.heal: heal --dry-run never offers another database's archive as a source", "[cli][heal][identity]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    const auto other = dir / "other.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    add_items(db, 21, 25);
    archived_database(other);
    add_items(other, 21, 40);
    const auto archive = std::filesystem::path{db.string() + ".archive"};
    std::filesystem::remove_all(archive);
    std::filesystem::copy(std::filesystem::path{other.string() + ".archive"}, archive);
    std::mt19937_64 rng{3};
    resilite::testing::overwrite_header(db, rng);
    auto r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);  // the backup alone lacks the commits after it: a heal would refuse
    const auto j = r.json();
    CHECK(j["would_try_first"].is_null());
    CHECK_FALSE(j["may_be_lost"].is_null());
    bool named = false;
    for (const auto& source : j["sources"]) {
        CHECK(source["usable"] == false);
        if (source["detail"].get<std::string>().find("belongs to another database") != std::string::npos) named = true;
    }
    CHECK(named);
}

TEST_CASE("cli.restore: a target that is a directory is refused and nothing moves", "[cli][restore]") {
    test::temp_dir dir;
    const auto srv = dir / "srv" / "app";
    std::filesystem::create_directories(srv);
    const auto db = srv / "app.db";
    archived_database(db);
    { std::ofstream{srv / "other.conf"} << "other service config\n"; }
    auto r = run_cli(dir, fmt::format("--json backup '{}'", db.string()));
    REQUIRE(r.code == 0);
    const std::filesystem::path backup = r.json()["backup"].get<std::string>();
    const auto before = files_in(dir / "srv");
    r = run_cli(dir, fmt::format("restore '{}' '{}'", backup.string(), srv.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK(r.err.find("is a directory") != std::string::npos);
    CHECK(files_in(dir / "srv") == before);  // nothing moved into a quarantine, nothing written
    // --force changes nothing about it.
    r = run_cli(dir, fmt::format("restore '{}' '{}' --force", backup.string(), srv.string()));
    CHECK(r.code == 1);
    CHECK(files_in(dir / "srv") == before);
}

TEST_CASE("cli.heal: a file that is not a database and has no sidecar is refused and nothing is created",
          "[cli][heal]") {
    test::temp_dir dir;
    std::filesystem::create_directories(dir / "etc");
    const auto conf = dir / "etc" / "app.conf";
    for (const std::string& text : {std::string{"key=value\nimportant config\n"}, std::string(4096, 'x')}) {
        write_all(conf, text);
        const auto before = files_in(dir / "etc");
        for (const char* flags : {"", "--json", "--force"}) {
            const auto r = run_cli(dir, fmt::format("heal '{}' {}", conf.string(), flags));
            CAPTURE(text.size(), flags, r.out, r.err);
            CHECK(r.code == 1);
            CHECK(r.out.empty());
            CHECK(r.err_lines() == 1);
            CHECK(r.err.find("not an SQLite database") != std::string::npos);
            CHECK(files_in(dir / "etc") == before);  // no quarantine, sidecar, gate, lock, log or audit file
            CHECK_FALSE(std::filesystem::exists(dir / "quarantine"));
        }
        CHECK(run_cli(dir, fmt::format("check '{}'", conf.string())).code == 1);
    }
}

TEST_CASE("cli.errors: an error with a report prints the report's lines on stderr", "[cli][heal]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    std::filesystem::remove_all(dir / "app.db.archive");  // no archive and no backup: no source
    std::mt19937_64 rng{3};
    resilite::testing::overwrite_header(db, rng);
    for (const char* flags : {"", "--json "}) {
        const auto r = run_cli(dir, fmt::format("{}heal '{}'", flags, db.string()));
        CAPTURE(flags, r.out, r.err);
        CHECK(r.code == 1);
        CHECK(r.err.rfind("resilite: ", 0) == 0);
        CHECK(r.err.find("technical().report") == std::string::npos);
        CHECK(r.err.find("sources tried:") != std::string::npos);
        CHECK(r.err.find("to recover by hand:") != std::string::npos);
        CHECK(r.err_lines() > 3);
    }
}

TEST_CASE("cli.heal: heal reset works when the database file is gone and its sidecar remains (where the circuit "
          "breaker points the operator)",
          "[cli][heal]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    auto side = resilite::detail::read_marker(db);
    side.heal_attempts = 3;  // 3 heals killed or failed in a row: healing stopped
    REQUIRE(resilite::detail::write_marker(db, side));
    std::filesystem::remove(db);  // (moved into quarantine by a heal that did not finish)
    const auto r = run_cli(dir, fmt::format("--json heal reset '{}'", db.string()));
    CAPTURE(r.out, r.err);
    REQUIRE(r.code == 0);
    CHECK(r.json()["reset"] == true);
    CHECK(r.json()["heal_attempts_before"] == 3);
    CHECK(resilite::detail::read_marker(db).heal_attempts == 0);
    CHECK(read_marker_unchanged_except_attempts(side, resilite::detail::read_marker(db)));
    CHECK_FALSE(std::filesystem::exists(db));  // nothing else changed: no database is made up
}

TEST_CASE("cli.health: the changes not yet archived are counted from one snapshot: none on a sound archived "
          "database, and those that wait when some do",
          "[cli][archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    auto r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 0);
    CHECK(r.json()["archive_pending"] == 0);
    {  // two captured changes the archive has not taken yet (a batched archive between flushes)
        resilite::sqlite::connection c{db};
        c.exec_script(
            "INSERT INTO resilite_archive_outbox(id, template, stmt) SELECT max(id) + 1, NULL, '-- a' FROM "
            "resilite_archive_outbox;"
            "INSERT INTO resilite_archive_outbox(id, template, stmt) SELECT max(id) + 1, NULL, '-- b' FROM "
            "resilite_archive_outbox;");
    }
    r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    CHECK(r.code == 2);
    CHECK(r.json()["archive_pending"] == 2);
}

TEST_CASE("cli.heal: a sound database holding changes its archive has not received (another program's, captured) "
          "is not healed without them: heal --dry-run says a heal would refuse, heal --force refuses and changes "
          "nothing",
          "[cli][heal]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    {
        resilite::sqlite::connection c{db, SQLITE_OPEN_READWRITE};  // another program, captured by the triggers
        c.exec_script("DELETE FROM items WHERE id <= 3; UPDATE items SET name = 'changed' WHERE id = 12;");
    }
    REQUIRE(count_items(db) == 17);
    auto r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    auto j = r.json();
    CHECK(j["would_try_first"].is_null());
    CHECK(j["would_refuse"].get<std::string>().find("4 captured changes its archive has not received") !=
          std::string::npos);
    r = run_cli(dir, fmt::format("heal '{}' --force", db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK(r.err.find("4 captured changes its archive has not received") != std::string::npos);
    CHECK(count_items(db) == 17);
    resilite::sqlite::connection c{db, SQLITE_OPEN_READONLY};
    CHECK(c.query_one<std::string>("SELECT name FROM items WHERE id = 12") == "changed");
}

TEST_CASE("cli.links: a backup or archive directory that is a symbolic link is said to be one (never followed), not "
          "reported as holding no backup or no record",
          "[cli][backup][archive]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    REQUIRE(run_cli(dir, fmt::format("--quiet backup '{}'", db.string())).code == 0);
    std::filesystem::rename(dir / "app.db.backups", dir / "real-backups");
    std::filesystem::create_directory_symlink(dir / "real-backups", dir / "app.db.backups");
    std::filesystem::rename(dir / "app.db.archive", dir / "real-archive");
    std::filesystem::create_directory_symlink(dir / "real-archive", dir / "app.db.archive");
    auto r = run_cli(dir, fmt::format("backups '{}'", db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.code == 1);
    CHECK(r.err.find("is a symbolic link; resilite never follows one") != std::string::npos);
    r = run_cli(dir, fmt::format("archive verify '{}'", (dir / "app.db.archive").string()));
    CHECK(r.code == 1);
    CHECK(r.err.find("is a symbolic link; resilite never follows one") != std::string::npos);
    r = run_cli(dir, fmt::format("health '{}'", db.string()));
    CHECK(r.out.find("backups: " + (dir / "app.db.backups").string() + " is a symbolic link") != std::string::npos);
    CHECK(r.out.find("no backup in") == std::string::npos);
    r = run_cli(dir, fmt::format("--json heal '{}' --dry-run", db.string()));
    const auto plan = r.json();
    int links = 0;
    for (const auto& src : plan["sources"])
        links += src["detail"].get<std::string>().find("is a symbolic link") != std::string::npos ? 1 : 0;
    CHECK(links == 2);
}

TEST_CASE("cli.health: the text names the processes that have the database open, as the JSON does", "[cli]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    archived_database(db);
    auto r = run_cli(dir, fmt::format("health '{}'", db.string()));
    CAPTURE(r.out, r.err);
    CHECK(r.out.find("open by no other process") != std::string::npos);
    ItemsDb open{db};
    r = run_cli(dir, fmt::format("health '{}'", db.string()));
    CHECK(r.out.find(fmt::format("open by process {}\n", ::getpid())) != std::string::npos);
    r = run_cli(dir, fmt::format("--json health '{}'", db.string()));
    const auto j = r.json();
    REQUIRE(j["open_by_pids"].size() == 1);
    CHECK(j["open_by_pids"][0].get<long>() == static_cast<long>(::getpid()));
}

TEST_CASE("cli.backups: a backup being taken is never reported NOT USABLE while it is put in place (its manifest "
          "entry is written before its file has its name)",
          "[cli][backup]") {
    test::temp_dir dir;
    const auto db = dir / "app.db";
    auto o = archive_options<ItemsBackupDb>();
    int promotions = 0;
    std::vector<cli_result> seen;
    // At the point where a backup flow is between its two writes (the manifest line, the name),
    // the operator's `backups` runs.
    o.inject_failure = [&](std::string_view operation, int) {
        if (operation == "backup:promote") {
            ++promotions;
            seen.push_back(run_cli(dir, fmt::format("--json backups '{}'", db.string())));
        }
        return SQLITE_OK;
    };
    ItemsBackupDb d{db, o};
    d.insert(Item{1, "one", 1.0, "secret"});
    static_cast<void>(d.backup_now());
    d.insert(Item{2, "two", 2.0, "secret"});
    static_cast<void>(d.backup_now());
    REQUIRE(promotions == 2);
    for (const auto& r : seen) {
        CAPTURE(r.out, r.err);
        const auto j = r.json();
        for (const auto& b : j["backups"])
            CHECK(b["usable"] == true);
    }
    CHECK(seen[1].code == 0);  // (at the first, no backup was there yet: 1)
    CHECK(run_cli(dir, fmt::format("--json backups '{}'", db.string())).json()["backups"].size() == 2);
}

}  // namespace cli_resilite_tests
