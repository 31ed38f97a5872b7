#pragma once
// resilite::heal_report: what a heal found and did: how the damage was seen, where the damaged
// files were put, every source tried with its outcome, the backup and archive range used, the
// rows per table of the healed database, the time of each phase, and what may have been lost.
// As text for people and as one JSON line for the heal log.

#include <resilite/detail/format.hpp>
#include <resilite/detail/json.hpp>

#include <resilite/detail/utc_format.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resilite {

struct heal_report {
    struct source_attempt {
        std::string source;   // "backup app-20261130T101500.000Z.db + archive", "archive alone", ...
        bool healed = false;  // this source gave the database now in place
        std::string detail;   // why it was not used, or what it gave
    };
    struct table_rows {
        std::string name;
        std::int64_t rows = 0;
    };
    struct phase_time {
        std::string phase;  // "quarantine", "restore", "replay", "verify", "swap"
        std::chrono::nanoseconds duration{0};
    };

    std::filesystem::path database;
    std::chrono::system_clock::time_point started{};
    std::string found;        // what was wrong ("corrupt: ...")
    std::string detected_by;  // "open: header check", "run time: exec", "db.heal()"
    std::filesystem::path quarantine;  // where the damaged files are now (empty: nothing to move)
    std::vector<source_attempt> sources;
    std::optional<std::filesystem::path> backup_used;
    std::optional<std::int64_t> archive_from_seq, archive_to_seq;  // records replayed (after the backup)
    std::vector<table_rows> tables;
    std::string verification;  // what the healed database was checked with
    std::vector<phase_time> phases;
    std::string may_be_lost;  // empty: no commit is known to be missing (see committed_seq)
    // Evidence the heal did not produce itself: the highest archive record known to have
    // committed (the high-water mark beside the database, the damaged database where readable),
    // what it came from, and the last record the healed database holds.
    std::optional<std::int64_t> committed_seq, healed_seq;
    std::string evidence;
    // committed_seq is exact (read from the damaged database itself, not below the high-water
    // mark), not only a lower bound (the high-water mark, which may lag after a power cut).
    bool committed_exact = false;
    int attempt = 1;          // this heal's number among consecutive failed ones (circuit breaker)
    bool healed = false;
    std::chrono::nanoseconds duration{0};

    [[nodiscard]] std::string to_text() const {
        std::string out =
            resilite::detail::format("heal of {}: {}\n", database.string(), healed ? "healed" : "NOT healed");
        out += resilite::detail::format("  found: {} (seen by {})\n", found, detected_by);
        if (!quarantine.empty())
            out += resilite::detail::format("  the files it replaced kept in: {}\n", quarantine.string());
        for (const auto& s : sources)
            out += resilite::detail::format("  source {}: {}{}\n", s.source, s.healed ? "used" : "not used",
                                            s.detail.empty() ? std::string{} : " (" + s.detail + ")");
        if (backup_used) out += resilite::detail::format("  backup: {}\n", backup_used->string());
        if (archive_from_seq && archive_to_seq.value_or(0) > *archive_from_seq)
            out += resilite::detail::format("  archive records replayed: {} to {}\n", *archive_from_seq + 1,
                                            *archive_to_seq);
        else if (archive_from_seq)
            out += resilite::detail::format("  archive records replayed: none (the source holds record {})\n",
                                            *archive_from_seq);
        for (const auto& t : tables)
            out += resilite::detail::format("  table {}: {} rows\n", t.name, t.rows);
        if (!verification.empty()) out += resilite::detail::format("  verified: {}\n", verification);
        for (const auto& p : phases)
            out += resilite::detail::format(
                "  {}: {} ms\n", p.phase,
                std::chrono::duration_cast<std::chrono::milliseconds>(p.duration).count());
        if (!may_be_lost.empty()) {
            out += resilite::detail::format("  may be lost: {}\n", may_be_lost);
        } else if (healed && committed_exact && committed_seq && healed_seq && *healed_seq >= *committed_seq) {
            out += resilite::detail::format(
                "  nothing committed is missing: the result holds archive record {}, and the last "
                "record known committed is {} ({})\n",
                *healed_seq, *committed_seq, evidence);
        } else if (healed) {
            out += resilite::detail::format("  no commit is known to be missing{}\n",
                                            evidence.empty()
                                                ? std::string{" (no evidence beyond the sources themselves)"}
                                                : " (" + evidence + ")");
        }
        if (healed && committed_seq && healed_seq && *healed_seq > *committed_seq) {
            // Replayed although nothing beside the archive shows they committed: never claimed.
            const auto n = *healed_seq - *committed_seq;
            const auto which = n == 1 ? resilite::detail::format("record {} comes", *healed_seq)
                                      : resilite::detail::format("records {} to {} come", *committed_seq + 1,
                                                                 *healed_seq);
            out += committed_exact
                       ? resilite::detail::format(
                             "  {} from the archive alone, after record {}, the last one the damaged database "
                             "holds: written to the archive ahead of a COMMIT that did not happen there (a crash "
                             "in between), never acknowledged; replayed whole\n",
                             which, *committed_seq)
                       : resilite::detail::format(
                             "  {} from the archive alone, after record {}, the last one known committed ({}, "
                             "which may lag after a power cut): nothing else shows whether {} committed; the "
                             "last may be a transaction a crash stopped between its archive record and its "
                             "COMMIT, replayed whole\n",
                             which, *committed_seq, evidence, n == 1 ? "it" : "they");
        }
        return out;
    }

    [[nodiscard]] std::string to_json() const {
        using detail::json_string;
        std::string sources_json, tables_json, phases_json;
        for (const auto& s : sources)
            sources_json += resilite::detail::format("{}{{\"source\":{},\"healed\":{},\"detail\":{}}}",
                                                     sources_json.empty() ? "" : ",", json_string(s.source),
                                                     s.healed ? "true" : "false", json_string(s.detail));
        for (const auto& t : tables)
            tables_json += resilite::detail::format("{}{}:{}", tables_json.empty() ? "" : ",",
                                                    json_string(t.name), t.rows);
        for (const auto& p : phases)
            phases_json += resilite::detail::format(
                "{}{}:{}", phases_json.empty() ? "" : ",", json_string(p.phase),
                std::chrono::duration_cast<std::chrono::milliseconds>(p.duration).count());
        const auto opt = [](const auto& v) {
            return v ? resilite::detail::format("{}", *v) : std::string{"null"};
        };
        return resilite::detail::format(
            "{{\"database\":{},\"started\":\"{}Z\",\"healed\":{},\"attempt\":{},\"found\":{},"
            "\"detected_by\":{},\"quarantine\":{},\"sources\":[{}],\"backup_used\":{},\"archive_from_seq\":{}"
            ","
            "\"archive_to_seq\":{},\"tables\":{{{}}},\"verification\":{},\"phases_ms\":{{{}}},\"may_be_"
            "lost\":{},\"committed_seq\":{},\"healed_seq\":{},\"evidence\":{},\"duration_ms\":{}}}",
            json_string(database.string()), detail::utc_format(started, "%Y-%m-%dT%H:%M:%S"),
            healed ? "true" : "false", attempt, json_string(found), json_string(detected_by),
            json_string(quarantine.string()), sources_json,
            backup_used ? json_string(backup_used->string()) : std::string{"null"}, opt(archive_from_seq),
            opt(archive_to_seq), tables_json, json_string(verification), phases_json,
            json_string(may_be_lost), opt(committed_seq), opt(healed_seq), json_string(evidence),
            std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
    }
};

}  // namespace resilite
