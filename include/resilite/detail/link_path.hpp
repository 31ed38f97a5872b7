#pragma once
// Directories resilite writes to or reads a database back from (archive, backups, quarantine)
// are never followed through a symbolic link: a link could lead anywhere, to someone else's
// files or to a planted archive.

#include <sys/stat.h>

#include <filesystem>
#include <string>

namespace resilite::detail {

// True when the path itself (not a parent) is a symbolic link.
[[nodiscard]] inline bool is_link_path(const std::filesystem::path& p) {
    struct ::stat st {};
    return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// What every refusal of such a directory says (an empty listing would read as "no backups" or
// "no records").
[[nodiscard]] inline std::string link_not_followed(const std::filesystem::path& dir) {
    return dir.string() + " is a symbolic link; resilite never follows one: give the directory's real path";
}

}  // namespace resilite::detail
