#pragma once
// Whether a file lies on a volume mounted read-only (a kernel's remount after errors, a snapshot
// mounted for inspection): no retry makes it writable, and SQLite cannot create the -shm index a
// WAL-mode database needs even to be read.

#include <sys/statvfs.h>

#include <filesystem>
#include <string>

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

// An SQLite URI (SQLITE_OPEN_URI) that opens the file as `immutable`: no locks, no -shm, no WAL
// read. Right only where nothing can change the file and its WAL holds no frames.
[[nodiscard]] inline std::string immutable_uri(const std::filesystem::path& file) {
    std::string uri = "file:";
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

}  // namespace resilite::detail
