#pragma once
// resilite::health_snapshot: what Database::health() reports, printable as JSON (every field;
// the keys, types and units are listed in docs/health-json.md).

#include <resilite/core/error_class.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/monitor/health_report.hpp>

#include <resilite/detail/json.hpp>
#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace resilite {

// The upper bounds of the latency histogram's buckets (health_snapshot::latency_buckets; the
// last bucket holds what is above them all). From 100 µs to 10 s, as Prometheus clients use.
inline constexpr std::array<std::chrono::nanoseconds, 16> latency_bounds{
    std::chrono::microseconds{100}, std::chrono::microseconds{250}, std::chrono::microseconds{500},
    std::chrono::milliseconds{1},   std::chrono::microseconds{2500}, std::chrono::milliseconds{5},
    std::chrono::milliseconds{10},  std::chrono::milliseconds{25},   std::chrono::milliseconds{50},
    std::chrono::milliseconds{100}, std::chrono::milliseconds{250},  std::chrono::milliseconds{500},
    std::chrono::seconds{1},        std::chrono::milliseconds{2500}, std::chrono::seconds{5},
    std::chrono::seconds{10}};

struct health_snapshot {
    // False once any operation met SQLITE_CORRUPT / SQLITE_NOTADB (or a check found damage)
    // since open; `damage` says what was seen first.
    bool healthy = true;
    std::string damage;
    std::optional<health_report> last_check;
    std::optional<std::chrono::system_clock::time_point> last_check_time;   // UTC
    std::optional<std::chrono::system_clock::time_point> last_backup_time;  // UTC
    std::optional<std::chrono::seconds> last_backup_age;
    std::optional<std::chrono::system_clock::time_point> last_drill_time;  // UTC (db.drill())
    std::optional<bool> last_drill_ok;                                     // its verdict
    std::uint64_t wal_bytes = 0;
    std::int64_t page_count = 0;
    std::int64_t freelist_count = 0;
    std::uint64_t operations = 0;  // operations ended (every event but retry and alerts)
    std::uint64_t failures = 0;
    std::array<std::uint64_t, error_class_count> failures_by_class{};
    std::uint64_t retries = 0;
    std::uint64_t latency_samples = 0;  // operations timed (percentiles use the latest 4096)
    std::chrono::nanoseconds p50{0}, p95{0}, p99{0};
    // Every operation timed since open, by latency: latency_buckets[i] counts those above
    // latency_bounds[i - 1] and at most latency_bounds[i]; the last, those above every bound.
    std::array<std::uint64_t, latency_bounds.size() + 1> latency_buckets{};
    std::chrono::nanoseconds latency_sum{0};
    // From the sidecar, so across processes and restarts: heals finished on this database, and
    // heals begun since the last that succeeded (the circuit breaker stops at max_attempts).
    std::uint64_t heals = 0;
    int heal_attempts = 0;
    std::optional<std::int64_t> archive_seq;  // the last archive record written (archive<> only)
    std::int64_t archive_pending = 0;         // captured changes not yet in the archive
    // Audit entries waiting in the fallback file for the database (lines of
    // <db>.audit-fallback.jsonl; docs/audit.md).
    std::uint64_t audit_fallback_entries = 0;
    // True when another thread held the writer lock (a transaction, a heal): health() does not
    // wait for it, and the check, backup, drill, page and archive figures are those of the last
    // health() that could read them (zero before any could).
    bool database_busy = false;
    // Degradation (docs/degradation.md): whether the database can be used now; if not, why
    // (healing, healing_elsewhere, damaged, disk_full, read_only_volume, io_error), since when
    // and what was seen. queue_depth: writes queued (queue_writes) and not yet replayed, as this
    // process last saw the queue; queue_rejected: queued writes SQLite refused on replay, kept in
    // the rejected file.
    bool available = true;
    std::string unavailable_reason = "available";
    std::optional<std::chrono::system_clock::time_point> unavailable_since;  // UTC
    std::string unavailable_detail;
    std::uint64_t queue_depth = 0;
    std::uint64_t queue_rejected = 0;
    // Off the machine (settings().offsite.remote): whether copies go off it; the backups and
    // archive segments not there yet as they are now, and for how long something has been
    // waiting (the lag; none when everything is there); the last round that succeeded and the
    // last error (empty once a round succeeds).
    bool offsite_enabled = false;
    std::uint64_t offsite_pending = 0;
    std::optional<std::chrono::seconds> offsite_lag;
    std::optional<std::chrono::system_clock::time_point> last_offsite_time;  // UTC
    std::string offsite_error;

    [[nodiscard]] std::string to_json() const {
        std::string by_class;
        for (std::size_t i = 0; i < failures_by_class.size(); ++i) {
            if (failures_by_class[i] == 0) continue;
            by_class += resilite::detail::format("{}\"{}\":{}", by_class.empty() ? "" : ",",
                                                 name(static_cast<error_class>(i)), failures_by_class[i]);
        }
        std::string bounds, counts;
        for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
            if (i < latency_bounds.size())
                bounds += resilite::detail::format("{}{}", i == 0 ? "" : ",", latency_bounds[i].count());
            counts += resilite::detail::format("{}{}", i == 0 ? "" : ",", latency_buckets[i]);
        }
        const auto time_or_null = [](const std::optional<std::chrono::system_clock::time_point>& t) {
            return t ? resilite::detail::format("\"{}Z\"", detail::utc_format(*t, "%Y-%m-%dT%H:%M:%S"))
                     : std::string{"null"};
        };
        // Free text (an error message, a path) is escaped; empty is null.
        const auto text_or_null = [](const std::string& s) {
            return s.empty() ? std::string{"null"} : detail::json_string(s);
        };
        const auto check =
            last_check ? resilite::detail::format("{{\"result\":\"{}\",\"level\":\"{}\",\"detail\":{}}}",
                                                  to_string(last_check->result), to_string(last_check->level),
                                                  text_or_null(last_check->detail))
                       : std::string{"null"};
        return resilite::detail::format(
            "{{\"healthy\":{},\"damage\":{},\"last_check\":{},\"last_check_time\":{},\"last_backup_time\":{},"
            "\"last_backup_age_s\":{},\"last_drill_time\":{},\"last_drill_ok\":{},"
            "\"wal_bytes\":{},\"page_count\":{},\"freelist_count\":{},\"operations\":{},\"failures\":{},"
            "\"failures_by_class\":{{{}}},\"retries\":{},\"latency_samples\":{},\"latency_ns\":{{\"p50\":{},"
            "\"p95\":{},\"p99\":{}}},\"latency_histogram\":{{\"le_ns\":[{}],\"counts\":[{}],\"sum_ns\":{}}},"
            "\"heals\":{},\"heal_attempts\":{},\"archive_seq\":{},\"archive_pending\":{},\"audit_fallback_"
            "entries\":{},"
            "\"database_busy\":{},\"available\":{},\"unavailable_reason\":{},\"unavailable_since\":{},"
            "\"unavailable_detail\":{},\"queue_depth\":{},\"queue_rejected\":{},\"offsite_enabled\":{},"
            "\"offsite_pending\":{},\"offsite_lag_s\":{},\"last_offsite_time\":{},\"offsite_error\":{}}}",
            healthy ? "true" : "false", text_or_null(damage), check, time_or_null(last_check_time),
            time_or_null(last_backup_time),
            last_backup_age ? std::to_string(last_backup_age->count()) : std::string{"null"},
            time_or_null(last_drill_time), last_drill_ok ? (*last_drill_ok ? "true" : "false") : "null",
            wal_bytes, page_count, freelist_count, operations, failures, by_class, retries, latency_samples,
            p50.count(), p95.count(), p99.count(), bounds, counts, latency_sum.count(), heals, heal_attempts,
            archive_seq ? std::to_string(*archive_seq) : std::string{"null"}, archive_pending,
            audit_fallback_entries, database_busy ? "true" : "false", available ? "true" : "false",
            detail::json_string(unavailable_reason), time_or_null(unavailable_since),
            text_or_null(unavailable_detail), queue_depth, queue_rejected, offsite_enabled ? "true" : "false",
            offsite_pending, offsite_lag ? std::to_string(offsite_lag->count()) : std::string{"null"},
            time_or_null(last_offsite_time), text_or_null(offsite_error));
    }
};

}  // namespace resilite
