// Off the machine: backups and archive segments copied to an rclone remote (a real one: `rclone
// serve webdav` on loopback), the lag in health(), an unreachable remote, and a heal on a machine
// that lost its backups and archive fetching them back.
#include "archive_support.hpp"

#include <resilite/archive/repair_archive.hpp>
#include <resilite/testing/corruption.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace backup_offsite_tests {

using namespace test::archive;
using namespace std::chrono_literals;

namespace {

// A port nobody listens on now (the kernel's choice).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t n = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
    ::close(fd);
    return ntohs(a.sin_port);
}

bool accepting(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// `rclone serve webdav ROOT` on 127.0.0.1, for as long as the object lives.
class webdav_server {
public:
    explicit webdav_server(std::filesystem::path root) : root_(std::move(root)), port_(free_port()) {
        std::filesystem::create_directories(root_);
        pid_ = ::fork();
        if (pid_ == 0) {
            const auto addr = fmt::format("127.0.0.1:{}", port_);
            ::execlp("rclone", "rclone", "serve", "webdav", root_.c_str(), "--addr", addr.c_str(), "-q",
                     static_cast<char*>(nullptr));
            std::_Exit(127);
        }
        // Ready when it accepts a connection; the wait ends on that event or on the server's exit,
        // however long a loaded machine takes (ctest's timeout bounds a hang).
        bool exited = false;
        while (!accepting(port_)) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                exited = true;
                pid_ = -1;
                break;
            }
            std::this_thread::yield();
        }
        REQUIRE_FALSE(exited);
    }
    webdav_server(const webdav_server&) = delete;
    webdav_server& operator=(const webdav_server&) = delete;
    ~webdav_server() { stop(); }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    [[nodiscard]] std::string remote() const { return fmt::format(":webdav,url='http://127.0.0.1:{}':app", port_); }
    // The database's folder on the remote: <remote>/<database file name>/<kind>.
    [[nodiscard]] std::filesystem::path folder(std::string_view kind) const { return root_ / "app" / "app.db" / kind; }

private:
    std::filesystem::path root_;
    int port_;
    pid_t pid_ = -1;
};

using OffsiteDb = resilite::Database<resilite::schema<items, logs>, resilite::archive<>,
                                     resilite::backup<resilite::online_backup<>, resilite::on_demand>,
                                     resilite::healing<>, common, test::manual_durability, resilite::manual_clock>;

// Copies off the machine every 60 s of the manual clock, to `remote`.
OffsiteDb::options offsite_options(const resilite::manual_clock& clock, const std::string& remote) {
    OffsiteDb::options o;
    o.clock = clock;
    o.settings = OffsiteDb::default_settings();
    o.settings->offsite.remote = remote;
    o.settings->offsite.interval = 60s;
    o.settings->offsite.timeout = 60s;
    return o;
}

// Where the real rclone is (a test puts one of its own before it on PATH).
std::string real_rclone() {
    std::string real;
    const std::unique_ptr<FILE, int (*)(FILE*)> p{::popen("command -v rclone", "r"), &::pclose};
    REQUIRE(p);
    char buf[4096] = {};
    REQUIRE(std::fgets(buf, sizeof buf, p.get()) != nullptr);
    real = buf;
    while (!real.empty() && (real.back() == '\n' || real.back() == '\r'))
        real.pop_back();
    return real;
}

// A database whose archive, one segment, went off the machine in one round: 5 items.
struct shipped_once {
    test::temp_dir dir;
    std::unique_ptr<webdav_server> server = std::make_unique<webdav_server>(dir / "remote");
    resilite::manual_clock clock;
    OffsiteDb db{dir / "app.db", offsite_options(clock, server->remote())};
    std::filesystem::path archive = dir / "app.db.archive";
    std::string name;    // the segment
    std::string copied;  // its bytes on the remote

    shipped_once() {
        for (int i = 1; i <= 5; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
        static_cast<void>(db.maintain());
        REQUIRE(db.health().offsite_pending == 0);
        name = resilite::detail::archive::list_segments(archive).front();
        copied = read_all(server->folder("archive") / name);
        REQUIRE(copied == read_all(archive / name));
    }
};

// `bin` first on PATH (a test's own rclone before the real one), for as long as it lives.
struct path_first {
    std::string old = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
    explicit path_first(const std::filesystem::path& bin) { ::setenv("PATH", (bin.string() + ":" + old).c_str(), 1); }
    path_first(const path_first&) = delete;
    path_first& operator=(const path_first&) = delete;
    ~path_first() { ::setenv("PATH", old.c_str(), 1); }
};

std::int64_t items_in(OffsiteDb& db) { return db.query_one<std::int64_t>("SELECT count(*) FROM items").value_or(-1); }

}  // namespace

TEST_CASE("offsite: backups and archive segments go to an rclone remote, health shows the lag, an unreachable "
          "remote costs local work nothing, a heal on a machine that lost both fetches them back",
          "[backup][offsite]") {
    REQUIRE(std::system("command -v rclone >/dev/null 2>&1") == 0);  // (scripts/install-deps.sh installs it)
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto remote_root = dir / "remote";
    auto server = std::make_unique<webdav_server>(remote_root);
    test::event_log log;
    resilite::manual_clock clock;
    auto o = offsite_options(clock, server->remote());
    o.observer = log.observer();
    {
        OffsiteDb db{path, o};
        for (int i = 1; i <= 10; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
        // A backup goes off the machine with the manifest, as soon as it is taken.
        const auto b = db.backup_now();
        CHECK(b.offsite_error.empty());
        CHECK(read_all(server->folder("backups") / b.path.filename()) == read_all(b.path));
        CHECK(std::filesystem::exists(server->folder("backups") / "MANIFEST"));
        // The archive's segments, byte for byte (the backup's round took them too).
        const auto segments = resilite::detail::archive::list_segments(dir / "app.db.archive");
        REQUIRE_FALSE(segments.empty());
        for (const auto& s : segments)
            CHECK(read_all(server->folder("archive") / s) == read_all(dir / "app.db.archive" / s));
        auto h = db.health();
        CHECK(h.offsite_enabled);
        CHECK(h.offsite_pending == 0);
        CHECK_FALSE(h.offsite_lag.has_value());
        CHECK(h.last_offsite_time.has_value());
        CHECK(h.offsite_error.empty());

        // A commit since: the current segment waits for the next round, and the lag grows.
        db.insert(Item{11, "item 11", 5.5, "t"});
        h = db.health();
        CHECK(h.offsite_pending == 1);
        clock.advance(30s);
        CHECK(db.health().offsite_lag == std::chrono::seconds{30});
        static_cast<void>(db.maintain());  // not due yet
        CHECK(db.health().offsite_pending == 1);
        clock.advance(30s);
        static_cast<void>(db.maintain());
        h = db.health();
        CHECK(h.offsite_pending == 0);
        CHECK_FALSE(h.offsite_lag.has_value());
        for (const auto& s : resilite::detail::archive::list_segments(dir / "app.db.archive"))
            CHECK(read_all(server->folder("archive") / s) == read_all(dir / "app.db.archive" / s));

        // The remote goes away: commits and backups go on locally; health says what waits and why.
        server->stop();
        log.clear();
        for (int i = 12; i <= 15; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
        const auto late = db.backup_now();
        CHECK(std::filesystem::exists(late.path));
        CHECK(late.offsite_error.find("copying") != std::string::npos);
        clock.advance(60s);
        static_cast<void>(db.maintain());
        h = db.health();
        CHECK(h.offsite_pending >= 2);  // the backup and the current segment
        CHECK(h.offsite_error.find("connection refused") != std::string::npos);
        CHECK(h.offsite_lag.has_value());
        CHECK(items_in(db) == 15);
        const auto events = log.events();
        CHECK(std::any_of(events.begin(), events.end(), [](const auto& e) {
            return e.name == "offsite" && e.result == resilite::outcome::warning;
        }));

        // Back (at another address): the next round copies everything that waited.
        server = std::make_unique<webdav_server>(remote_root);
        auto s = db.current_settings();
        s.offsite.remote = server->remote();
        db.reconfigure(s);
        clock.advance(60s);
        static_cast<void>(db.maintain());
        h = db.health();
        CHECK(h.offsite_pending == 0);
        CHECK(h.offsite_error.empty());
        CHECK(std::filesystem::exists(server->folder("backups") / late.path.filename()));
    }
    o.settings->offsite.remote = server->remote();

    // A dead disk: the backups and the archive are gone, and the database is damaged.
    std::filesystem::remove_all(dir / "app.db.backups");
    std::filesystem::remove_all(dir / "app.db.archive");
    std::mt19937_64 rng{9};
    resilite::testing::overwrite_header(path, rng);
    {
    OffsiteDb healed{path, o};  // healed at open, from what came back
    CHECK(items_in(healed) == 15);
    const auto rep = healed.last_heal();
    REQUIRE(rep.has_value());
    INFO(rep->to_text());
    // No commit missing; what it names is the secret column of the rows after the backup (never
    // archived, so no heal can bring it back).
    CHECK(rep->may_be_lost.find("secret columns (items.token)") != std::string::npos);
    CHECK(rep->may_be_lost.find("record") == std::string::npos);
    REQUIRE(rep->committed_seq.has_value());
    REQUIRE(rep->healed_seq.has_value());
    CHECK(*rep->healed_seq >= *rep->committed_seq);
    CHECK(std::any_of(rep->sources.begin(), rep->sources.end(), [](const auto& s) {
        return s.source.starts_with("off the machine") && s.detail.find("fetched the archive and the backups") != std::string::npos;
    }));
    CHECK(std::filesystem::exists(dir / "app.db.archive"));
    // What the healed database wrote since (the heal's audit entry) goes off the machine at the
    // next round: without it, the high-water mark would show records the remote lacks, and the
    // next heal from the remote would rightly refuse.
    clock.advance(60s);
    static_cast<void>(healed.maintain());
    CHECK(healed.health().offsite_pending == 0);
    }

#ifdef RESILITE_CLI_PATH
    // The operator's command, given the application's settings file, fetches the same way.
    std::filesystem::remove_all(dir / "app.db.backups");
    std::filesystem::remove_all(dir / "app.db.archive");
    resilite::testing::overwrite_header(path, rng);
    { std::ofstream{dir / "settings.json"} << fmt::format(R"({{"offsite": {{"remote": "{}"}}}})", server->remote()); }
    const auto out = dir / "cli.out";
    const int status = std::system(fmt::format("'{}' --json heal '{}' --settings '{}' > '{}' 2>&1", RESILITE_CLI_PATH,
                                               path.string(), (dir / "settings.json").string(), out.string())
                                       .c_str());
    CAPTURE(read_all(out));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);  // healed; the secret column of the rows after the backup is named
    CHECK(read_all(out).find("fetched the archive and the backups") != std::string::npos);
    {
        OffsiteDb again{path, o};
        CHECK(items_in(again) == 15);
    }

    // A new machine: the database, its sidecar, backups and archive all gone with the old disk.
    // The command finds the remote's copies for this database name and restores from them,
    // saying that the last interval before the loss may be missing (nothing here can tell).
    test::temp_dir fresh;
    { std::ofstream{fresh / "settings.json"} << fmt::format(R"({{"offsite": {{"remote": "{}"}}}})", server->remote()); }
    const auto run_heal = [&](const std::filesystem::path& db) {
        const auto result = fresh / "cli.out";
        const int st = std::system(fmt::format("'{}' --json heal '{}' --settings '{}' > '{}' 2> '{}.err'", RESILITE_CLI_PATH,
                                               db.string(), (fresh / "settings.json").string(), result.string(),
                                               result.string())
                                       .c_str());
        return std::pair{WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_all(result) + read_all(result.string() + ".err")};
    };
    // A name the remote holds no copy of: refused, and no sidecar is left behind.
    auto [code, text] = run_heal(fresh / "other.db");
    CAPTURE(text);
    CHECK(code == 1);
    CHECK(text.find("the remote holds no copy") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(resilite::detail::marker_path(fresh / "other.db")));
    std::tie(code, text) = run_heal(fresh / "app.db");
    CAPTURE(text);
    CHECK(code == 2);
    const auto j = nlohmann::json::parse(text.substr(0, text.find('\n')));
    CHECK(j["healed"] == true);
    CHECK(j["may_be_lost"].get<std::string>().find("before this machine lost its archive") != std::string::npos);
    {
        OffsiteDb restored{fresh / "app.db", o};
        CHECK(items_in(restored) == 15);
    }
#endif

    // Another database of the same name never writes into this one's folder on the remote (a
    // new empty database where a lost one was would otherwise replace the copies a heal needs).
    test::temp_dir other;
    const auto manifest_before = read_all(server->folder("backups") / "MANIFEST");
    OffsiteDb stranger{other / "app.db", o};
    stranger.insert(Item{1, "x", 1.0, "t"});
    const auto b = stranger.backup_now();
    CHECK(b.offsite_error.find("holds the copies of another database") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(server->folder("backups") / b.path.filename()));
    CHECK(read_all(server->folder("backups") / "MANIFEST") == manifest_before);
    CHECK(stranger.health().offsite_error.find("another database") != std::string::npos);
}

TEST_CASE("offsite: what went off the machine and the backup still waiting are remembered across a restart",
          "[backup][offsite]") {
    REQUIRE(std::system("command -v rclone >/dev/null 2>&1") == 0);
    test::temp_dir dir;
    const auto path = dir / "app.db";
    auto server = std::make_unique<webdav_server>(dir / "remote");
    resilite::manual_clock clock;
    auto o = offsite_options(clock, server->remote());
    {
        OffsiteDb db{path, o};
        for (int i = 1; i <= 5; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
        CHECK(db.backup_now().offsite_error.empty());
        CHECK(db.health().offsite_pending == 0);
    }
    {
        // Reopened: the segments copied before are not waiting again.
        OffsiteDb db{path, o};
        CHECK(db.health().offsite_pending == 0);
        // A backup whose copy fails (the remote is down), then a restart.
        server->stop();
        const auto b = db.backup_now();
        CHECK_FALSE(b.offsite_error.empty());
        CHECK(db.health().offsite_pending >= 1);
    }
    server = std::make_unique<webdav_server>(dir / "remote");
    o.settings->offsite.remote = server->remote();
    {
        OffsiteDb db{path, o};
        CHECK(db.health().offsite_pending >= 1);  // the backup still waits, after the restart
        static_cast<void>(db.maintain());          // the first round is due at once
        CHECK(db.health().offsite_pending == 0);
        std::size_t copies = 0;
        for (const auto& e : std::filesystem::directory_iterator(server->folder("backups")))
            copies += e.path().extension() == ".db" ? 1 : 0;
        CHECK(copies == 2);
    }

    // A record damaged here, then the archive repaired: the remote's intact copy of the segment is
    // moved aside there, never overwritten by the cut one.
    const auto archive = dir / "app.db.archive";
    const auto name = resilite::detail::archive::list_segments(archive).front();
    const auto intact = read_all(server->folder("archive") / name);
    REQUIRE(intact == read_all(archive / name));
    auto damaged = intact;
    damaged[damaged.find("'item 3'") + 1] = 'I';
    write_all(archive / name, damaged);
    resilite::repair_options stopped;
    stopped.writers_stopped = true;
    REQUIRE(resilite::repair_archive(archive, stopped).repaired.size() == 1);
    OffsiteDb db{path, o};
    clock.advance(60s);
    static_cast<void>(db.maintain());
    CHECK(db.health().offsite_pending == 0);
    bool kept = false;
    for (const auto& e : std::filesystem::recursive_directory_iterator(server->folder("") / "replaced"))
        kept = kept || (e.path().filename() == name && read_all(e.path()) == intact);
    CHECK(kept);
}


TEST_CASE("offsite: a segment damaged in place here, or cut and grown again, never overwrites the remote's intact "
          "copy: that one is moved aside first",
          "[backup][offsite]") {
    REQUIRE(std::system("command -v rclone >/dev/null 2>&1") == 0);
    shipped_once s;
    auto& server = s.server;
    auto& clock = s.clock;
    auto& db = s.db;
    const auto& archive = s.archive;
    const auto& name = s.name;
    const auto& intact = s.copied;
    const auto kept_aside = [&](const std::string& wanted) {
        std::error_code ec;
        if (!std::filesystem::exists(server->folder("") / "replaced", ec)) return false;
        for (const auto& e : std::filesystem::recursive_directory_iterator(server->folder("") / "replaced"))
            if (e.path().filename() == name && read_all(e.path()) == wanted) return true;
        return false;
    };
    SECTION("one byte of a record damaged in place (same size, same file)") {
        auto damaged = intact;
        damaged[damaged.find("'item 3'") + 1] = 'I';
        {
            std::fstream f{archive / name, std::ios::in | std::ios::out | std::ios::binary};
            f.write(damaged.data(), static_cast<std::streamsize>(damaged.size()));
        }
        db.insert(Item{6, "item 6", 3.0, "t"});  // the segment grows past its copied size too
    }
    SECTION("cut in place, then grown again past its copied size") {
        std::filesystem::resize_file(archive / name, intact.size() / 2);
        { std::ofstream{archive / name, std::ios::app} << std::string(intact.size(), '\n'); }
    }
    clock.advance(60s);
    static_cast<void>(db.maintain());
    CHECK(kept_aside(intact));
}

TEST_CASE("offsite: a copy cut short (the machine dies mid-upload) never truncates the remote's earlier copy of a "
          "segment",
          "[backup][offsite]") {
    REQUIRE(std::system("command -v rclone >/dev/null 2>&1") == 0);
    shipped_once s;
    auto& server = s.server;
    const auto& dir = s.dir;
    auto& clock = s.clock;
    auto& db = s.db;
    const auto& archive = s.archive;
    const auto& name = s.name;
    const auto& first = s.copied;

    // An rclone that dies halfway through copying a file to a name ending in the segment's: the
    // first half of the bytes land where the copy was going, and it fails.
    const auto bin = dir / "bin";
    std::filesystem::create_directories(bin);
    const auto real = real_rclone();
    {
        std::ofstream w{bin / "rclone"};
        w << "#!/bin/bash\n"
          << "if [ \"$1\" = copyto ] && [[ \"$3\" == *" << name << "* ]]; then\n"
          << "  half=$(mktemp); head -c $(( $(stat -c %s \"$2\") / 2 )) \"$2\" > \"$half\"\n"
          << "  " << real << " copyto \"$half\" \"$3\" \"${@:4}\"; rm -f \"$half\"; exit 1\n"
          << "fi\n"
          << "exec " << real << " \"$@\"\n";
    }
    std::filesystem::permissions(bin / "rclone", std::filesystem::perms::owner_all);
    {
        const path_first dying{bin};
        for (int i = 6; i <= 40; ++i)
            db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
        clock.advance(60s);
        static_cast<void>(db.maintain());
    }
    CHECK(db.health().offsite_pending > 0);  // the copy failed: still waiting
    CHECK(read_all(server->folder("archive") / name) == first);  // what was off the machine still is

    clock.advance(60s);
    static_cast<void>(db.maintain());
    CHECK(db.health().offsite_pending == 0);
    CHECK(read_all(server->folder("archive") / name) == read_all(archive / name));
}

TEST_CASE("offsite: a fetch killed midway leaves no cut file under a copy's name (rclone writes in place: the next "
          "heal would take it for the copy and reject it), a whole one is moved in, a local file is never overwritten",
          "[backup][offsite]") {
    test::temp_dir dir;
    // An rclone that writes into its destination (argument 3) and then dies, or finishes.
    const auto bin = dir / "bin";
    const auto die = dir / "die";
    std::filesystem::create_directories(bin);
    write_all(bin / "rclone", fmt::format("#!/bin/sh\n"
                                          "printf 'cut' > \"$3/app-20261207T000000.000Z.db\"\n"
                                          "[ -f '{}' ] && kill -9 $$\n"
                                          "printf 'whole' > \"$3/app-20261207T000000.000Z.db\"\n"
                                          "printf 'remote' > \"$3/MANIFEST\"\n"
                                          "exit 0\n",
                                          die.string()));
    std::filesystem::permissions(bin / "rclone", std::filesystem::perms::owner_all);
    const path_first fake{bin};
    resilite::offsite_settings s;
    s.remote = "remote:folder";
    const auto backups = dir / "app.db.backups";
    // Staging left by fetches whose process is gone: removed once older than two timeouts (a
    // younger one may be another PID namespace's fetch in progress).
    std::filesystem::create_directories(backups / ".fetch-999999999-0");
    std::filesystem::create_directories(backups / ".fetch-999999999-1");
    std::filesystem::last_write_time(backups / ".fetch-999999999-0",
                                     std::filesystem::file_time_type::clock::now() - 3 * s.timeout);
    write_all(die, "");
    CHECK_FALSE(resilite::detail::offsite_fetch(s, dir / "app.db", "backups", backups).empty());
    CHECK_FALSE(std::filesystem::exists(backups / "app-20261207T000000.000Z.db"));
    CHECK_FALSE(std::filesystem::exists(backups / ".fetch-999999999-0"));
    CHECK(std::filesystem::exists(backups / ".fetch-999999999-1"));
    std::filesystem::remove(die);
    write_all(backups / "MANIFEST", "local");
    CHECK(resilite::detail::offsite_fetch(s, dir / "app.db", "backups", backups).empty());
    CHECK(read_all(backups / "app-20261207T000000.000Z.db") == "whole");
    CHECK(read_all(backups / "MANIFEST") == "local");
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(backups))
        left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    CHECK(left == std::vector<std::string>{".fetch-999999999-1", "MANIFEST", "app-20261207T000000.000Z.db"});
}

TEST_CASE("offsite: a fetched copy left under its partial name (a round killed inside rclone's move, after the "
          "remote's copy was deleted) is taken under its name, the others dropped",
          "[backup][offsite]") {
    test::temp_dir dir;
    write_all(dir / "2026_12.sql.partial-41", "whole copy");  // its name is missing: taken
    write_all(dir / "2026_11.sql", "in place");
    write_all(dir / "2026_11.sql.partial-7", "older try");  // its name is there: dropped
    write_all(dir / "MANIFEST.partial-3", "short");
    write_all(dir / "MANIFEST.partial-4", "the longest");  // of two, the largest
    resilite::detail::take_partial_copies(dir.path());
    CHECK(read_all(dir / "2026_12.sql") == "whole copy");
    CHECK(read_all(dir / "2026_11.sql") == "in place");
    CHECK(read_all(dir / "MANIFEST") == "the longest");
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    CHECK(left == std::vector<std::string>{"2026_11.sql", "2026_12.sql", "MANIFEST"});
}

TEST_CASE("offsite: the current segment growing while it is copied still goes off the machine, up to its last "
          "complete record",
          "[backup][offsite]") {
    REQUIRE(std::system("command -v rclone >/dev/null 2>&1") == 0);
    const auto real = real_rclone();
    test::temp_dir dir;
    const auto path = dir / "app.db";
    const auto archive = dir / "app.db.archive";
    const auto remote = dir / "remote";
    const auto flag = dir / "grow";  // present: the next archive copy appends to the segment meanwhile
    const std::string begun = "-- txn 999999 ";  // a record begun and not finished
    // An `rclone` before the real one on PATH: while `flag` exists, the next archive copy does what
    // rclone does when its source grows during the copy (size taken at the start, compared at the
    // end, the destination removed on a difference), with the append made in between, every time.
    std::filesystem::create_directories(dir / "bin");
    std::filesystem::create_directories(remote);
    write_all(dir / "bin" / "rclone", fmt::format(R"sh(#!/bin/sh
if [ "$1" = copyto ] && [ -e '{0}' ]; then
  case "$3" in
  */archive/*)
    rm -f '{0}'
    before=$(stat -c %s "$2")
    b=$(basename "$3"); b=${{b%%.partial-*}}  # (copied under a name of its own, then moved)
    printf '%s' '{1}' >> '{2}'/"$b"
    mkdir -p "$(dirname "$3")"
    cp "$2" "$3.partial"
    if [ "$(stat -c %s "$3.partial")" != "$before" ]; then
      rm -f "$3.partial" "$3"
      echo "ERROR : $(basename "$3"): corrupted on transfer: sizes differ" >&2
      exit 1
    fi
    mv "$3.partial" "$3"
    exit 0;;
  esac
fi
exec '{3}' "$@"
)sh",
                                                  flag.string(), begun, archive.string(), real));
    std::filesystem::permissions(dir / "bin" / "rclone", std::filesystem::perms::owner_all);
    const path_first own_rclone{dir / "bin"};

    resilite::manual_clock clock;
    OffsiteDb db{path, offsite_options(clock, remote.string())};
    for (int i = 1; i <= 5; ++i)
        db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
    REQUIRE(db.backup_now().offsite_error.empty());
    const auto name = resilite::detail::archive::list_segments(archive).back();
    const auto there = remote / "app.db" / "archive" / name;
    CHECK(read_all(there) == read_all(archive / name));

    // The application appends while the round copies the segment.
    for (int i = 6; i <= 10; ++i)
        db.insert(Item{i, fmt::format("item {}", i), i * 0.5, "t"});
    const auto whole = read_all(archive / name);
    write_all(flag, "");
    clock.advance(60s);
    static_cast<void>(db.maintain());
    REQUIRE_FALSE(std::filesystem::exists(flag));  // the copy ran, and the segment grew during it
    REQUIRE(read_all(archive / name) == whole + begun);
    CHECK(db.health().offsite_error.empty());
    CHECK(read_all(there) == whole);  // the remote holds the segment up to its last record

    // A segment that ends inside a record when the round begins: its complete records go.
    clock.advance(60s);
    static_cast<void>(db.maintain());
    CHECK(db.health().offsite_error.empty());
    CHECK(read_all(there) == whole);

    // The record finished (here: the begun text taken back, then a commit): the next round copies it.
    std::filesystem::resize_file(archive / name, whole.size());
    db.insert(Item{11, "item 11", 5.5, "t"});
    clock.advance(60s);
    static_cast<void>(db.maintain());
    CHECK(db.health().offsite_pending == 0);
    CHECK(read_all(there) == read_all(archive / name));
    CHECK(read_all(there).size() > whole.size());

    // A damaged record further up (its trailer's number changed: a byte more, so the round sees
    // a new size whatever the clock) stops a walk by the framing there too: the records after it
    // still go, as this disk holds them.
    auto damaged = read_all(archive / name);
    const auto trailer = damaged.find("COMMIT; -- txn 3 ");
    REQUIRE(trailer != std::string::npos);
    damaged.insert(trailer + 16, "9");
    write_all(archive / name, damaged);
    clock.advance(60s);
    static_cast<void>(db.maintain());
    CHECK(db.health().offsite_error.empty());
    CHECK(read_all(there) == damaged);
}

}  // namespace backup_offsite_tests
