// The `resilite` command, run as an operator runs it: the real binary on real files, its exit
// codes, its JSON (parsed, not grepped) and the files it leaves.
#include "archive_support.hpp"

#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <random>
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
cli_result run_cli(const test::temp_dir& dir, const std::string& args) {
    const auto out = dir / "cli.out", err = dir / "cli.err";
    const auto cmd = fmt::format("'{}' {} > '{}' 2> '{}'", RESILITE_CLI_PATH, args, out.string(), err.string());
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_all(out), read_all(err)};
}

// reset_healing changes nothing in the sidecar but the count of heals that did not succeed.
bool read_marker_unchanged_except_attempts(const resilite::detail::marker& before,
                                           const resilite::detail::marker& after) {
    return before.identity == after.identity && before.synchronous == after.synchronous &&
           before.heal_quarantine == after.heal_quarantine && before.heal_epoch == after.heal_epoch &&
           before.damage_seen == after.damage_seen;
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
    for (const char* sub : {"check", "archive", "heal"})
        CHECK(r.out.find(sub) != std::string::npos);
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

    // A row the archive does not hold (written behind resilite's back): critical, and named.
    {
        resilite::sqlite::connection c{db};
        c.exec("INSERT INTO logs(msg) VALUES('behind its back')");
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

}  // namespace cli_resilite_tests
