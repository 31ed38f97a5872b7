#pragma once
// The archive's text format (v1). A segment is plain SQL that a person can read and the sqlite3
// shell can replay; each committed batch of changes is one record:
//
//   -- txn 1042 2026-11-22T08:01:02.123Z changes outbox 17-23 bytes 345
//   BEGIN;
//   INSERT INTO "users"("id","name") VALUES(1,'Ann') ON CONFLICT("id") DO UPDATE SET ...;
//   COMMIT; -- txn 1042 crc32 5f1e2a3b
//
// The header gives the body's length in bytes, so a value that happens to contain a line like
// a header cannot confuse the reader; the CRC-32 covers the sequence number, time, kind and
// body, so a changed value, number or time is noticed.

#include <resilite/archive/archive_report.hpp>
#include <resilite/core/detail/crc32.hpp>

#include <resilite/detail/format.hpp>
#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resilite::detail::archive {

inline constexpr std::string_view format_prefix = "-- resilite archive v";
inline constexpr std::string_view format_line = "-- resilite archive v1";
inline constexpr std::string_view header_prefix = "-- txn ";
inline constexpr std::string_view trailer_prefix = "COMMIT; -- txn ";
// Outbox rows that delimit a snapshot: its statements form a record of their own.
inline constexpr std::string_view baseline_begin = "-- resilite baseline begin";
inline constexpr std::string_view baseline_end = "-- resilite baseline end";
// The first line of a baseline that holds every table of the database (every baseline written
// since every table is archived): a replay drops the tables it does not hold (dropped or renamed
// since an older copy it is replayed over). A comment: older readers skip it.
inline constexpr std::string_view baseline_every_table =
    "-- resilite baseline of every table: a table it does not hold was dropped or renamed";

// The queue of queue_writes<N> (flow/detail/degradation_flow.hpp) keeps, per queue file, the
// number of the last entry replayed, in the replayed write's transaction: its record says so in
// a comment line, "<prefix><generation> <seq>", and a replay of the record sets it too, so that a
// database rebuilt or healed from the archive does not replay the entry again. (A comment: older
// readers and the sqlite3 shell skip it.)
inline constexpr std::string_view queue_replayed_prefix = "-- resilite queue replayed: ";
inline constexpr std::string_view queue_state_table =
    "CREATE TABLE IF NOT EXISTS resilite_queue_state(generation TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)";
// A queue file's generation as the queue writes it: lower-case hex digits (a file's header could
// say anything; nothing else goes into a record line).
[[nodiscard]] constexpr bool queue_generation(std::string_view g) noexcept {
    if (g.empty()) return false;
    for (const char ch : g)
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
    return true;
}

enum class record_kind { changes, baseline };

[[nodiscard]] constexpr std::string_view to_string(record_kind k) noexcept {
    return k == record_kind::baseline ? "baseline" : "changes";
}

struct record_header {
    std::int64_t seq = 0;
    std::string utc;  // 2026-11-22T08:01:02.123Z
    record_kind kind = record_kind::changes;
    std::int64_t first_id = 0, last_id = 0;  // outbox rows the record was drained from
    std::size_t bytes = 0;                   // body length
};

struct record {
    record_header header;
    std::string_view body;  // statements, each ending in ";\n" (empty while it is left in its file)
    std::uint32_t crc = 0;
    std::string segment;
    int line = 0;         // the header's line
    std::size_t end = 0;  // offset just after the record in its segment
    std::size_t body_at = 0;  // offset of the body in its segment (a body left in its file)
};

// A record's CRC-32 (over number, time, kind and body), computed as its body is produced.
class record_checksum {
public:
    record_checksum(std::int64_t seq, std::string_view utc, record_kind kind) {
        const auto head = resilite::detail::format("{} {} {}\n", seq, utc, to_string(kind));
        crc_.process_bytes(head.data(), head.size());
    }
    void add(std::string_view text) { crc_.process_bytes(text.data(), text.size()); }
    [[nodiscard]] std::uint32_t value() const { return crc_.checksum(); }

private:
    detail::crc32 crc_;
};

[[nodiscard]] inline std::uint32_t checksum(std::int64_t seq, std::string_view utc, record_kind kind,
                                            std::string_view body) {
    record_checksum crc{seq, utc, kind};
    crc.add(body);
    return crc.value();
}

[[nodiscard]] inline std::string utc_text(std::chrono::system_clock::time_point t) {
    const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - seconds).count();
    return resilite::detail::format("{}.{:03}Z", detail::utc_format(t, "%Y-%m-%dT%H:%M:%S"), ms);
}

// "2026_11.sql" for a record written at that UTC time.
[[nodiscard]] inline std::string segment_name(std::string_view utc) {
    return resilite::detail::format("{}_{}.sql", utc.substr(0, 4), utc.substr(5, 2));
}

[[nodiscard]] inline std::string segment_preamble(std::string_view database, std::string_view segment) {
    return resilite::detail::format("{} · database {} · segment {}\n", format_line, database,
                                    segment.substr(0, segment.size() - 4));
}

// The lines before a record's body (h.bytes is the body's length) and after it.
inline void append_record_head(std::string& out, const record_header& h) {
    fmt::format_to(std::back_inserter(out), "{}{} {} {} outbox {}-{} bytes {}\nBEGIN;\n", header_prefix,
                   h.seq, h.utc, to_string(h.kind), h.first_id, h.last_id, h.bytes);
}
inline void append_record_tail(std::string& out, std::int64_t seq, std::uint32_t crc) {
    fmt::format_to(std::back_inserter(out), "{}{} crc32 {:08x}\n", trailer_prefix, seq, crc);
}

// Appends the record to `out` (no intermediate copies: a snapshot record can be large).
inline void append_record(std::string& out, record_header h, std::string_view body) {
    h.bytes = body.size();
    append_record_head(out, h);
    out += body;
    append_record_tail(out, h.seq, checksum(h.seq, h.utc, h.kind, body));
}

[[nodiscard]] inline std::string format_record(const record_header& h, std::string_view body) {
    std::string out;
    append_record(out, h, body);
    return out;
}

// Far beyond any real archive, far below overflow.
inline constexpr std::int64_t max_seq = std::int64_t{1} << 60;

namespace parse {

[[nodiscard]] inline bool take(std::string_view& s, std::string_view word) {
    if (!s.starts_with(word)) return false;
    s.remove_prefix(word.size());
    return true;
}

template <class Int>
[[nodiscard]] inline bool number(std::string_view& s, Int& out, int base = 10) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    if (ec != std::errc{} || p == s.data()) return false;
    s.remove_prefix(static_cast<std::size_t>(p - s.data()));
    return true;
}

[[nodiscard]] inline bool plausible_utc(std::string_view t) {
    return t.size() == 24 && t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' &&
           t[19] == '.' && t[23] == 'Z';
}

// "-- txn <seq> <utc> <kind> outbox <a>-<b> bytes <n>"
[[nodiscard]] inline std::optional<record_header> header(std::string_view line) {
    record_header h;
    if (!take(line, header_prefix) || !number(line, h.seq) || !take(line, " ")) return std::nullopt;
    const auto space = line.find(' ');
    if (space == std::string_view::npos || !plausible_utc(line.substr(0, space))) return std::nullopt;
    h.utc = std::string{line.substr(0, space)};
    line.remove_prefix(space + 1);
    if (take(line, "baseline")) {
        h.kind = record_kind::baseline;
    } else if (!take(line, "changes")) {
        return std::nullopt;
    }
    if (!take(line, " outbox ") || !number(line, h.first_id) || !take(line, "-") ||
        !number(line, h.last_id) || !take(line, " bytes ") || !number(line, h.bytes) || !line.empty()) {
        return std::nullopt;
    }
    // Numbers a writer can produce: sequence arithmetic (seq + 1, gaps) then cannot overflow.
    if (h.seq < 1 || h.seq > max_seq || h.first_id < 0 || h.last_id < h.first_id) return std::nullopt;
    return h;
}

// "COMMIT; -- txn <seq> crc32 <hex>"
[[nodiscard]] inline std::optional<std::uint32_t> trailer(std::string_view line, std::int64_t seq) {
    std::int64_t n = 0;
    std::uint32_t crc = 0;
    if (!take(line, trailer_prefix) || !number(line, n) || n != seq || !take(line, " crc32 ") ||
        line.size() != 8 || !number(line, crc, 16) || !line.empty()) {
        return std::nullopt;
    }
    return crc;
}

}  // namespace parse

struct segment_contents {
    std::vector<record> records;  // valid records, in file order
    std::vector<archive_problem> problems;
    std::size_t good_end = 0;  // offset after the last complete record (or the preamble)
    bool torn_tail = false;
    bool unknown_format = false;  // written by another format version: nothing read
};

// Newlines in `s`: memchr is vectorized, std::count at -O2 was not (a quarter of the time spent
// reading a large archive went to counting its lines).
[[nodiscard]] inline int count_lines(std::string_view s) noexcept {
    int n = 0;
    const char* p = s.data();
    const char* const end = p + s.size();
    while (p != end) {
        p = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
        if (p == nullptr) break;
        ++n;
        ++p;
    }
    return n;
}

// Reads one segment. Every record is framed by its header's byte count and checked against its
// CRC; text that is no record, a broken record and a torn last record are reported (never
// guessed at) and skipped.
[[nodiscard]] inline segment_contents read_segment(std::string_view text, const std::string& segment) {
    using K = archive_problem::kind;
    segment_contents out;
    std::size_t pos = 0;
    int line = 1;
    int garbage_line = 0;  // first line of the current run of garbage
    const auto next_line = [&](std::size_t from) {
        const auto nl = text.find('\n', from);
        return nl == std::string_view::npos ? std::pair{text.substr(from), false}
                                            : std::pair{text.substr(from, nl - from), true};
    };
    const auto lines_in = [](std::string_view s) { return count_lines(s); };
    const auto flush_garbage = [&] {
        if (garbage_line == 0) return;
        out.problems.push_back(
            {K::garbage, segment, garbage_line, "text that is not an archive record", false});
        garbage_line = 0;
    };
    while (pos < text.size()) {
        const auto [l, complete] = next_line(pos);
        if (!l.starts_with(header_prefix)) {
            if (!complete) {  // an unfinished last line: torn while a record was being appended
                flush_garbage();
                out.torn_tail = true;
                out.problems.push_back(
                    {K::torn_tail, segment, line, "unfinished last line (skipped)", false});
                break;
            }
            const bool blank = l.find_first_not_of(" \t\r") == std::string_view::npos;
            if (l.starts_with(format_prefix)) {
                const auto rest = l.substr(format_prefix.size());
                const auto version = rest.substr(0, rest.find(' '));
                if (version != "1") {
                    // Another format version: its records cannot be trusted to mean what this
                    // reader thinks they mean.
                    out.problems.push_back(
                        {K::damaged, segment, line,
                         resilite::detail::format("written in archive format v{}; this reader knows v1 "
                                                  "(read it with a newer resilite)",
                                                  version),
                         true});
                    out.unknown_format = true;
                    break;
                }
            }
            if (blank || l.starts_with("--")) {  // the preamble, comments
                flush_garbage();
                if (out.good_end == pos) out.good_end = pos + l.size() + 1;
            } else if (garbage_line == 0) {
                garbage_line = line;
            }
            pos += l.size() + 1;
            ++line;
            continue;
        }
        flush_garbage();
        const int header_line = line;
        const auto h = complete ? parse::header(l) : std::nullopt;
        const std::size_t body_start = pos + l.size() + 1 + 7;  // "BEGIN;\n"
        const bool begins = complete && text.substr(pos + l.size() + 1, 7) == "BEGIN;\n";
        // A claimed length never exceeds what is left of the segment (a length that wraps
        // around would send the reader backwards, round and round).
        if (h && begins && h->bytes <= text.size() - body_start) {
            const auto body = text.substr(body_start, h->bytes);
            const auto [t, t_complete] = next_line(body_start + h->bytes);
            const auto crc = t_complete ? parse::trailer(t, h->seq) : std::nullopt;
            if (crc) {
                record r{*h, body, *crc, segment, header_line, body_start + h->bytes + t.size() + 1};
                pos = r.end;
                line += 2 + lines_in(body) + 1;
                out.good_end = pos;
                if (checksum(h->seq, h->utc, h->kind, body) != *crc) {
                    out.problems.push_back(
                        {K::checksum, segment, header_line,
                         resilite::detail::format("txn {}: its text does not match its CRC-32 (changed "
                                                  "or damaged); not replayed",
                                                  h->seq),
                         true});
                } else {
                    out.records.push_back(std::move(r));
                }
                continue;
            }
        }
        // Broken framing. At the end of the file this is a record cut short by a crash.
        const auto rest = text.substr(pos);
        const auto next_header = rest.find(std::string{"\n"} + std::string{header_prefix}, 1);
        if (next_header == std::string_view::npos) {
            out.torn_tail = true;
            out.problems.push_back(
                {K::torn_tail, segment, header_line,
                 h ? resilite::detail::format("txn {} is incomplete (a crash while it was appended); skipped",
                                              h->seq)
                   : std::string{"an incomplete record at the end; skipped"},
                 false});
            break;
        }
        out.problems.push_back(
            {K::damaged, segment, header_line,
             h ? resilite::detail::format("txn {}: the record's framing is broken; skipped", h->seq)
               : std::string{"a record header that cannot be read; skipped"},
             true});
        line += lines_in(rest.substr(0, next_header + 1));
        pos += next_header + 1;
    }
    flush_garbage();
    return out;
}

}  // namespace resilite::detail::archive
