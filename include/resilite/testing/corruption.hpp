#pragma once
// resilite::testing corruption operators: damage a closed database file the ways production
// damages them, to test that detection and healing work. Each says which check_health level
// detects it. Close every connection (after a TRUNCATE checkpoint if the data must be in the
// main file) before using them.

#include <resilite/detail/format.hpp>
#include <resilite/monitor/check_level.hpp>
#include <resilite/schema/detail/schema_def.hpp>
#include <resilite/sqlite/connection.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace resilite::testing {

namespace detail {
inline void write_bytes(const std::filesystem::path& path, std::int64_t offset,
                        const std::vector<unsigned char>& bytes) {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    if (!f) throw std::runtime_error("cannot open " + path.string());
    f.seekp(offset);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::uint32_t page_size_of(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char h[18]{};
    in.read(reinterpret_cast<char*>(h), sizeof h);
    const std::uint32_t raw = std::uint32_t{h[16]} << 8 | h[17];
    return raw == 1 ? 65536u : raw;
}
}  // namespace detail

// Random bytes over the 100-byte header. Detected at check_level::header.
inline void overwrite_header(const std::filesystem::path& db, std::mt19937_64& rng) {
    std::vector<unsigned char> junk(100);
    for (auto& b : junk)
        b = static_cast<unsigned char>(rng());
    junk[0] = static_cast<unsigned char>(junk[0] == 'S' ? 'X' : junk[0]);  // never the magic by chance
    detail::write_bytes(db, 0, junk);
}

// Zeroes page n (1-based; use 2 or more, page 1 holds the header). When the page is a b-tree
// page (table or index), detected at check_level::quick. Zeroing the last page of an overflow
// chain, or a free page, damages no structure and no check can see it.
inline void zero_page(const std::filesystem::path& db, std::uint32_t n) {
    if (n < 1) throw std::invalid_argument("pages are numbered from 1");
    const auto size = detail::page_size_of(db);
    detail::write_bytes(db, static_cast<std::int64_t>(n - 1) * size, std::vector<unsigned char>(size, 0));
}

// Cuts the file to half its size, to 50 bytes, or to nothing. Detected at check_level::header
// (half: shorter than the header says; 50 bytes: no whole header; 0 bytes: emptied, when
// resilite had initialised the database).
enum class truncation { half, fifty_bytes, zero };
inline void truncate_file(const std::filesystem::path& db, truncation how) {
    const auto size = std::filesystem::file_size(db);
    const std::uintmax_t to = how == truncation::half ? size / 2 : how == truncation::fifty_bytes ? 50 : 0;
    std::filesystem::resize_file(db, to);
}

// Flips one byte in the page data of WAL frame n (1-based). When a later transaction follows
// frame n's, detected at check_level::header (WAL checksums); inside the last transaction no
// check can tell it from a torn write after a crash (SQLite drops that transaction), so it is not
// reported.
inline void flip_wal_byte(const std::filesystem::path& db, std::uint32_t frame, std::mt19937_64& rng) {
    const auto wal = std::filesystem::path{db.string() + "-wal"};
    std::ifstream in(wal, std::ios::binary);
    unsigned char h[32]{};
    in.read(reinterpret_cast<char*>(h), sizeof h);
    if (in.gcount() != 32) throw std::invalid_argument("no WAL to damage");
    const std::uint32_t raw =
        std::uint32_t{h[8]} << 24 | std::uint32_t{h[9]} << 16 | std::uint32_t{h[10]} << 8 | h[11];
    const std::uint32_t page = raw == 1 ? 65536u : raw;
    const auto frames = (std::filesystem::file_size(wal) - 32) / (24 + page);
    if (frame < 1 || frame > frames) throw std::invalid_argument("no such WAL frame");
    const std::int64_t at = 32 + static_cast<std::int64_t>(frame - 1) * (24 + page) + 24 +
                            static_cast<std::int64_t>(rng() % page);
    in.seekg(at);
    char byte = 0;
    in.read(&byte, 1);
    in.close();
    detail::write_bytes(wal, at, {static_cast<unsigned char>(~static_cast<unsigned char>(byte))});
}

// The numbers (1-based) of the WAL frames that end a transaction (commit frames), in order.
[[nodiscard]] inline std::vector<std::uint32_t> wal_commit_frames(const std::filesystem::path& db) {
    const auto wal = std::filesystem::path{db.string() + "-wal"};
    std::ifstream in(wal, std::ios::binary);
    std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::uint32_t> out;
    if (data.size() < 32) return out;
    const auto be = [&](std::size_t at) {
        return std::uint32_t{data[at]} << 24 | std::uint32_t{data[at + 1]} << 16 |
               std::uint32_t{data[at + 2]} << 8 | data[at + 3];
    };
    const std::uint32_t page = be(8) == 1 ? 65536u : be(8);
    const std::size_t frame = 24 + static_cast<std::size_t>(page);
    for (std::size_t i = 0; 32 + (i + 1) * frame <= data.size(); ++i) {
        if (be(32 + i * frame + 4) != 0) out.push_back(static_cast<std::uint32_t>(i + 1));
    }
    return out;
}

// Number of frames in the WAL (0 when there is none).
[[nodiscard]] inline std::uint32_t wal_frames(const std::filesystem::path& db) {
    const auto wal = std::filesystem::path{db.string() + "-wal"};
    std::error_code ec;
    const auto size = std::filesystem::file_size(wal, ec);
    if (ec || size < 32) return 0;
    std::ifstream in(wal, std::ios::binary);
    unsigned char h[12]{};
    in.read(reinterpret_cast<char*>(h), sizeof h);
    const std::uint32_t raw =
        std::uint32_t{h[8]} << 24 | std::uint32_t{h[9]} << 16 | std::uint32_t{h[10]} << 8 | h[11];
    const std::uint32_t page = raw == 1 ? 65536u : raw;
    return page == 0 ? 0 : static_cast<std::uint32_t>((size - 32) / (24 + page));
}

// Rewrites an index's definition to name another column of its table, through writable_schema:
// the index's entries no longer match it. Detected only at check_level::full (integrity_check;
// quick_check does not compare indexes with their tables). Needs an index on a table of two
// columns or more; returns the index's name.
inline std::string swap_index_definition(const std::filesystem::path& db) {
    sqlite::connection c{db};
    for (const auto& [index, table, sql] : c.query_all<std::string, std::string, std::string>(
             "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")) {
        const auto indexed = c.query_all<std::string>("SELECT name FROM pragma_index_info(?)", index);
        if (indexed.size() != 1) continue;
        for (const auto& column : c.query_all<std::string>("SELECT name FROM pragma_table_info(?)", table)) {
            if (column == indexed[0]) continue;
            const auto swapped = resilite::detail::format(
                "CREATE INDEX {} ON {}({})", resilite::detail::quote_id(index),
                resilite::detail::quote_id(table), resilite::detail::quote_id(column));
            c.exec_script("PRAGMA writable_schema = ON");
            c.exec("UPDATE sqlite_master SET sql = ? WHERE type = 'index' AND name = ?", swapped, index);
            c.exec_script("PRAGMA writable_schema = OFF");
            return index;
        }
    }
    throw std::invalid_argument("no single-column index on a table with another column");
}

}  // namespace resilite::testing
