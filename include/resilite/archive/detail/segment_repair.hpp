#pragma once
// Rewriting a damaged segment: the valid, unique records are kept byte for byte; everything else
// (text that is no record, records with broken framing or a wrong CRC-32, a torn tail, a second
// copy of a record number) is first written to a file of its own beside the segment, synced,
// and only then cut out of the segment by an atomic rename. A crash at any point leaves either
// the old segment or the new one, and the removed bytes are never only in memory.

#include <resilite/archive/detail/archive_format.hpp>
#include <resilite/archive/detail/segment_file.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/detail/durable_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail::archive {

struct segment_plan {
    std::string name;
    file_bytes text;
    std::vector<record> records;  // valid ones, file order (point into text)
    std::vector<archive_problem> problems;
    bool unknown_format = false;
    std::set<std::size_t> drop;  // indexes into `records` of copies not kept (a number seen before)
};

// Offset of the header line of a record read from `text`.
[[nodiscard]] inline std::size_t record_start(std::string_view text, const record& r) {
    const auto body_at = static_cast<std::size_t>(r.body.data() - text.data());
    const auto header_end = body_at - 7 - 1;  // the header's '\n', before "BEGIN;\n"
    const auto nl = header_end == 0 ? std::string_view::npos : text.rfind('\n', header_end - 1);
    return nl == std::string_view::npos ? 0 : nl + 1;
}

// Which copy of each record number is kept: the first in (segment name, file order) order, as
// read_archive uses it. The others are marked to drop; a dropped copy whose content differs from
// the kept one is named in `conflicts` (which one was right is not proved by the repair).
inline void mark_duplicates(std::vector<segment_plan>& plans, std::vector<std::string>& conflicts) {
    std::map<std::int64_t, std::pair<std::uint32_t, std::string>> seen;  // seq -> crc, where
    for (auto& p : plans) {
        for (std::size_t i = 0; i < p.records.size(); ++i) {
            const auto& r = p.records[i];
            const auto [it, first] =
                seen.try_emplace(r.header.seq, r.crc, resilite::detail::format("{}:{}", p.name, r.line));
            if (first) continue;
            p.drop.insert(i);
            if (it->second.first != r.crc)
                conflicts.push_back(
                    resilite::detail::format("txn {} at {}:{} differs from the copy kept at {}", r.header.seq,
                                             p.name, r.line, it->second.second));
        }
    }
}

struct segment_cut {
    std::string kept;       // the new segment text
    std::string removed;    // what goes aside, each span introduced by a comment line naming it
    std::int64_t kept_records = 0, removed_spans = 0;
    std::uintmax_t removed_bytes = 0;
};

// The segment's first line is kept when it is a v1 preamble (a new one is written otherwise);
// then every kept record; the rest goes aside.
[[nodiscard]] inline segment_cut cut_segment(const segment_plan& p, std::string_view database_name) {
    segment_cut out;
    const std::string_view text{p.text};
    std::size_t kept_to = 0;  // bytes of `text` accounted for
    const auto first_nl = text.find('\n');
    if (text.starts_with(format_line) && first_nl != std::string_view::npos &&
        (first_nl == format_line.size() || text[format_line.size()] == ' ')) {
        out.kept.append(text.substr(0, first_nl + 1));
        kept_to = first_nl + 1;
    } else {
        out.kept = segment_preamble(database_name, p.name);
    }
    const auto set_aside_span = [&](std::size_t from, std::size_t to) {
        if (to <= from) return;
        const auto span = text.substr(from, to - from);
        // Blank lines and comments between records carry nothing.
        bool only_comments = true;
        std::size_t pos = 0;
        while (pos < span.size()) {
            const auto nl = span.find('\n', pos);
            const auto line = span.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
            if (nl == std::string_view::npos ||
                (!line.starts_with("--") && line.find_first_not_of(" \t\r") != std::string_view::npos) ||
                line.starts_with(header_prefix))
                only_comments = false;
            pos = nl == std::string_view::npos ? span.size() : nl + 1;
        }
        if (only_comments) {
            out.kept.append(span);
            return;
        }
        fmt::format_to(std::back_inserter(out.removed), "-- resilite archive repair: bytes {}-{} of {}: no valid record, "
                       "or a second copy of a record kept\n",
                       from, to, p.name);
        out.removed.append(span);
        if (!span.ends_with('\n')) out.removed += '\n';
        ++out.removed_spans;
        out.removed_bytes += span.size();
    };
    for (std::size_t i = 0; i < p.records.size(); ++i) {
        const auto& r = p.records[i];
        const auto start = record_start(text, r);
        if (p.drop.count(i) != 0) continue;  // goes aside with the span around it
        set_aside_span(kept_to, start);
        out.kept.append(text.substr(start, r.end - start));
        kept_to = r.end;
        ++out.kept_records;
    }
    set_aside_span(kept_to, text.size());
    return out;
}

// "<segment>.<what>-<utc>", a name not taken yet.
[[nodiscard]] inline std::filesystem::path free_name(const std::filesystem::path& dir, const std::string& segment,
                                                     std::string_view what) {
    const auto stamp = utc_text(std::chrono::system_clock::now());
    std::error_code ec;
    auto p = dir / resilite::detail::format("{}.{}-{}", segment, what, stamp);
    for (int n = 2; std::filesystem::exists(std::filesystem::symlink_status(p, ec)); ++n)
        p = dir / resilite::detail::format("{}.{}-{}-{}", segment, what, stamp, n);
    return p;
}

// The removed bytes go to `aside` (synced) before the segment is replaced (temporary file,
// synced, renamed over it, directory synced). Throws (class archive) on failure; the segment
// is then as it was.
// The new segment keeps the old one's owner and mode: the application appends to it next.
inline void replace_segment(const std::filesystem::path& dir, const std::string& name, const segment_cut& cut,
                            const std::filesystem::path& aside) {
    struct ::stat st {};
    if (::lstat((dir / name).c_str(), &st) != 0) fail_io("cannot read", dir / name);
    if (!cut.removed.empty()) {
        if (!set_aside(aside, cut.removed)) fail_io("cannot write the set-aside file", aside);
        // Its name durable before the segment loses the bytes.
        if (!fsync_path(dir, true)) fail_io("cannot sync the archive directory", dir);
    }
    const auto temp = dir / resilite::detail::format(".{}.repair-{}", name, ::getpid());
    std::error_code ec;
    std::filesystem::remove(temp, ec);
    {
        // Owner and mode set before the data is synced, so that both are durable with it.
        const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) fail_io("cannot write the repaired segment", temp);
        bool ok = ::fchmod(fd, st.st_mode & 07777) == 0 &&
                  ((st.st_uid == ::geteuid() && st.st_gid == ::getegid()) || ::fchown(fd, st.st_uid, st.st_gid) == 0);
        for (std::string_view rest{cut.kept}; ok && !rest.empty();) {
            const auto n = ::write(fd, rest.data(), rest.size());
            if (n < 0 && errno == EINTR) continue;
            ok = n > 0;
            if (ok) rest.remove_prefix(static_cast<std::size_t>(n));
        }
        ok = ok && ::fsync(fd) == 0;
        const int saved = errno;
        ::close(fd);
        if (!ok) {
            std::filesystem::remove(temp, ec);
            errno = saved;
            fail_io("cannot write the repaired segment (with the old one's owner and mode)", temp);
        }
    }
    if (::rename(temp.c_str(), (dir / name).c_str()) != 0) {
        const int saved = errno;
        std::filesystem::remove(temp, ec);
        errno = saved;
        fail_io("cannot replace the segment", dir / name);
    }
    if (!fsync_path(dir, true)) fail_io("cannot sync the archive directory", dir);
}

}  // namespace resilite::detail::archive
