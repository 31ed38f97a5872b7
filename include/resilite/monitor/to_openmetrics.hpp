#pragma once
// resilite::to_openmetrics(snapshot, database): a health snapshot as OpenMetrics text (the
// format Prometheus scrapes; serve it as "application/openmetrics-text; version=1.0.0"), for an
// application's /metrics endpoint. Every family is named resilite_* and labelled with the
// database; the metric names, types and units are listed in docs/metrics.md.
//
// metrics_scope::files leaves out what only a running process knows (operations, failures,
// retries, latency, availability, the write queue): the `resilite metrics` command reads the
// files alone and must not print zeros that look like a measurement.

#include <resilite/core/error_class.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/detail/json.hpp>
#include <resilite/monitor/health_snapshot.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace resilite {

enum class metrics_scope { process, files };

namespace detail {
// A label value: UTF-8 (detail::as_utf8), backslash, double quote and newline escaped (the
// OpenMetrics ABNF).
[[nodiscard]] inline std::string openmetrics_label(std::string_view raw) {
    const auto v = as_utf8(raw);
    std::string out;
    out.reserve(v.size());
    for (const char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// Seconds from nanoseconds, exactly as far as a double holds them ("0.00025", "2.5", "10").
[[nodiscard]] inline std::string openmetrics_seconds(std::chrono::nanoseconds ns) {
    return resilite::detail::format("{}", static_cast<double>(ns.count()) / 1e9);
}
// The same as a histogram bound: OpenMetrics asks for the canonical form of an `le` value, a
// float ("1.0", not "1").
[[nodiscard]] inline std::string openmetrics_le(std::chrono::nanoseconds ns) {
    auto text = openmetrics_seconds(ns);
    if (text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
}
}  // namespace detail

[[nodiscard]] inline std::string to_openmetrics(const health_snapshot& s, std::string_view database,
                                                metrics_scope scope = metrics_scope::process) {
    const auto db = resilite::detail::format("database=\"{}\"", detail::openmetrics_label(database));
    std::string out;
    const auto family = [&](std::string_view name, std::string_view type, std::string_view unit,
                            std::string_view help) {
        out += resilite::detail::format("# TYPE {} {}\n", name, type);
        if (!unit.empty()) out += resilite::detail::format("# UNIT {} {}\n", name, unit);
        out += resilite::detail::format("# HELP {} {}\n", name, help);
    };
    const auto gauge = [&](std::string_view name, std::string_view unit, std::string_view help, auto value) {
        family(name, "gauge", unit, help);
        out += resilite::detail::format("{}{{{}}} {}\n", name, db, value);
    };
    const auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
        family(name, "counter", "", help);
        out += resilite::detail::format("{}_total{{{}}} {}\n", name, db, value);
    };

    gauge("resilite_healthy", "", "1 unless damage was seen (by an operation or a check)", s.healthy ? 1 : 0);
    if (scope == metrics_scope::process) {
        gauge("resilite_available", "", "1 when the database can be used now (docs/degradation.md)", s.available ? 1 : 0);
        counter("resilite_operations", "Operations ended since open", s.operations);
        family("resilite_failures", "counter", "", "Operations failed since open, by error class");
        for (std::size_t i = 0; i < s.failures_by_class.size(); ++i) {
            out += resilite::detail::format("resilite_failures_total{{{},class=\"{}\"}} {}\n", db,
                                            name(static_cast<error_class>(i)), s.failures_by_class[i]);
        }
        counter("resilite_retries", "Attempts retried since open", s.retries);
        family("resilite_operation_duration_seconds", "histogram", "seconds", "Latency of the operations since open");
        std::uint64_t below = 0;  // buckets are cumulative in OpenMetrics
        for (std::size_t i = 0; i < latency_bounds.size(); ++i) {
            below += s.latency_buckets[i];
            out += resilite::detail::format("resilite_operation_duration_seconds_bucket{{{},le=\"{}\"}} {}\n",
                                            db, detail::openmetrics_le(latency_bounds[i]), below);
        }
        below += s.latency_buckets.back();
        out += resilite::detail::format("resilite_operation_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n",
                                        db, below);
        out += resilite::detail::format("resilite_operation_duration_seconds_count{{{}}} {}\n", db, below);
        out += resilite::detail::format("resilite_operation_duration_seconds_sum{{{}}} {}\n", db,
                                        detail::openmetrics_seconds(s.latency_sum));
        gauge("resilite_queue_depth", "", "Writes queued (queue_writes) and not yet replayed", s.queue_depth);
        gauge("resilite_queue_rejected", "", "Queued writes SQLite refused on replay", s.queue_rejected);
        if (s.offsite_enabled) {
            gauge("resilite_offsite_pending", "", "Backups and archive segments not off the machine yet", s.offsite_pending);
            gauge("resilite_offsite_lag_seconds", "seconds", "How long something has waited to go off the machine",
                  s.offsite_lag ? s.offsite_lag->count() : 0);
        }
    }
    gauge("resilite_wal_bytes", "bytes", "Size of the -wal file", s.wal_bytes);
    gauge("resilite_pages", "", "Pages of the database", s.page_count);
    gauge("resilite_free_pages", "", "Of them, on the freelist", s.freelist_count);
    if (s.last_backup_age)
        gauge("resilite_backup_age_seconds", "seconds", "Age of the newest backup", s.last_backup_age->count());
    if (s.archive_seq) gauge("resilite_archive_seq", "", "The last archive record written", *s.archive_seq);
    gauge("resilite_archive_pending_rows", "", "Captured changes not yet in the archive (archive lag)",
          s.archive_pending);
    if (s.last_drill_ok) gauge("resilite_drill_ok", "", "1 when the last restore drill passed", *s.last_drill_ok ? 1 : 0);
    counter("resilite_heals", "Heals finished on this database (every process)", s.heals);
    gauge("resilite_heal_attempts", "", "Heals begun since the last that succeeded (the circuit breaker)",
          s.heal_attempts);
    gauge("resilite_audit_fallback_entries", "", "Audit entries waiting in the fallback file",
          s.audit_fallback_entries);
    out += "# EOF\n";
    return out;
}

}  // namespace resilite
