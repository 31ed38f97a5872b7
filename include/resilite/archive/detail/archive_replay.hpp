#pragma once
// The archive's reading side: every segment read and checked, records put in sequence order
// with duplicates and gaps reported, and a replayer that applies only the writer's statement
// shapes (archive_grammar.hpp), under an authorizer and a bound on the work of each statement.

#include <resilite/archive/archive_report.hpp>
#include <resilite/archive/detail/archive_capture.hpp>
#include <resilite/archive/detail/archive_format.hpp>
#include <resilite/archive/detail/archive_grammar.hpp>
#include <resilite/archive/detail/archive_writer.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>

#include <sqlite3.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <set>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace resilite::detail::archive {

// A point in time: the records after it are left out, as if they were never written.
struct archive_limit {
    std::int64_t seq = std::numeric_limits<std::int64_t>::max();
    std::string utc;  // "2026-11-22T08:01:02.123Z" form; empty: no limit by time
    [[nodiscard]] bool excludes(const record_header& h) const noexcept {
        return h.seq > seq || (!utc.empty() && h.utc > utc);
    }
    [[nodiscard]] bool none() const noexcept {
        return seq == std::numeric_limits<std::int64_t>::max() && utc.empty();
    }
};

// A rebuild's read (`read_archive`'s `stream`): where the records it applies are (from the
// newest baseline on, or from the first record) and what they are, without an entry for each.
// The rebuild reads them again from there (`for_each_streamed`) and fails if it does not meet
// the same records: how many, and a digest of their numbers and checksums.
struct streamed_records {
    std::filesystem::path dir;
    std::size_t segment = 0;      // index in `segments` of the first one's segment
    std::uintmax_t pos = 0;       // offset of the chunk of whole records that holds it
    int lines_before = 0;         // lines of its segment before that chunk
    std::uintmax_t chunk_bytes = 0;
    archive_limit limit;          // the records after it left out
    std::int64_t count = 0;
    std::uint32_t digest = 0;
    std::size_t largest = 0;      // the largest body
    record first, last;           // (bodies left in the segments)
};

// Adds a record to a digest of the records met, in order (streamed_records::digest).
inline void add_to_digest(detail::crc32& digest, const record& r) noexcept {
    digest.process_bytes(&r.header.seq, sizeof r.header.seq);
    digest.process_bytes(&r.crc, sizeof r.crc);
}

struct archive_contents {
    // A full read leaves the bodies in the segments (read in chunks of whole records, each freed
    // before the next: memory does not grow with the archive) and `bodies` reads each again when
    // it is applied; a read of the tail keeps the texts it read, and the records point into them.
    std::deque<file_bytes> texts;
    mutable std::optional<record_bodies> bodies;  // (reading a body moves its window)
    std::vector<std::string> segments;
    std::vector<record> records;  // valid, unique, in sequence order
    std::vector<archive_problem> problems;
    std::size_t start = 0;  // index of the record a rebuild starts at (the newest baseline)
    // Read for a database that already holds the records up to `skipped_through`: those were
    // walked over by their framing, not read or checked, and the line numbers of what was read
    // count from where reading started (a caller that reports problems reads again in full).
    std::int64_t skipped_through = 0, skipped_records = 0;
    // Read with `stream`, the numbers rising throughout: `records` is empty, `streamed` says
    // where the records from the newest baseline on are; those before it were read and checked,
    // then let go (a rebuild applies them to nothing): how many, and the first.
    std::optional<streamed_records> streamed;
    std::int64_t history_records = 0, first_seq = 0;
    std::string first_utc;
    bool left_out = false;  // a record was read past the limit

    [[nodiscard]] bool no_record() const noexcept { return records.empty() && !streamed; }
    // The first record a rebuild applies, and the last record read (none: no record).
    [[nodiscard]] const record* start_record() const noexcept {
        return streamed ? &streamed->first : records.empty() ? nullptr : &records[start];
    }
    [[nodiscard]] const record* last_record() const noexcept {
        return streamed ? &streamed->last : records.empty() ? nullptr : &records.back();
    }
};

inline constexpr std::uintmax_t archive_chunk_bytes = 8u << 20;

// Reads segment `name` of `dir` from `from` (the segment's start, or where a chunk began;
// `lines_before` lines before it) to its end, in chunks of whole records (segment_file.hpp,
// whole_records_end): each read, parsed and checked as it would be inside the whole segment,
// its records' lines, ends and body offsets counted from the segment's start. `f(contents, pos,
// lines_before)` is called for each chunk; the records' bodies point into it until `f` returns.
template <class F>
void read_in_chunks(const std::filesystem::path& dir, const std::string& name, std::uintmax_t from,
                    int lines_before, std::uintmax_t chunk_bytes, F&& f) {
    std::uintmax_t size = 0;
    const auto fd = open_segment(dir / name, size);
    for (std::uintmax_t pos = from; pos < size;) {
        const auto end = whole_records_end(fd.get(), size, pos, std::max<std::uintmax_t>(chunk_bytes, 1));
        const auto chunk = read_from(fd.get(), pos, end);
        // (A short read is an error, not the end: what follows would read as a torn tail.)
        if (chunk.view().size() != end - pos)
            throw library_failure(error_class::archive, "archive",
                                  resilite::detail::format("archive segment {} could not be read whole: {} bytes "
                                                           "at {} gave {} (it shrank, or an I/O error)",
                                                           (dir / name).string(), end - pos, pos,
                                                           chunk.view().size()),
                                  (dir / name).string());
        auto contents = read_segment(chunk, name);
        for (auto& r : contents.records) {
            r.body_at = static_cast<std::size_t>(pos) +
                        static_cast<std::size_t>(r.body.data() - chunk.view().data());
            r.line += lines_before;
            r.end += static_cast<std::size_t>(pos);
        }
        for (auto& p : contents.problems)
            if (p.line > 0) p.line += lines_before;
        f(contents, pos, lines_before);
        lines_before += count_lines(chunk);
        pos = end;
    }
}

// Reads every segment; orders the valid records by sequence number; reports duplicates, gaps
// and time going backwards. Problems before the newest baseline cost a rebuild nothing and are
// downgraded to warnings.
// `not_needed_through` > 0: the reader's database already holds the records up to that number
// (a replay after a restore): they are skipped unread where their framing allows. Otherwise
// every segment is read in chunks of whole records: records are added to a chunk until it holds
// at least `chunk_bytes` (so a chunk is at most that plus one record).
// `stream` (a rebuild, a trial rebuild): no entry is kept for any record while the numbers rise:
// `streamed` says where the records from the newest baseline on are, and the rebuild reads them
// again from there (for_each_streamed), so memory does not grow with the archive. Numbers that
// stop rising (segments out of order, copies) make it read again without `stream`, an entry
// per record (a record read before a baseline but numbered after it is needed).
[[nodiscard]] inline archive_contents read_archive(const std::filesystem::path& dir,
                                                   const archive_limit& limit = {},
                                                   std::int64_t not_needed_through = 0,
                                                   std::uintmax_t chunk_bytes = archive_chunk_bytes,
                                                   bool stream = false) {
    using K = archive_problem::kind;
    if (!limit.none()) not_needed_through = 0;  // (a point in time is read in full)
    stream = stream && not_needed_through == 0;
    std::int64_t highest = 0;
    archive_contents a;
    std::vector<std::string> odd;
    a.segments = list_segments(dir, &odd);
    for (const auto& name : odd) {
        // Never followed or read: a link could lead anywhere. Records it holds count as missing.
        a.problems.push_back({K::damaged, name, 0,
                              unusable_segment(dir / name).value_or("not a regular file") + "; not read",
                              true});
    }
    // When the walk cannot vouch for what it passed, or the numbers stop rising in a streamed
    // read: every record read, an entry kept for each (what was read so far freed first).
    const auto read_in_full = [&] {
        a = archive_contents{};
        return read_archive(dir, limit, 0, chunk_bytes);
    };
    std::vector<std::pair<std::int64_t, std::size_t>> damaged;  // seq of a checksum failure, problem index
    const auto take_problems = [&](segment_contents& contents) {
        for (auto& p : contents.problems) {
            if (p.what == K::checksum) {
                std::int64_t seq = 0;
                std::string_view m = p.message;
                if (parse::take(m, "txn ") && parse::number(m, seq)) {
                    damaged.emplace_back(seq, a.problems.size());
                    p.up_to_seq = seq;
                }
            }
            a.problems.push_back(std::move(p));
        }
    };
    // The gaps and times going backwards between two records in sequence order.
    const auto check_between = [&](const record& prev, const record& r, std::vector<archive_problem>& out) {
        if (r.header.seq != prev.header.seq + 1) {
            const bool explained = std::any_of(damaged.begin(), damaged.end(), [&](const auto& d) {
                return d.first > prev.header.seq && d.first < r.header.seq;
            });
            out.push_back({K::gap, r.segment, r.line,
                           resilite::detail::format("txn {} to {} are missing{}", prev.header.seq + 1,
                                                    r.header.seq - 1,
                                                    explained ? " (see the damaged records above)" : ""),
                           true, r.header.seq - 1});
        }
        if (r.header.utc < prev.header.utc) {
            out.push_back({K::time_order, r.segment, r.line,
                           resilite::detail::format("txn {} ({}) is older than txn {} ({})", r.header.seq,
                                                    r.header.utc, prev.header.seq, prev.header.utc),
                           false});
        }
    };
    // A gap before the newest baseline: reported (a rebuild to a point before it cannot be done),
    // not fatal (a rebuild starts from the baseline).
    const auto before_snapshot = [](archive_problem& p) {
        if (p.what != K::gap || !p.fatal) return;
        p.fatal = false;
        p.message += " (before the snapshot a rebuild starts from: nothing lost, but no rebuild to a point "
                     "before it)";
    };
    // Streaming: the gaps and times found before the newest baseline and since, and a digest of
    // the records since.
    std::vector<archive_problem> before_start, since_start;
    detail::crc32 digest;
    std::int64_t seen = 0;
    std::optional<std::int64_t> first_left_out;  // the first record past the limit
    // False when the numbers stop rising: the caller reads again without streaming.
    const auto stream_take = [&](segment_contents& contents, std::size_t segment, std::uintmax_t pos,
                                 int lines_before) {
        take_problems(contents);
        for (auto& r : contents.records) {
            if (r.header.seq <= highest) return false;
            highest = r.header.seq;
            if (limit.excludes(r.header)) {
                if (!first_left_out) first_left_out = r.header.seq;
                continue;
            }
            r.body = {};
            if (seen++ == 0) {
                a.first_seq = r.header.seq;
                a.first_utc = r.header.utc;
            }
            auto& s = a.streamed;
            if (s) check_between(s->last, r, since_start);
            if (!s || r.header.kind == record_kind::baseline) {
                s.emplace();
                s->dir = dir;
                s->segment = segment;
                s->pos = pos;
                s->lines_before = lines_before;
                s->chunk_bytes = chunk_bytes;
                s->limit = limit;
                s->first = r;
                for (auto& p : since_start) {
                    before_snapshot(p);
                    before_start.push_back(std::move(p));
                }
                since_start.clear();
                digest = detail::crc32{};
            }
            ++s->count;
            add_to_digest(digest, r);
            s->largest = std::max(s->largest, r.header.bytes);
            s->last = std::move(r);
        }
        return true;
    };
    const auto take = [&](segment_contents& contents) {
        take_problems(contents);
        for (auto& r : contents.records)
            a.records.push_back(std::move(r));
    };
    if (stream) {
        bool rising = true;
        for (std::size_t i = 0; i < a.segments.size() && rising; ++i) {
            read_in_chunks(dir, a.segments[i], 0, 0, chunk_bytes,
                           [&](segment_contents& contents, std::uintmax_t pos, int lines_before) {
                               if (rising) rising = stream_take(contents, i, pos, lines_before);
                           });
        }
        if (!rising) return read_in_full();
        if (a.streamed) {
            a.streamed->digest = digest.checksum();
            a.history_records = seen - a.streamed->count;
        }
    }
    if (not_needed_through == 0 && !stream) a.bodies.emplace(dir);
    for (const auto& name : a.segments) {
        if (stream) break;
        if (not_needed_through == 0) {
            // Each record's body left in the file (record_bodies reads it again when applied).
            read_in_chunks(dir, name, 0, 0, chunk_bytes, [&](segment_contents& contents, std::uintmax_t, int) {
                for (auto& r : contents.records)
                    r.body = {};
                take(contents);
            });
            continue;
        }
        auto tail = read_segment_after(dir / name, not_needed_through, a.skipped_through);
        // Numbers that do not rise: a skipped record could have a conflicting copy.
        if (tail.skipped.disordered) return read_in_full();
        a.skipped_through = std::max(a.skipped_through, tail.skipped.last_seq);
        a.skipped_records += tail.skipped.records;
        const auto& text = a.texts.emplace_back(std::move(tail.text));
        auto contents = read_segment(text, name);
        // A record read that the walk should have passed (after one it could not): it may be a
        // copy of one it skipped.
        if (std::any_of(contents.records.begin(), contents.records.end(),
                        [&](const record& r) { return r.header.seq <= not_needed_through; }))
            return read_in_full();
        take(contents);
    }
    std::stable_sort(a.records.begin(), a.records.end(),
                     [](const record& x, const record& y) { return x.header.seq < y.header.seq; });
    std::size_t kept = 0;  // (in place: a second vector of every entry would double the peak)
    for (std::size_t i = 0; i < a.records.size(); ++i) {
        auto& r = a.records[i];
        if (kept > 0 && a.records[kept - 1].header.seq == r.header.seq) {
            const auto& first = a.records[kept - 1];
            const bool same = first.crc == r.crc;
            a.problems.push_back(
                {same ? K::duplicate : K::conflicting_duplicate, r.segment, r.line,
                 same ? resilite::detail::format("txn {} appears again (first at {}:{}); skipped", r.header.seq,
                                                 first.segment, first.line)
                      : resilite::detail::format("txn {} appears again with other content (first at {}:{}); "
                                                 "the first one is used",
                                                 r.header.seq, first.segment, first.line),
                 !same});
            continue;
        }
        if (kept != i) a.records[kept] = std::move(r);
        ++kept;
    }
    a.records.resize(kept);
    if (!limit.none()) {
        // (records are in sequence order, and their times too unless a time_order problem says not)
        // A damaged record is not needed when it is past the limit by number, or numbered after
        // a record left out by time (times go forward with the numbers).
        for (const auto& r : a.records)
            if (limit.excludes(r.header) && (!first_left_out || r.header.seq < *first_left_out))
                first_left_out = r.header.seq;
        const auto not_needed_after = first_left_out ? std::min(*first_left_out, limit.seq) : limit.seq;
        std::erase_if(a.records, [&](const record& r) { return limit.excludes(r.header); });
        a.left_out = first_left_out.has_value();
        for (const auto& [seq, index] : damaged) {
            if (seq > not_needed_after && a.problems[index].fatal) {
                a.problems[index].fatal = false;
                a.problems[index].message += " (after the point in time asked: not needed)";
            }
        }
        // Records missing just before the first one left out: without them the result would be an
        // earlier point than the one asked for, silently.
        const auto* last = a.last_record();
        const auto last_kept = last == nullptr ? std::int64_t{0} : last->header.seq;
        const auto point = first_left_out ? std::min(*first_left_out - 1, limit.seq) : last_kept;
        if (last_kept < point) {
            a.problems.push_back(
                {K::gap, last == nullptr ? std::string{} : last->segment, last == nullptr ? 0 : last->line,
                 resilite::detail::format("txn {} to {}, before the point in time asked, are missing",
                                          last_kept + 1, point),
                 true, point});
        }
    }
    for (std::size_t i = 0; i < a.records.size(); ++i) {
        if (a.records[i].header.kind == record_kind::baseline) a.start = i;
    }
    const std::int64_t start_seq = a.start_record() == nullptr ? 0 : a.start_record()->header.seq;
    for (const auto& [seq, index] : damaged) {
        if (seq < start_seq) {
            a.problems[index].fatal = false;
            a.problems[index].message += " (before the snapshot a rebuild starts from: nothing lost)";
        }
    }
    if (const auto* start_record = a.start_record()) {
        const auto& first = *start_record;
        // (read for a database that holds records already: the first one it lacks)
        const auto expected = not_needed_through > 0 ? not_needed_through + 1 : 1;
        if (first.header.kind != record_kind::baseline && first.header.seq > expected) {
            a.problems.push_back({K::gap, first.segment, first.line,
                                  resilite::detail::format(
                                      "the archive starts at txn {} and holds no snapshot: txn {} to {} are "
                                      "missing",
                                      first.header.seq, expected, first.header.seq - 1),
                                  true, first.header.seq - 1});
        }
    }
    for (std::size_t i = 1; i < a.records.size(); ++i) {
        const auto before = a.problems.size();
        check_between(a.records[i - 1], a.records[i], a.problems);
        if (i <= a.start)
            for (auto p = a.problems.begin() + static_cast<std::ptrdiff_t>(before); p != a.problems.end(); ++p)
                before_snapshot(*p);
    }
    for (auto* list : {&before_start, &since_start})
        for (auto& p : *list)
            a.problems.push_back(std::move(p));
    return a;
}

// Calls `f(record)` for each record a streamed read (read_archive's `stream`) found from its
// start on, in order, its body read again and checked against its CRC-32 by the segment's read.
// Throws (class archive) if it meets other records than the first read did: the archive changed
// between the two reads (the caller's transaction then rolls back what `f` did).
template <class F>
void for_each_streamed(const archive_contents& a, F&& f) {
    const auto& s = *a.streamed;
    detail::crc32 digest;
    std::int64_t count = 0, last = 0;
    const auto changed = [&](std::string_view what) {
        return library_failure(error_class::archive, "archive",
                               resilite::detail::format("the archive {} changed while it was read ({}): nothing "
                                                        "of it was applied",
                                                        s.dir.string(), what),
                               s.dir.string());
    };
    for (std::size_t i = s.segment; i < a.segments.size(); ++i) {
        const bool first_segment = i == s.segment;
        read_in_chunks(s.dir, a.segments[i], first_segment ? s.pos : 0, first_segment ? s.lines_before : 0,
                       s.chunk_bytes, [&](segment_contents& contents, std::uintmax_t, int) {
                           for (const auto& r : contents.records) {
                               // (before it, in its chunk; past the limit; appended since the
                               // first read, or completed since: a live archive grows)
                               if (r.header.seq < s.first.header.seq || r.header.seq > s.last.header.seq ||
                                   s.limit.excludes(r.header))
                                   continue;
                               if (r.header.seq <= last || ++count > s.count) throw changed("other records");
                               last = r.header.seq;
                               add_to_digest(digest, r);
                               f(r);
                           }
                       });
    }
    if (count != s.count) throw changed(resilite::detail::format("{} records where there were {}", count, s.count));
    if (digest.checksum() != s.digest) throw changed("other records in the place of those read first");
}

// Functions a replayed statement may call: SQLite's pure built-ins. Anything else (an
// application function, load_extension, fts3_tokenizer, sqlite_* internals) is refused.
[[nodiscard]] inline bool allowed_function(std::string_view name) {
    static const std::set<std::string, std::less<>> allowed = {"abs",
                                                               "char",
                                                               "coalesce",
                                                               "concat",
                                                               "concat_ws",
                                                               "date",
                                                               "datetime",
                                                               "format",
                                                               "glob",
                                                               "hex",
                                                               "ifnull",
                                                               "iif",
                                                               "instr",
                                                               "julianday",
                                                               "length",
                                                               "like",
                                                               "likelihood",
                                                               "likely",
                                                               "lower",
                                                               "ltrim",
                                                               "max",
                                                               "min",
                                                               "nullif",
                                                               "octet_length",
                                                               "printf",
                                                               "quote",
                                                               "random",
                                                               "randomblob",
                                                               "replace",
                                                               "round",
                                                               "rtrim",
                                                               "sign",
                                                               "soundex",
                                                               "strftime",
                                                               "substr",
                                                               "substring",
                                                               "time",
                                                               "timediff",
                                                               "trim",
                                                               "typeof",
                                                               "unhex",
                                                               "unicode",
                                                               "unixepoch",
                                                               "unlikely",
                                                               "upper",
                                                               "zeroblob",
                                                               "json",
                                                               "json_array",
                                                               "json_extract",
                                                               "json_object",
                                                               "json_insert",
                                                               "json_replace",
                                                               "json_set",
                                                               "json_remove",
                                                               "json_type",
                                                               "json_valid",
                                                               "json_quote",
                                                               "json_patch",
                                                               "count",
                                                               "sum",
                                                               "total",
                                                               "avg",
                                                               "group_concat",
                                                               "acos",
                                                               "asin",
                                                               "atan",
                                                               "atan2",
                                                               "ceil",
                                                               "ceiling",
                                                               "cos",
                                                               "degrees",
                                                               "exp",
                                                               "floor",
                                                               "ln",
                                                               "log",
                                                               "log10",
                                                               "log2",
                                                               "mod",
                                                               "pi",
                                                               "pow",
                                                               "power",
                                                               "radians",
                                                               "sin",
                                                               "sqrt",
                                                               "tan",
                                                               "trunc",
                                                               "current_date",
                                                               "current_time",
                                                               "current_timestamp"};
    return allowed.count(lower(name)) != 0;
}

[[nodiscard]] inline std::string_view action_name(int action) {
    switch (action) {
        case SQLITE_DROP_INDEX:
            return "DROP INDEX";
        case SQLITE_DROP_TABLE:
            return "DROP TABLE";
        case SQLITE_DROP_TRIGGER:
            return "DROP TRIGGER";
        case SQLITE_DROP_VIEW:
            return "DROP VIEW";
        case SQLITE_DROP_TEMP_INDEX:
        case SQLITE_DROP_TEMP_TABLE:
        case SQLITE_DROP_TEMP_TRIGGER:
        case SQLITE_DROP_TEMP_VIEW:
            return "DROP TEMP";
        case SQLITE_CREATE_VIEW:
        case SQLITE_CREATE_TEMP_VIEW:
            return "CREATE VIEW";
        case SQLITE_CREATE_TEMP_TABLE:
        case SQLITE_CREATE_TEMP_INDEX:
        case SQLITE_CREATE_TEMP_TRIGGER:
            return "CREATE TEMP";
        case SQLITE_CREATE_VTABLE:
            return "CREATE VIRTUAL TABLE";
        case SQLITE_DROP_VTABLE:
            return "DROP VIRTUAL TABLE";
        case SQLITE_PRAGMA:
            return "PRAGMA";
        case SQLITE_ATTACH:
            return "ATTACH";
        case SQLITE_DETACH:
            return "DETACH";
        case SQLITE_TRANSACTION:
            return "a transaction statement";
        case SQLITE_SAVEPOINT:
            return "SAVEPOINT";
        case SQLITE_ANALYZE:
            return "ANALYZE";
        case SQLITE_REINDEX:
            return "REINDEX";
        case SQLITE_ALTER_TABLE:
            return "ALTER TABLE other than ADD COLUMN";
        default:
            return "this kind of statement";
    }
}

// How much work a replayed statement may do, in SQLite virtual machine steps: a fixed allowance
// plus a share that grows with the data the statement may legitimately touch (the database
// before the replay, what the archive has added so far, the statement itself). The writer's
// shapes stay far below it (an upsert costs a few dozen steps, an index over n rows some tens
// per row); a statement that runs away is stopped, and the count is the same on every machine.
struct replay_budget {
    std::int64_t base_steps = 10'000'000;
    std::int64_t steps_per_byte = 64;
};

// Applies records on one connection, each in a savepoint of the caller's transaction. Every
// statement must have one of the writer's shapes (archive_grammar.hpp) and pass the authorizer;
// a trigger in the archive is never created (it is code that would run inside the application:
// the application's declared schema adds its triggers when it opens the database).
class replayer {
public:
    // `tables`: the tables row changes may touch (lower-case); CREATE TABLE records add to it.
    replayer(sqlite::connection& c, std::set<std::string> tables, replay_budget budget = {})
        : c_(c), tables_(std::move(tables)), budget_(budget) {
        const auto pages = c_.query_one<std::int64_t>("PRAGMA page_count").value_or(0);
        const auto page_size = c_.query_one<std::int64_t>("PRAGMA page_size").value_or(0);
        basis_ = pages * page_size;
        sqlite3_set_authorizer(c_.native_handle(), &replayer::authorize, this);
        sqlite3_progress_handler(c_.native_handle(), steps_per_call, &replayer::progress, this);
    }
    replayer(const replayer&) = delete;
    replayer& operator=(const replayer&) = delete;
    ~replayer() {
        forget_shapes();
        sqlite3_progress_handler(c_.native_handle(), 0, nullptr, nullptr);
        sqlite3_set_authorizer(c_.native_handle(), nullptr, nullptr);
    }

    // Runs `f`, the library's own reads or writes, without authorizer limits or step budget.
    template <class F>
    decltype(auto) as_library(F&& f) {
        struct restore {
            bool& flag;
            ~restore() { flag = false; }
        } guard{trusted_};
        trusted_ = true;
        return std::forward<F>(f)();
    }

    // Runs SQL of the library's own.
    void trusted(std::string_view sql) {
        as_library([&] { c_.exec_script(sql); });
    }

    // "<generation> <seq>" of a queue_replayed_prefix line: the queued write this record replayed
    // (archive_format.hpp). Anything else is left a comment.
    void note_queue_replayed(std::string_view what) {
        const auto space = what.find(' ');
        if (space == std::string_view::npos) return;
        const auto generation = what.substr(0, space);
        const auto digits = what.substr(space + 1);
        std::int64_t seq = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
        if (!queue_generation(generation) || ec != std::errc{} || end != digits.data() + digits.size() || seq <= 0)
            return;
        as_library([&] {
            c_.exec(queue_state_table);
            c_.exec("INSERT INTO resilite_queue_state(generation, last_seq) VALUES(?1, ?2) ON CONFLICT(generation) DO "
                    "UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                    generation, seq);
        });
    }

    // Row changes run through a prepared shape, and the shapes prepared (run_shaped).
    [[nodiscard]] std::int64_t shaped_runs() const noexcept { return shaped_runs_; }
    [[nodiscard]] std::int64_t shapes_prepared() const noexcept { return shapes_prepared_; }

    // Applies every statement of the record, or none: returns false and adds a problem (with
    // the statement's segment and line) when one is refused or fails.
    bool apply(const record& r, std::vector<archive_problem>& problems) {
        trusted("SAVEPOINT resilite_replay");
        // A baseline is the whole database: rows it does not hold (deleted since a backup that
        // had them) must not survive it. Temporary triggers note each row it writes; the rest go.
        std::vector<std::pair<std::string, std::string>> swept;  // table, its rowid's name
        std::vector<std::string> before;
        if (r.header.kind == record_kind::baseline) swept = watch_baseline(before);
        const bool every_table = r.header.kind == record_kind::baseline && r.body.starts_with(baseline_every_table);
        std::set<std::string> created, created_indexes;  // (lower case) the tables and indexes the baseline holds
        // A table the whole-database baseline does not hold was dropped or renamed after the copy
        // it is replayed over: it goes (its triggers, the watching ones included, with it); so
        // does an index. Once its schema is read (it comes before its rows), before the rows: a
        // UNIQUE index dropped since would refuse a row committed after that.
        bool dropped = !every_table;
        // A user's table named resilite_... that the baseline does not hold is left as it is:
        // archives written before such tables were archived (2026-12-07) never describe them.
        const auto never_described = [&](const std::string& name) {
            return created.count(lower(name)) == 0 && lower(name).starts_with("resilite_");
        };
        const auto drop_what_it_lacks = [&] {
            if (std::exchange(dropped, true)) return;
            for (const auto& name : before)
                if (created.count(lower(name)) == 0 && !never_described(name))
                    trusted(resilite::detail::format("DROP TABLE main.{}", quote_id(name)));
            for (const auto& [name, table] : indexes())
                if (created_indexes.count(lower(name)) == 0 && !reserved_name(table) && !reserved_name(name))
                    trusted(resilite::detail::format("DROP INDEX main.{}", quote_id(name)));
        };
        const std::string_view body = r.body;
        std::size_t p = 0;
        int line = r.line + 2;    // the body starts after the header and BEGIN
        std::size_t counted = 0;  // newlines before here are in `line`
        while (p < body.size()) {
            while (p < body.size() && (body[p] == ' ' || body[p] == '\t' || body[p] == '\r' || body[p] == '\n'))
                ++p;
            if (body.substr(p).starts_with("--")) {  // a comment line of the writer's (baseline_every_table)
                const auto eol = body.find('\n', p);
                const auto comment = body.substr(p, eol == std::string_view::npos ? std::string_view::npos : eol - p);
                if (comment.starts_with(queue_replayed_prefix)) note_queue_replayed(comment.substr(queue_replayed_prefix.size()));
                p = eol == std::string_view::npos ? body.size() : eol;
                continue;
            }
            if (p == body.size()) break;
            line += count_lines(body.substr(counted, p - counted));
            counted = p;
            const auto rest = body.substr(p);
            const auto check = check_statement(rest, &tokens_);
            std::string_view text = rest.substr(0, check.length);
            kind_ = check.kind;
            if (r.header.kind == record_kind::baseline) {
                if (kind_ == statement_kind::create_table && tokens_.size() > 5) {
                    const auto name = name_of(tokens_[5].text);
                    created.insert(lower(name));
                    widen_to(name, text, before);
                }
                if (kind_ == statement_kind::create_index) {  // CREATE [UNIQUE] INDEX IF NOT EXISTS name
                    const std::size_t at = grammar::same_word(tokens_[1].text, "UNIQUE") ? 6 : 5;
                    if (tokens_.size() > at) created_indexes.insert(lower(name_of(tokens_[at].text)));
                }
                if (kind_ == statement_kind::row_change) drop_what_it_lacks();
                if (kind_ == statement_kind::row_change && noted_upsert(text)) {
                    text = rewritten_;
                    static_cast<void>(check_statement(text, &tokens_));
                }
            }
            refusal_.clear();
            std::string message;
            bool refused = false;
            if (kind_ == statement_kind::create_trigger) {
                problems.push_back(
                    {archive_problem::kind::refused, r.segment, line,
                     resilite::detail::format("txn {}: a trigger is never created from an archive (it would "
                                              "run inside the application); the application's declared "
                                              "schema adds its triggers when it opens the database",
                                              r.header.seq),
                     false});
                p += check.length;
                continue;
            }
            if (kind_ == statement_kind::other) {
                refused = true;
                message = resilite::detail::format(
                    "{} is not a statement the archive writer produces (only upserts of "
                    "literal rows, deletes by key and additive DDL are replayed)",
                    check.words);
            } else if (kind_ == statement_kind::row_change && shape_row(tokens_, shape_)) {
                message = run_shaped(text, refused);
            } else {
                message = run(text, refused);
            }
            // The row was written by INSERT/UPDATE OR REPLACE, which deleted the row in its way
            // through another unique constraint without a delete trigger (nothing recorded it):
            // that row goes, and the upsert runs again (unique_conflict_delete says when).
            for (int conflicts = 0; !message.empty() && !refused && kind_ == statement_kind::row_change &&
                                    sqlite3_extended_errcode(c_.native_handle()) == SQLITE_CONSTRAINT_UNIQUE &&
                                    conflicts < 8;
                 ++conflicts) {
                const auto removal = unique_conflict_delete(message);
                if (!removal || !remove_one(*removal)) break;
                message = shape_row(tokens_, shape_) ? run_shaped(text, refused) : run(text, refused);
            }
            // A column added again: a database healed from a copy older than the column knew the
            // column as new and archived it a second time (SQLite says this only when the
            // table has the column; the verification compares what it holds).
            if (!refused && kind_ == statement_kind::add_column && message.starts_with("duplicate column name"))
                message.clear();
            if (!message.empty()) {
                if (sqlite3_get_autocommit(c_.native_handle()) != 0) {
                    // SQLite rolled back the caller's whole transaction (an interrupted statement,
                    // a full disk): nothing can go on from here.
                    throw library_failure(error_class::archive, "replay",
                                          resilite::detail::format("{}:{}: txn {}: {}; nothing was applied",
                                                                   r.segment, line, r.header.seq, message),
                                          c_.path());
                }
                problems.push_back({refused ? archive_problem::kind::refused : archive_problem::kind::failed,
                                    r.segment, line,
                                    resilite::detail::format("txn {}: {}; the record was not applied",
                                                             r.header.seq, message),
                                    true});
                trusted("ROLLBACK TO resilite_replay; RELEASE resilite_replay");
                return false;
            }
            applied_bytes_ += static_cast<std::int64_t>(check.length);
            p += check.length;
        }
        drop_what_it_lacks();  // (a baseline of no rows)
        for (std::size_t i = 0; i < swept.size(); ++i) {
            const auto& [name, rowid] = swept[i];
            if (never_described(name)) {  // left as it is, without its watching triggers
                trusted(resilite::detail::format(
                    "DROP TRIGGER temp.resilite_baseline_{0}_i; DROP TRIGGER temp.resilite_baseline_{0}_u;",
                    i));
                continue;
            }
            if (every_table && created.count(lower(name)) == 0) continue;  // dropped above
            trusted(resilite::detail::format(
                "DELETE FROM main.{0} WHERE {3} NOT IN (SELECT rid FROM temp.resilite_baseline_seen "
                "WHERE tbl = {1}); DROP TRIGGER temp.resilite_baseline_{2}_i; "
                "DROP TRIGGER temp.resilite_baseline_{2}_u;",
                quote_id(name), quote_literal(name), i, rowid));
        }
        trusted("RELEASE resilite_replay");
        return true;
    }

private:
    static constexpr int steps_per_call = 1000;

    // A baseline's upsert of a row whose columns are all key columns does nothing to a row that
    // is there (ON CONFLICT ... DO NOTHING): the sweep after the baseline would take it for a row
    // the baseline does not hold. As DO UPDATE SET of its first key column to itself, it touches
    // the row and the watching trigger notes it. True (the statement in rewritten_) when rewritten.
    bool noted_upsert(std::string_view text) {
        const auto n = tokens_.size();
        if (n < 3 || !grammar::same_word(tokens_[n - 3].text, "DO") || !grammar::same_word(tokens_[n - 2].text, "NOTHING"))
            return false;
        for (std::size_t i = 0; i + 2 < n; ++i) {
            if (!grammar::same_word(tokens_[i].text, "CONFLICT")) continue;
            const auto key = tokens_[i + 2].text;  // CONFLICT ( key
            if (!key.starts_with('"')) return false;  // (a rowid by a bare name: left as it is)
            const auto at = static_cast<std::size_t>(tokens_[n - 2].text.data() - text.data());
            rewritten_ =
                resilite::detail::format("{}UPDATE SET {}=excluded.{};", text.substr(0, at), key, key);
            return true;
        }
        return false;
    }

    // A baseline's CREATE TABLE IF NOT EXISTS leaves a table of an older copy as it is: one that
    // has gained columns since (ALTER TABLE ... ADD COLUMN, as migrations and schema sync add
    // them) gets them, so the baseline's rows fit and the copy's rows keep their secrets. A table
    // that changed otherwise stays as it is, and the baseline's rows fail: reported.
    void widen_to(const std::string& table, std::string_view create, const std::vector<std::string>& before) {
        if (std::none_of(before.begin(), before.end(), [&](const std::string& b) { return lower(b) == lower(table); }))
            return;
        std::optional<std::vector<existing_column>> added;
        try {
            const auto now = as_library([&] { return schema_inspector{c_}.columns(table); });
            added = added_columns(now, columns_of_sql({"table", table, table, std::string{create}}));
        } catch (const std::exception&) {
            return;  // (the CREATE itself is checked and run next, as any statement)
        }
        if (!added) return;
        for (const auto& col : *added)
            trusted(resilite::detail::format("ALTER TABLE main.{} ADD COLUMN {}", quote_id(table),
                                             column_definition(col)));
    }

    // The indexes of the database (not the automatic ones of its constraints) and their tables.
    [[nodiscard]] std::vector<std::tuple<std::string, std::string>> indexes() {
        return as_library([&] {
            return c_.query_all<std::string, std::string>(
                "SELECT name, tbl_name FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL");
        });
    }

    // The tables (with a rowid) that exist before a baseline, each watched by two temporary
    // triggers that note the rows the baseline writes (inserted, or updated by an upsert).
    // `all`: every table that exists before it (the library's own left out). Returns each
    // watched table with the name its rowid goes by (one no column hides).
    std::vector<std::pair<std::string, std::string>> watch_baseline(std::vector<std::string>& all) {
        trusted("CREATE TEMP TABLE IF NOT EXISTS resilite_baseline_seen(tbl TEXT NOT NULL, rid INTEGER NOT NULL, "
                "PRIMARY KEY(tbl, rid)) WITHOUT ROWID; DELETE FROM temp.resilite_baseline_seen;");
        std::vector<std::pair<std::string, std::string>> out;
        std::vector<std::tuple<std::string, int, std::string>> tables;  // name, without rowid, rowid name
        as_library([&] {
            for (auto& [name, without_rowid] : c_.query_all<std::string, int>(
                     "SELECT name, \"wr\" FROM pragma_table_list WHERE schema = 'main' AND type = 'table'")) {
                if (reserved_name(name)) continue;
                const auto columns = c_.query_all<std::string>("SELECT name FROM pragma_table_info(?)", name);
                tables.emplace_back(name, without_rowid, rowid_name(columns, [](const std::string& n) { return n; }));
            }
        });
        for (auto& [name, without_rowid, rowid] : tables) {
            all.push_back(name);
            // WITHOUT ROWID, or a rowid hidden by columns of every name it has: no rowid to
            // note; the baseline holds every row.
            if (without_rowid != 0 || rowid.empty()) {
                trusted(resilite::detail::format("DELETE FROM main.{}", quote_id(name)));
                continue;
            }
            const auto i = out.size();
            trusted(
                resilite::detail::format("CREATE TEMP TRIGGER resilite_baseline_{0}_i AFTER INSERT ON "
                                         "main.{1} BEGIN INSERT OR IGNORE INTO "
                                         "resilite_baseline_seen VALUES({2}, NEW.{3}); END; "
                                         "CREATE TEMP TRIGGER resilite_baseline_{0}_u AFTER UPDATE ON "
                                         "main.{1} BEGIN INSERT OR IGNORE INTO "
                                         "resilite_baseline_seen VALUES({2}, NEW.{3}); END;",
                                         i, quote_id(name), quote_literal(name), rowid));
            out.emplace_back(name, rowid);
        }
        return out;
    }

    // Runs a row change through its shape's prepared statement (prepared at its first use, when
    // the authorizer sees it), with its literals bound. A shape that does not prepare, or a value
    // that does not bind, goes the way of any statement: prepared from its own text.
    std::string run_shaped(std::string_view text, bool& refused) {
        sqlite3* db = c_.native_handle();
        auto found = shapes_.find(shape_.sql);
        if (found == shapes_.end()) {
            if (shapes_.size() >= max_shapes) forget_least_used();
            sqlite3_stmt* stmt = nullptr;
            const char* tail = nullptr;
            refusal_.clear();
            const int rc = sqlite3_prepare_v3(db, shape_.sql.data(), static_cast<int>(shape_.sql.size()),
                                              SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
            if (rc != SQLITE_OK || stmt == nullptr || tail != shape_.sql.data() + shape_.sql.size() ||
                sqlite3_bind_parameter_count(stmt) != static_cast<int>(shape_.count)) {
                sqlite3_finalize(stmt);
                refusal_.clear();
                return run(text, refused);
            }
            std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owned{stmt, &sqlite3_finalize};
            found = shapes_.emplace(shape_.sql, kept_shape{stmt, 0}).first;  // (if this throws, `owned` finalizes)
            static_cast<void>(owned.release());
            ++shapes_prepared_;
        }
        found->second.used = ++uses_;
        sqlite3_stmt* stmt = found->second.stmt;
        for (std::size_t i = 0; i < shape_.count; ++i) {
            const auto& v = shape_.values[i];
            const int at = static_cast<int>(i + 1);
            const auto size = static_cast<int>(v.bytes.size());
            const int rc = [&] {
                switch (v.kind) {
                    case shaped_value::type::integer:
                        return sqlite3_bind_int64(stmt, at, v.integer);
                    case shaped_value::type::blob:  // never a null pointer: X'' is an empty blob, not NULL
                        return sqlite3_bind_blob(stmt, at, v.bytes.c_str(), size, SQLITE_STATIC);
                    case shaped_value::type::null:
                        return sqlite3_bind_null(stmt, at);
                    default:
                        return sqlite3_bind_text(stmt, at, v.bytes.c_str(), size, SQLITE_STATIC);
                }
            }();
            if (rc != SQLITE_OK) return run(text, refused);  // too big: the literal says why
        }
        ++shaped_runs_;
        // Reset whatever happens: a kept statement left running would hold its read open.
        const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> reset_after{stmt, &sqlite3_reset};
        return execute(stmt, text.size(), refused);
    }

    void forget_shapes() noexcept {
        for (auto& [sql, kept] : shapes_)
            sqlite3_finalize(kept.stmt);
        shapes_.clear();
    }
    // The shape used longest ago makes room (a database of many tables meets more shapes than
    // are kept: the ones in use stay prepared).
    void forget_least_used() noexcept {
        const auto oldest = std::min_element(shapes_.begin(), shapes_.end(), [](const auto& a, const auto& b) {
            return a.second.used < b.second.used;
        });
        if (oldest == shapes_.end()) return;
        sqlite3_finalize(oldest->second.stmt);
        shapes_.erase(oldest);
    }

    // For an upsert that failed with `message` ("UNIQUE constraint failed: t.a, t.b"): the DELETE
    // of the row holding the upsert's values in those columns under another key. Nothing when
    // that cannot be told safely: the message names an index (an expression), or a value is NULL
    // or could be a secret's placeholder ('', 0, X''), which every replayed row of its table
    // holds alike: that failure stays a failure.
    [[nodiscard]] std::optional<std::string> unique_conflict_delete(std::string_view message) const {
        constexpr std::string_view prefix = "UNIQUE constraint failed: ";
        using grammar::same_word;
        if (!message.starts_with(prefix) || tokens_.size() < 4 || !same_word(tokens_[0].text, "INSERT"))
            return std::nullopt;
        // INSERT INTO "t" ( names ) VALUES ( values ) ON CONFLICT ( keys ) ...
        std::size_t i = 3;
        const auto list = [&](std::vector<std::string_view>& out) {  // "( a , b )": each item's text
            if (i >= tokens_.size() || tokens_[i].text != "(") return false;
            ++i;
            int depth = 0;
            const char* first = nullptr;
            const char* last = nullptr;
            for (; i < tokens_.size(); ++i) {
                const auto& t = tokens_[i];
                const bool op = t.kind == grammar::tok::op;
                if (op && depth == 0 && (t.text == "," || t.text == ")")) {
                    if (first == nullptr) return false;
                    out.emplace_back(first, static_cast<std::size_t>(last - first));
                    first = nullptr;
                    if (t.text == ")") {
                        ++i;
                        return true;
                    }
                    continue;
                }
                if (op && t.text == "(") ++depth;
                if (op && t.text == ")") --depth;
                if (first == nullptr) first = t.text.data();
                last = t.text.data() + t.text.size();
            }
            return false;
        };
        std::vector<std::string_view> names, values, keys;
        if (!list(names) || i >= tokens_.size() || !same_word(tokens_[i++].text, "VALUES") || !list(values) ||
            names.size() != values.size())
            return std::nullopt;
        if (i + 1 >= tokens_.size() || !same_word(tokens_[i].text, "ON") || !same_word(tokens_[i + 1].text, "CONFLICT"))
            return std::nullopt;
        i += 2;
        if (!list(keys)) return std::nullopt;
        const auto value_of = [&](std::string_view column) -> std::optional<std::string_view> {
            for (std::size_t n = 0; n < names.size(); ++n)
                if (same_word(name_of(names[n]), column)) return values[n];
            return std::nullopt;
        };
        const auto table = name_of(tokens_[2].text);
        std::vector<std::string> same, other_key;
        std::string_view rest = message.substr(prefix.size());
        while (!rest.empty()) {
            const auto comma = rest.find(", ");
            const auto item = rest.substr(0, comma);
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 2);
            if (item.size() <= table.size() + 1 || !same_word(item.substr(0, table.size()), table) ||
                item[table.size()] != '.')
                return std::nullopt;  // "index 'name'": an expression index
            const auto column = item.substr(table.size() + 1);
            const auto v = value_of(column);
            if (!v || same_word(*v, "NULL") || *v == "''" || *v == "0" || same_word(*v, "X''")) return std::nullopt;
            same.push_back(resilite::detail::format("{} = {}", quote_id(column), *v));
        }
        for (const auto& k : keys) {
            const auto v = value_of(name_of(k));
            if (!v) return std::nullopt;
            other_key.push_back(resilite::detail::format("{} IS {}", k, *v));
        }
        if (same.empty() || other_key.empty()) return std::nullopt;
        return resilite::detail::format("DELETE FROM {} WHERE {} AND NOT ({});", tokens_[2].text,
                                        fmt::join(same, " AND "), fmt::join(other_key, " AND "));
    }
    // Runs `removal` (as a row change: the authorizer sees it); true when it deleted exactly one
    // row. Anything else (none, or more: a partial index, a collation the index does not share)
    // is taken back.
    bool remove_one(const std::string& removal) {
        trusted("SAVEPOINT resilite_in_the_way");
        bool refused = false;
        const bool one = run(removal, refused).empty() && sqlite3_changes64(c_.native_handle()) == 1;
        trusted(one ? "RELEASE resilite_in_the_way" : "ROLLBACK TO resilite_in_the_way; RELEASE resilite_in_the_way");
        return one;
    }
    // A name in DDL as SQLite stored it (bare, "quoted", [bracketed], `quoted` or 'quoted') unquoted.
    [[nodiscard]] static std::string name_of(std::string_view t) {
        if (t.empty() || (t.front() != '"' && t.front() != '`' && t.front() != '\'' && t.front() != '['))
            return std::string{t};
        const char close = t.front() == '[' ? ']' : t.front();
        std::string out;
        for (std::size_t i = 1; i < t.size(); ++i) {
            if (t[i] != close) {
                out += t[i];
            } else if (close != ']' && i + 1 < t.size() && t[i + 1] == close) {
                out += close;
                ++i;
            } else {
                break;
            }
        }
        return out;
    }

    // Prepares and runs one statement of a checked shape; returns what went wrong, or nothing.
    std::string run(std::string_view text, bool& refused) {
        sqlite3_stmt* stmt = nullptr;
        const char* tail = nullptr;
        // Given the statement's exact length, SQLite copies only that (never the rest of the body).
        int rc = sqlite3_prepare_v2(c_.native_handle(), text.data(), static_cast<int>(text.size()), &stmt, &tail);
        const auto guarded = [&] {
            const std::string_view m = sqlite3_errmsg(c_.native_handle());
            return m.find("may not be modified") != std::string_view::npos ||
                   m.find("reserved for internal use") != std::string_view::npos;
        };
        if (rc == SQLITE_OK && (stmt == nullptr || tail != text.data() + text.size())) {
            sqlite3_finalize(stmt);
            refused = true;
            return "SQLite reads this text differently from the archive's grammar";
        }
        if (rc == SQLITE_OK) {
            const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> finalize_after{stmt, &sqlite3_finalize};
            return execute(stmt, text.size(), refused);
        }
        std::string message = sqlite3_errmsg(c_.native_handle());
        // SQLite's own guards (the schema table, reserved names) refuse before the authorizer.
        const bool guard = rc == SQLITE_ERROR && stmt == nullptr && guarded();
        return failure(rc, std::move(message), guard, refused);
    }

    // Steps a prepared statement to its end within the step budget of a statement of `bytes`.
    std::string execute(sqlite3_stmt* stmt, std::size_t bytes, bool& refused) {
        steps_ = 0;
        allowed_steps_ =
            budget_.base_steps + budget_.steps_per_byte * (basis_ + applied_bytes_ + static_cast<std::int64_t>(bytes));
        int rc = SQLITE_OK;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        }
        if (rc == SQLITE_DONE) return {};
        return failure(rc, sqlite3_errmsg(c_.native_handle()), false, refused);
    }

    std::string failure(int rc, std::string message, bool guard, bool& refused) {
        if (overrun_) {
            overrun_ = false;
            refused = true;
            return resilite::detail::format(
                "the statement was stopped after {} steps, more work than any statement the "
                "archive writer produces",
                steps_);
        }
        // Denied by the authorizer (SQLite may report that as SQLITE_AUTH or as an error naming
        // what was not authorized), or by SQLite's own guards.
        refused = rc == SQLITE_AUTH || guard || !refusal_.empty();
        return refusal_.empty() ? message : refusal_;
    }

    static int progress(void* self) {
        auto& s = *static_cast<replayer*>(self);
        if (s.trusted_) return 0;
        s.steps_ += steps_per_call;
        if (s.steps_ <= s.allowed_steps_) return 0;
        s.overrun_ = true;
        return 1;
    }

    static int authorize(void* self, int action, const char* a, const char* b, const char* db,
                         const char* /*trigger*/) {
        auto& s = *static_cast<replayer*>(self);
        if (s.trusted_) return SQLITE_OK;
        // The library's own temporary triggers that watch a baseline (watch_baseline).
        if (db != nullptr && std::string_view{db} == "temp" && action == SQLITE_INSERT && a != nullptr &&
            std::string_view{a} == "resilite_baseline_seen")
            return SQLITE_OK;
        const std::string_view first = a != nullptr ? a : "";
        const std::string_view second = b != nullptr ? b : "";
        const bool row = s.kind_ == statement_kind::row_change;
        const auto deny = [&](std::string why) {
            if (s.refusal_.empty()) s.refusal_ = std::move(why);
            return SQLITE_DENY;
        };
        const auto known = [&](std::string_view table) { return s.tables_.count(lower(table)) != 0; };
        if (s.kind_ == statement_kind::other || s.kind_ == statement_kind::create_trigger)
            return deny("this statement is not allowed in a replay");
        switch (action) {
            case SQLITE_READ:
                return SQLITE_OK;
            case SQLITE_SELECT:
            case SQLITE_RECURSIVE:
                if (!row) return SQLITE_OK;  // DDL's own internal reads
                return deny("a SELECT is not allowed in a replayed row change");
            case SQLITE_FUNCTION:
                // Literals need no function; DDL expressions may use SQLite's pure built-ins.
                if (!row && allowed_function(second)) return SQLITE_OK;
                return deny(resilite::detail::format("the function {}() is not allowed in a replay", second));
            case SQLITE_INSERT:
            case SQLITE_UPDATE:
            case SQLITE_DELETE: {
                if (db != nullptr && std::string_view{db} != "main")
                    return deny(resilite::detail::format("writing to database '{}' is not allowed", db));
                const auto t = lower(first);
                if (t == "sqlite_master" || t == "sqlite_schema") {
                    return !row ? SQLITE_OK : deny("writing the schema table directly is not allowed");
                }
                if (t == "sqlite_sequence") return SQLITE_OK;
                if (reserved_name(t))
                    return deny(resilite::detail::format("table {} belongs to the library", first));
                if (known(t)) return SQLITE_OK;
                return deny(resilite::detail::format("table {} is not one the archive created", first));
            }
            case SQLITE_CREATE_TABLE:
                // (SQLite makes sqlite_sequence itself for the first AUTOINCREMENT table; nobody
                // can create it by name.)
                if (s.kind_ == statement_kind::create_table && lower(first) == "sqlite_sequence") return SQLITE_OK;
                if (s.kind_ != statement_kind::create_table || reserved_name(first))
                    return deny(resilite::detail::format("creating table {} is not allowed", first));
                s.tables_.insert(lower(first));
                return SQLITE_OK;
            case SQLITE_CREATE_INDEX:
                if (s.kind_ == statement_kind::create_index && known(second) && !reserved_name(first))
                    return SQLITE_OK;
                if (s.kind_ == statement_kind::create_table && lower(first).starts_with("sqlite_autoindex_"))
                    return SQLITE_OK;  // a PRIMARY KEY or UNIQUE constraint's own index
                return deny(resilite::detail::format("creating index {} is not allowed", first));
            case SQLITE_REINDEX:  // part of CREATE INDEX
                if (s.kind_ == statement_kind::create_index) return SQLITE_OK;
                return deny("REINDEX is not allowed in a replay");
            case SQLITE_PRAGMA:  // the schema's version, nothing else
                if (s.kind_ == statement_kind::set_version && lower(first) == "user_version" &&
                    (db == nullptr || std::string_view{db} == "main"))
                    return SQLITE_OK;
                return deny(resilite::detail::format("PRAGMA {} is not allowed in a replay", first));
            case SQLITE_ALTER_TABLE:
                if (s.kind_ == statement_kind::add_column && known(second)) return SQLITE_OK;
                return deny(
                    resilite::detail::format("ALTER TABLE {} other than ADD COLUMN is not allowed", second));
            default:
                return deny(resilite::detail::format("{} is not allowed in a replay", action_name(action)));
        }
    }

    sqlite::connection& c_;
    std::set<std::string> tables_;
    replay_budget budget_;
    bool trusted_ = false;
    statement_kind kind_ = statement_kind::other;
    std::string refusal_;
    std::string rewritten_;  // a baseline's statement as noted_upsert rewrote it
    std::int64_t basis_ = 0;          // bytes of the database before the replay
    std::int64_t applied_bytes_ = 0;  // bytes of statements applied so far
    std::int64_t steps_ = 0, allowed_steps_ = 0;
    bool overrun_ = false;
    // Row changes by shape (run_shaped): about two per table (upsert, delete); beyond this many
    // the least recently used one is finalized.
    static constexpr std::size_t max_shapes = 256;
    struct kept_shape {
        sqlite3_stmt* stmt;
        std::uint64_t used;  // uses_ at its last use
    };
    std::vector<grammar::token> tokens_;
    row_shape shape_;
    std::unordered_map<std::string, kept_shape> shapes_;
    std::uint64_t uses_ = 0;
    std::int64_t shaped_runs_ = 0, shapes_prepared_ = 0;
};

// Order-independent summary of a table's rows over the given columns: row count and a 64-bit
// FNV-1a hash of the sorted rows (each row as its columns' quote() texts).
[[nodiscard]] inline std::pair<std::int64_t, std::string> content_hash(sqlite::connection& c,
                                                                       const std::string& table,
                                                                       std::vector<std::string> columns) {
    std::sort(columns.begin(), columns.end());
    std::vector<std::string> parts;
    for (const auto& col : columns)
        parts.push_back(resilite::detail::format("quote({})", quote_id(col)));
    const auto sql = resilite::detail::format(
        "SELECT {} FROM {}",
        parts.empty() ? "''" : resilite::detail::format("{}", fmt::join(parts, "||char(31)||")),
        quote_id(table));
    auto rows = c.query_all<std::string>(sql);
    std::sort(rows.begin(), rows.end());
    std::uint64_t h = 1469598103934665603ull;
    const auto mix = [&](std::string_view s) {
        for (unsigned char ch : s) {
            h ^= ch;
            h *= 1099511628211ull;
        }
    };
    mix(resilite::detail::format("{}", fmt::join(columns, ",")));
    for (const auto& r : rows) {
        mix(r);
        mix("\n");
    }
    return {static_cast<std::int64_t>(rows.size()), resilite::detail::format("{:016x}", h)};
}

}  // namespace resilite::detail::archive
