#pragma once
// Whether a file lies on a volume mounted read-only (a kernel's remount after errors, a snapshot
// mounted for inspection): no retry makes it writable, and SQLite cannot create the -shm index a
// WAL-mode database needs even to be read. read_target() says how to open a database for
// reading there.

#include <sqlite3.h>
#include <sys/statvfs.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

namespace resilite::detail {

[[nodiscard]] inline bool on_read_only_volume(const std::filesystem::path& file) noexcept {
    try {
        struct statvfs fs {};
        const auto dir = std::filesystem::absolute(file).parent_path();
        return ::statvfs(dir.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0;
    } catch (...) {
        return false;
    }
}

// A rollback journal SQLite would play back: it starts with the journal magic. Read directly:
// SQLite takes no POSIX lock on a journal (only the main file and -shm are locked), so closing
// this descriptor cannot drop one.
[[nodiscard]] inline bool hot_journal(const std::filesystem::path& db) {
    static constexpr unsigned char magic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};
    std::ifstream in(db.string() + "-journal", std::ios::binary);
    unsigned char head[8]{};
    in.read(reinterpret_cast<char*>(head), sizeof head);
    return in.gcount() == 8 && std::memcmp(head, magic, 8) == 0;
}

// Whether the database's WAL holds frames (more than its 32-byte header).
[[nodiscard]] inline bool wal_has_frames(const std::filesystem::path& db) noexcept {
    std::error_code ec;
    const auto size = std::filesystem::file_size(db.string() + "-wal", ec);
    return !ec && size > 32;
}

// An SQLite URI (SQLITE_OPEN_URI) that opens the file as `immutable`: no locks, no -shm, no WAL
// read. Right only where nothing can change the file and its WAL holds no frames.
[[nodiscard]] inline std::string immutable_uri(const std::filesystem::path& file) {
    std::string uri = "file://";  // (an empty authority: a path that begins with "//" stays a path)
    static constexpr char hex[] = "0123456789ABCDEF";
    for (const unsigned char ch : std::filesystem::absolute(file).string()) {
        const bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                           ch == '/' || ch == '.' || ch == '-' || ch == '_' || ch == '~';
        if (plain) {
            uri += static_cast<char>(ch);
        } else {
            uri += '%';
            uri += hex[ch >> 4];
            uri += hex[ch & 0xF];
        }
    }
    return uri + "?immutable=1";
}

// What to open, and with which flags, to read the database at `db`: the path itself, or, on a volume mounted read-only where the file alone is
// the database (no frames in its WAL, no hot journal), the file as immutable (SQLite cannot read
// a WAL-mode file there otherwise).
[[nodiscard]] inline std::pair<std::string, int> read_target(const std::filesystem::path& db) {
    if (on_read_only_volume(db) && !wal_has_frames(db) && !hot_journal(db)) {
        try {
            return {immutable_uri(db), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI};
        } catch (...) {  // (no absolute path: read it as it is)
        }
    }
    return {db.string(), SQLITE_OPEN_READONLY};
}

}  // namespace resilite::detail
