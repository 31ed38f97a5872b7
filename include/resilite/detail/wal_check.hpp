#pragma once
// Verifies a WAL file's frame checksums the way SQLite's recovery does (wal.c), without
// opening the database. A checksum failure followed by later valid-salt frames means committed
// frames would be silently dropped at recovery: the WAL is damaged. A failure at the very end
// is an ordinary torn write from a crash.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace resilite::detail {

struct wal_check_result {
    bool ok = true;
    std::string detail;
};

[[nodiscard]] inline std::uint32_t wal_word(const unsigned char* p, bool big_endian) {
    return big_endian
               ? (std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3])
               : (std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 | p[0]);
}

inline void wal_checksum(const unsigned char* p, std::size_t n, bool big_endian, std::uint32_t& s0,
                         std::uint32_t& s1) {
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
        s0 += wal_word(p + i, big_endian) + s1;
        s1 += wal_word(p + i + 4, big_endian) + s0;
    }
}

[[nodiscard]] inline wal_check_result check_wal(const std::string& wal_path) {
    // The size first, then no more than that: a live writer appends frames one after the other,
    // so everything below the size was complete when it was measured.
    std::error_code ec;
    const auto size = std::filesystem::file_size(wal_path, ec);
    if (ec) return {};  // no WAL: nothing to check
    std::ifstream in(wal_path, std::ios::binary);
    if (!in) return {};
    std::vector<unsigned char> data(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<std::size_t>(in.gcount()));
    if (data.size() < 32) return {};  // empty or torn header: SQLite ignores it
    const auto be = [&](std::size_t at) { return wal_word(data.data() + at, true); };
    const std::uint32_t magic = be(0);
    if (magic != 0x377f0682u && magic != 0x377f0683u) return {false, "WAL header magic is wrong"};
    const bool big = (magic & 1u) != 0;
    const std::uint32_t page_size = be(8) == 1 ? 65536u : be(8);
    const std::uint32_t salt1 = be(16);
    const std::uint32_t salt2 = be(20);
    std::uint32_t s0 = 0;
    std::uint32_t s1 = 0;
    wal_checksum(data.data(), 24, big, s0, s1);
    if (s0 != be(24) || s1 != be(28)) return {};  // invalid header: SQLite treats the WAL as empty
    const std::size_t frame = 24 + static_cast<std::size_t>(page_size);
    const std::size_t frames = (data.size() - 32) / frame;
    std::size_t first_bad = frames;
    for (std::size_t i = 0; i < frames; ++i) {
        const unsigned char* h = data.data() + 32 + i * frame;
        if (wal_word(h + 8, true) != salt1 || wal_word(h + 12, true) != salt2) {
            // Another generation (the log was restarted, possibly while being read): the end of
            // this one, not damage.
            return {};
        }
        std::uint32_t c0 = s0;
        std::uint32_t c1 = s1;
        wal_checksum(h, 8, big, c0, c1);
        wal_checksum(h + 24, page_size, big, c0, c1);
        if (c0 != wal_word(h + 16, true) || c1 != wal_word(h + 20, true)) {
            first_bad = i;
            break;
        }
        s0 = c0;
        s1 = c1;
    }
    // Later frames of this same WAL generation (matching salts) after a bad one: they were
    // written after it, so the bad frame is damage, not a torn tail.
    for (std::size_t i = first_bad + 1; i < frames; ++i) {
        const unsigned char* h = data.data() + 32 + i * frame;
        if (wal_word(h + 8, true) == salt1 && wal_word(h + 12, true) == salt2) {
            return {false,
                    "WAL frame " + std::to_string(first_bad + 1) + " of " + std::to_string(frames) +
                        " fails its checksum while later frames are intact: committed changes would be lost"};
        }
    }
    return {};
}

}  // namespace resilite::detail
