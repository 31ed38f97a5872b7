#pragma once
// Directories resilite writes to or reads a database back from (archive, backups, quarantine)
// are never followed through a symbolic link: a link could lead anywhere, to someone else's
// files or to a planted archive.

#include <sys/stat.h>

#include <filesystem>

namespace resilite::detail {

// True when the path itself (not a parent) is a symbolic link.
[[nodiscard]] inline bool is_link_path(const std::filesystem::path& p) {
    struct ::stat st {};
    return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

}  // namespace resilite::detail
