// Text archives: every committed change as readable SQL; validate, simulate a recovery, rebuild.
//
//   example_archive                              a walk-through in a temporary directory
//   example_archive report <archive dir> [db]    validate, trial rebuild, compare with db
//   example_archive rebuild <archive dir> <new>  build a database from the archive alone
//   example_archive replay <archive dir> <db>    apply the records the database lacks
//
// The exit code follows the report: 0 ok, 1 critical, 2 warnings.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

// snippet-begin: declaration
struct Member {
    BOOST_HANA_DEFINE_STRUCT(Member, (std::int64_t, id), (std::string, name), (std::string, password_hash));
};
struct Post {
    BOOST_HANA_DEFINE_STRUCT(Post, (std::int64_t, id), (std::int64_t, author), (std::string, body));
};
using members =
    resilite::table<"members", Member, resilite::primary_key<"id">, resilite::secret<"password_hash">,
                    resilite::default_value<"password_hash", "''">>;
using posts = resilite::table<"posts", Post, resilite::primary_key<"id">>;

// Flushed and synced at every commit; resilite::archive<resilite::flush_every_ms<500>> batches.
using Db = resilite::Database<resilite::schema<members, posts>, resilite::archive<>>;
// snippet-end: declaration

static int report(const std::filesystem::path& archive, const char* live) {
    resilite::inspect_options o;
    if (live != nullptr) o.live_database = live;
    const auto r = resilite::inspect_archive(archive, o);
    std::printf("%s", r.to_text().c_str());
    return r.exit_code();
}

static int walk_through() {
    const auto dir = std::filesystem::temp_directory_path() / "resilite-archive-example";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const auto path = dir / "forum.db";
    {
        Db db{path};
        db.insert(Member{1, "Ann", "$argon2id$secret-hash"});
        db.insert(Member{2, "Bo", "$argon2id$other-hash"});
        db.transaction([](auto& tx) {
            tx.insert(Post{1, 1, "Hello, it's Ann"});
            tx.insert(Post{2, 2, "Multi-line\npost"});
        });
        db.erase<Post>(1);
        // What the archive holds, as text (secrets never written):
        for (const auto& e : std::filesystem::directory_iterator(db.archive_directory())) {
            std::ifstream seg(e.path());
            std::printf(
                "---- %s\n%s", e.path().filename().c_str(),
                std::string{std::istreambuf_iterator<char>(seg), std::istreambuf_iterator<char>()}.c_str());
        }
        // Validate and simulate a recovery, compared with the live database.
        const auto r = db.check_archive();
        std::printf("%s", r.to_text().c_str());
        if (r.exit_code() != 0) return r.exit_code();
    }
    // The database is lost; the archive alone rebuilds it.
    std::filesystem::remove(path);
    // snippet-begin: recover
    const auto archive = dir / "forum.db.archive";                // <database>.archive, beside it
    auto built = resilite::rebuild(archive, dir / "rebuilt.db");  // from the archive alone
    // A copy restored from a backup takes the records after the number it holds (none here):
    auto more = resilite::replay_archive(archive, dir / "rebuilt.db");
    // Validate and trial-rebuild, compared with a live database (db.check_archive() does this
    // for an open one, after draining):
    resilite::inspect_options options;
    options.live_database = dir / "rebuilt.db";
    auto check = resilite::inspect_archive(archive, options);
    std::printf("%s", check.to_text().c_str());  // exit_code(): 0 ok, 1 critical, 2 warnings
    // snippet-end: recover
    // snippet-begin: progress
    resilite::rebuild_options with_bar;
    with_bar.on_progress = [](const resilite::progress& p) {
        std::fprintf(stderr, "\r%.*s: %.*s %llu/%llu %.*s", static_cast<int>(p.operation.size()), p.operation.data(),
                     static_cast<int>(p.step.size()), p.step.data(), static_cast<unsigned long long>(p.done),
                     static_cast<unsigned long long>(p.total), static_cast<int>(p.unit.size()), p.unit.data());
        if (p.finished()) std::fputc('\n', stderr);
    };
    auto again = resilite::rebuild(archive, dir / "with-progress.db", with_bar);
    // snippet-end: progress
    if (again.applied_records != built.applied_records) return 1;
    std::printf("rebuilt from %lld records, %lld more replayed\n",
                static_cast<long long>(built.applied_records), static_cast<long long>(more.applied_records));
    if (check.exit_code() != 0) return check.exit_code();
    Db rebuilt{dir / "rebuilt.db", [&] {
                   Db::options o;
                   o.settings = Db::default_settings();
                   o.settings->archive.directory =
                       (dir / "forum.db.archive").string();  // keep archiving there
                   return o;
               }()};
    const auto ann = rebuilt.get<Member>(1);
    std::printf("member 1: %s (password hash %s)\n", ann ? ann->name.c_str() : "missing",
                ann && ann->password_hash.empty() ? "not archived: reset it" : "?");
    return ann && ann->name == "Ann" && rebuilt.select<Post>().size() == 1 ? 0 : 1;
}

int main(int argc, char** argv) {
    try {
        const std::string command = argc > 1 ? argv[1] : "";
        if (command.empty()) return walk_through();
        if (command == "report" && argc >= 3) return report(argv[2], argc > 3 ? argv[3] : nullptr);
        if (command == "rebuild" && argc == 4) {
            std::printf("%s", resilite::rebuild(argv[2], argv[3]).to_text().c_str());
            return 0;
        }
        if (command == "replay" && argc == 4) {
            std::printf("%s", resilite::replay_archive(argv[2], argv[3]).to_text().c_str());
            return 0;
        }
        std::fprintf(
            stderr,
            "usage: %s [report <archive> [db] | rebuild <archive> <new.db> | replay <archive> <db>]\n",
            argv[0]);
        return 64;
    } catch (const resilite::error& e) {
        std::fprintf(stderr, "%s\n%s\n", std::string{e.user_message()}.c_str(), e.what());
        return 1;
    }
}
