#pragma once
// Verifies a WAL file's frame checksums the way SQLite's recovery does (wal.c), without
// opening the database, and flags only what recovery would drop silently *and* had been synced:
// a torn tail after a crash is normal and never reported (see check_wal).

#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace resilite::detail {

struct wal_check_result {
    bool ok = true;
    std::string detail;
    std::vector<unsigned char> page1;  // header of the newest committed page 1 in the log, if any
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

// `commits_synced`: each commit was synced before the next one began (synchronous FULL or
// EXTRA). Then a frame that fails its checksum while a *later transaction* follows it in the same
// log generation was synced, and SQLite's recovery would silently drop it and everything after:
// damage. A bad frame inside the last transaction is a torn write of a commit that was never
// acknowledged: normal after a crash, never flagged. With NORMAL, several unsynced commits may be
// torn at once, so a broken chain cannot be told from damage and is not flagged.
[[nodiscard]] inline wal_check_result check_wal(const std::string& wal_path, bool commits_synced = true) {
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
    const bool big = (magic & 1u) != 0;
    const std::uint32_t raw_page = be(8);
    const std::uint32_t page_size = raw_page == 1 ? 65536u : raw_page;
    std::uint32_t s0 = 0;
    std::uint32_t s1 = 0;
    wal_checksum(data.data(), 24, big, s0, s1);
    const bool header_ok = (magic == 0x377f0682u || magic == 0x377f0683u) && s0 == be(24) && s1 == be(28) &&
                           page_size >= 512 && page_size <= 65536 && (page_size & (page_size - 1)) == 0;
    if (!header_ok) {
        // SQLite treats the log as empty. That loses nothing unless commits were synced after the
        // header was written: two or more commits of one generation (read from frame 1's salts,
        // with the database's page size unknown here, try each) prove it.
        if (!commits_synced) return {};
        for (std::size_t ps = 512; ps <= 65536; ps *= 2) {
            const std::size_t frame = 24 + ps;
            if (data.size() < 32 + 2 * frame) continue;
            const auto salt_a = be(32 + 8);
            const auto salt_b = be(32 + 12);
            std::size_t commits = 0;
            for (std::size_t at = 32; at + frame <= data.size(); at += frame) {
                if (be(at + 8) != salt_a || be(at + 12) != salt_b) break;
                commits += be(at + 4) != 0 ? 1 : 0;
            }
            if (commits >= 2) {
                return {false,
                        resilite::detail::format(
                            "the WAL header is damaged while the log holds {} synced commits: SQLite "
                            "would ignore them all",
                            commits),
                        {}};
            }
        }
        return {};
    }
    wal_check_result result;
    const std::uint32_t salt1 = be(16);
    const std::uint32_t salt2 = be(20);
    const std::size_t frame = 24 + static_cast<std::size_t>(page_size);
    const std::size_t frames = (data.size() - 32) / frame;
    const auto same_generation = [&](std::size_t i) {
        const unsigned char* h = data.data() + 32 + i * frame;
        return wal_word(h + 8, true) == salt1 && wal_word(h + 12, true) == salt2;
    };
    const auto at = [&](std::size_t i) { return data.data() + 32 + i * frame; };
    // Checksum of frame j's header fields and page as if they were those of frame `as`,
    // continuing from the checksum stored in frame j-1: whether j is (a possibly torn copy of)
    // `as`, or, with as == j, whether j follows from the frame before it.
    const auto follows = [&](std::size_t j, std::size_t as) {
        std::uint32_t c0 = wal_word(at(j - 1) + 16, true);
        std::uint32_t c1 = wal_word(at(j - 1) + 20, true);
        wal_checksum(at(as), 8, big, c0, c1);
        wal_checksum(at(as) + 24, page_size, big, c0, c1);
        return c0 == wal_word(at(j) + 16, true) && c1 == wal_word(at(j) + 20, true);
    };
    // Without powersafe overwrite SQLite pads a commit to a sector boundary with copies of its
    // commit frame, the last copy partly written after the sync: a torn padding copy loses nothing.
    // (When the commit frame itself is torn its copies cannot be verified: same page, same size.)
    const auto padding_of = [&](std::size_t j, std::size_t commit) {
        return same_generation(j) && std::memcmp(at(j), at(commit), 8) == 0 &&
               (follows(j, commit) || (commit > 0 && !follows(commit, commit)));
    };
    std::size_t first_bad = frames;
    std::optional<std::size_t> last_commit;
    // The newest frame of page 1 not yet followed by a commit (`frames`: none). A plain index,
    // not a std::optional: g++ 12 at -O1 warns that the optional's value may be used
    // uninitialized (-Wmaybe-uninitialized), which breaks users' -Werror builds.
    std::size_t page1_pending = frames;
    for (std::size_t i = 0; i < frames; ++i) {
        const unsigned char* h = at(i);
        // Another generation (the log was restarted, possibly while being read): the end of
        // this one, not damage.
        if (!same_generation(i)) return result;
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
        if (wal_word(h, true) == 1) page1_pending = i;
        if (wal_word(h + 4, true) != 0) {  // a commit frame: what it holds counts
            last_commit = i;
            if (page1_pending != frames) {
                result.page1.assign(at(page1_pending) + 24, at(page1_pending) + 124);
                page1_pending = frames;
            }
        }
    }
    if (first_bad == frames || !commits_synced) return result;
    std::size_t next = first_bad;  // where the first transaction recovery would drop begins
    while (last_commit && next < frames && padding_of(next, *last_commit))
        ++next;
    // That transaction was synced if a later one follows it: after its commit frame (and that
    // frame's padding) comes a frame of this generation that follows from the one before it.
    for (std::size_t c = next; c < frames; ++c) {
        if (!same_generation(c) || wal_word(at(c) + 4, true) == 0) continue;
        std::size_t j = c + 1;
        while (j < frames && padding_of(j, c))
            ++j;
        for (; j < frames; ++j) {
            if (!same_generation(j) || !follows(j, j)) continue;
            return {
                false,
                resilite::detail::format("WAL frame {} of {} fails its checksum while a later transaction is "
                                         "intact: committed changes would be lost",
                                         first_bad + 1, frames),
                {}};
        }
        break;
    }
    return result;
}

}  // namespace resilite::detail
