// Healing, by phase: (1) a database of about MB megabytes healed from its backup plus an archive
// tail of TAIL one-row transactions; (2) a database of ROWS rows healed from the archive alone.
// (1) runs in turns (interleave.hpp) with what the same machine needs for a plain copy of the
// backup file (cp), the floor of any restore, and with the sqlite3 shell doing the same by hand:
// `.restore` of the backup, then the archive's records after the backup's number piped in (no
// checks at all). Each heal starts from the same damaged state: a copy of the whole directory.
//   bench_heal [MB, default 100] [TAIL, default 10000] [ROWS, default 1000000] [ROUNDS, default 3]
#include "interleave.hpp"

#include <resilite/resilite.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/testing/corruption.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <vector>
#include <filesystem>
#include <random>
#include <string>

namespace {
using clock_type = std::chrono::steady_clock;

struct Row {
    BOOST_HANA_DEFINE_STRUCT(Row, (std::int64_t, id), (std::string, payload));
};
using rows_table = resilite::table<"rows", Row, resilite::primary_key<"id">>;
using Db = resilite::Database<resilite::schema<rows_table>, resilite::archive<resilite::flush_every_ms<1000>>,
                              resilite::backup<resilite::online_backup<>, resilite::on_demand>, resilite::healing<>,
                              resilite::wal_durability<resilite::synchronous::full, 60, 64, false>>;

double ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void insert_rows(Db& db, std::int64_t from, std::int64_t count, std::size_t payload_bytes) {
    const std::string payload(payload_bytes, 'p');
    for (std::int64_t done = 0; done < count;) {
        db.transaction([&](auto& tx) {
            for (int i = 0; i < 20000 && done < count; ++i, ++done)
                tx.insert(Row{from + done, payload});
        });
    }
    static_cast<void>(db.drain_archive());
}

void print_report(const resilite::heal_report& r, double wall_ms) {
    for (const auto& p : r.phases)
        fmt::print("  {:<10} {:>9.1f} ms\n", p.phase, std::chrono::duration<double, std::milli>(p.duration).count());
    fmt::print("  {:<10} {:>9.1f} ms (heal: {:.1f} ms; the open around it included)\n", "total", wall_ms,
               std::chrono::duration<double, std::milli>(r.duration).count());
}

// The archive's records numbered after `after`, as text the sqlite3 shell can run.
std::string records_after(const std::filesystem::path& archive, std::int64_t after) {
    namespace a = resilite::detail::archive;
    const auto contents = a::read_archive(archive);  // (bodies left in the segments: read them whole here)
    std::string out;
    std::string name;
    a::file_bytes text;
    for (const auto& r : contents.records) {
        if (r.header.seq <= after) continue;
        if (r.segment != name) {
            text = a::read_file(archive / r.segment);
            name = r.segment;
        }
        const std::string_view all = text;
        const auto start = all.rfind(fmt::format("{}{} ", a::header_prefix, r.header.seq), r.body_at);
        if (start == std::string_view::npos) std::abort();
        out += all.substr(start, r.end - start);
    }
    return out;
}

// The shell's way: restore the backup into a new file, then run the tail. Returns milliseconds.
double shell_heal(const std::filesystem::path& dir, const std::filesystem::path& backup, const std::string& tail) {
    const auto target = dir / "shell.db";
    const auto script = dir / "tail.sql";
    if (!std::filesystem::exists(script)) std::ofstream(script, std::ios::binary) << tail;
    const auto command = fmt::format("sqlite3 '{}' \".restore '{}'\" && sqlite3 '{}' < '{}'", target.string(),
                                     backup.string(), target.string(), script.string());
    const auto start = clock_type::now();
    if (std::system(command.c_str()) != 0) std::abort();
    return ms(clock_type::now() - start);
}

void damage(const std::filesystem::path& path) {
    std::mt19937_64 rng{1};
    resilite::testing::overwrite_header(path, rng);
}
}  // namespace

int main(int argc, char** argv) {
    const std::int64_t megabytes = argc > 1 ? std::atoll(argv[1]) : 100;
    const std::int64_t tail = argc > 2 ? std::atoll(argv[2]) : 10'000;
    const std::int64_t archive_rows = argc > 3 ? std::atoll(argv[3]) : 1'000'000;
    const int rounds = argc > 4 ? std::atoi(argv[4]) : 3;
    const auto dir = std::filesystem::temp_directory_path() / "resilite-bench-heal";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);

    {
        // The state each heal starts from is kept whole in `pristine` and copied to `live`.
        const auto live = dir / "live";
        const auto pristine = dir / "pristine";
        std::filesystem::create_directories(live);
        const auto path = live / "big.db";
        std::filesystem::path backup;
        std::int64_t backup_seq = 0;
        {
            Db db{path};
            insert_rows(db, 1, megabytes * 1024, 1000);  // ~1 KiB rows
            const auto taken = db.backup_now();
            backup = taken.path;
            backup_seq = taken.archive_seq.value_or(0);
            const std::string payload(100, 't');
            for (std::int64_t i = 0; i < tail; ++i)  // one transaction each
                db.insert(Row{megabytes * 1024 + 1 + i, payload});
            static_cast<void>(db.drain_archive());
        }
        const auto bytes = std::filesystem::file_size(path);
        std::filesystem::copy(live, pristine, std::filesystem::copy_options::recursive);
        const bool shell = std::system("command -v sqlite3 > /dev/null 2>&1") == 0;
        const auto tail_text = shell ? records_after(path.string() + ".archive", backup_seq) : std::string{};
        std::optional<resilite::heal_report> last;
        double last_wall = 0;
        std::vector<bench::contender> cs;
        cs.push_back({"heal", [&] {
                          std::filesystem::remove_all(live);
                          std::filesystem::copy(pristine, live, std::filesystem::copy_options::recursive);
                          damage(path);
                          const auto start = clock_type::now();
                          Db db{path};
                          last_wall = ms(clock_type::now() - start);
                          last = db.last_heal();
                          if (!last || !last->healed) std::abort();
                          return last_wall / 1000;
                      }});
        cs.push_back({"copy", [&] {
                          std::filesystem::remove(dir / "copy.db");
                          return bench::seconds_of([&] { std::filesystem::copy_file(backup, dir / "copy.db"); });
                      }});
        if (shell) {
            cs.push_back({"shell", [&] {
                              std::filesystem::remove(dir / "shell.db");
                              return shell_heal(dir, backup, tail_text) / 1000;
                          }});
        }
        bench::interleaved runs{std::move(cs)};
        runs.run(rounds, false);
        fmt::print("heal of a {:.0f} MB database from its backup plus {} archived transactions, {} rounds in turns:\n",
                   static_cast<double>(bytes) / (1 << 20), tail, runs.rounds());
        fmt::print(" the last round's heal:\n");
        print_report(*last, last_wall);
        fmt::print("  heal, the open around it included: median {:.1f} ms; {}\n", 1000 * runs.median_of("heal"),
                   runs.ratio("heal", "copy"));
        if (shell) {
            fmt::print("  the sqlite3 shell: .restore of the backup, then the {:.1f} MB of records after its number: "
                       "median {:.1f} ms; heal {}\n",
                       static_cast<double>(tail_text.size()) / (1 << 20), 1000 * runs.median_of("shell"),
                       runs.ratio("heal", "shell"));
        }
    }
    {
        const auto path = dir / "archived.db";
        {
            Db db{path};
            insert_rows(db, 1, archive_rows, 40);
        }
        damage(path);
        const auto start = clock_type::now();
        Db db{path};
        const auto wall = ms(clock_type::now() - start);
        const auto r = db.last_heal();
        if (!r || !r->healed) return 1;
        fmt::print("heal of a database of {} rows from the archive alone:\n", archive_rows);
        print_report(*r, wall);
    }
    std::filesystem::remove_all(dir);
    return 0;
}
