#pragma once
// Reads the start of a database file through SQLite's own VFS instead of a descriptor of ours.
//
// Why: POSIX advisory locks belong to the process and the file, not to a descriptor, so closing
// *any* descriptor on the database file drops every lock the process holds on it (SQLite's "How
// to corrupt" §2.2). A header check with std::ifstream while this process had the database open
// let another process believe it was the last user: it deleted the -wal this process was still
// committing into. SQLite's unix VFS keeps one record per file for the whole process and delays
// closing a descriptor while locks are held, so a short-lived read-only connection is safe.
// (The -wal file may be read directly: SQLite never locks it; its locks live in -shm, which
// resilite never opens.)

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resilite::detail {

struct file_peek {
    std::int64_t size = 0;              // the file's size in bytes
    std::vector<unsigned char> bytes;   // its first bytes (fewer when the file is shorter)
    int rc = SQLITE_OK;                 // what SQLite said when it could not read
    std::string message;
};

[[nodiscard]] inline file_peek peek_file(const std::filesystem::path& path, std::size_t n,
                                         const char* vfs = nullptr) {
    file_peek out;
    sqlite3* db = nullptr;
    // Opening reads nothing: the pager touches the file only at the first query, never here.
    out.rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, vfs);
    sqlite3_file* file = nullptr;
    if (out.rc == SQLITE_OK)
        out.rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file);
    if (out.rc == SQLITE_OK && (file == nullptr || file->pMethods == nullptr)) out.rc = SQLITE_CANTOPEN;
    if (out.rc == SQLITE_OK) {
        sqlite3_int64 size = 0;
        out.rc = file->pMethods->xFileSize(file, &size);
        out.size = size;
        const auto want = static_cast<std::size_t>(std::min<sqlite3_int64>(size, static_cast<sqlite3_int64>(n)));
        out.bytes.resize(want);
        if (out.rc == SQLITE_OK && want > 0)
            out.rc = file->pMethods->xRead(file, out.bytes.data(), static_cast<int>(want), 0);
    }
    if (out.rc != SQLITE_OK)
        out.message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(out.rc);
    if (out.rc != SQLITE_OK && out.message == "not an error") out.message = sqlite3_errstr(out.rc);
    sqlite3_close_v2(db);
    return out;
}

// Whether `bytes` begin with SQLite's header string, "SQLite format 3" and its NUL.
[[nodiscard]] inline bool has_sqlite_magic(const unsigned char* bytes, std::size_t n) noexcept {
    return n >= 16 && std::memcmp(bytes, "SQLite format 3", 16) == 0;
}

// Whether the file begins with SQLite's header string (to the health check a short text file is
// only "a bad header", yet it was never a database).
[[nodiscard]] inline bool starts_like_sqlite(const std::filesystem::path& path, const char* vfs = nullptr) {
    const auto peek = peek_file(path, 16, vfs);
    return peek.rc == SQLITE_OK && has_sqlite_magic(peek.bytes.data(), peek.bytes.size());
}

}  // namespace resilite::detail
