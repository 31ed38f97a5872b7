// Healing, by phase: (1) a database of about MB megabytes healed from its backup plus an archive
// tail of TAIL one-row transactions; (2) a database of ROWS rows healed from the archive alone.
// Printed beside what the same machine needs for a plain copy of the backup file (cp), the floor
// of any restore, and beside the sqlite3 shell doing the same by hand: `.restore` of the backup,
// then the archive's records after the backup's number piped in (no checks at all).
//   bench_heal [MB, default 100] [TAIL, default 10000] [ROWS, default 1000000]
#include <resilite/resilite.hpp>
#include <resilite/archive/detail/archive_replay.hpp>
#include <resilite/testing/corruption.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
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
    std::ofstream(script, std::ios::binary) << tail;
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
    const auto dir = std::filesystem::temp_directory_path() / "resilite-bench-heal";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);

    {
        const auto path = dir / "big.db";
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
        const auto copy_start = clock_type::now();
        std::filesystem::copy_file(backup, dir / "copy.db");
        const auto copy_ms = ms(clock_type::now() - copy_start);
        damage(path);
        const auto start = clock_type::now();
        Db db{path};
        const auto wall = ms(clock_type::now() - start);
        const auto r = db.last_heal();
        if (!r || !r->healed) return 1;
        fmt::print("heal of a {:.0f} MB database from its backup plus {} archived transactions:\n",
                   static_cast<double>(bytes) / (1 << 20), tail);
        print_report(*r, wall);
        fmt::print("  (a plain copy of the backup file takes {:.1f} ms: heal / copy = {:.1f})\n", copy_ms, wall / copy_ms);
        if (std::system("command -v sqlite3 > /dev/null 2>&1") == 0) {
            const auto tail_text = records_after(path.string() + ".archive", backup_seq);
            const auto shell_ms = shell_heal(dir, backup, tail_text);
            fmt::print("  (the sqlite3 shell: .restore of the backup, then the {:.1f} MB of records after its number: "
                       "{:.1f} ms; heal / shell = {:.2f}, the heal alone / shell = {:.2f})\n",
                       static_cast<double>(tail_text.size()) / (1 << 20), shell_ms, wall / shell_ms,
                       std::chrono::duration<double, std::milli>(r->duration).count() / shell_ms);
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
