#pragma once
// resilite::schema_report: every action schema sync took (or would take) and every drift it
// found between the declaration and the database.

#include <resilite/detail/format.hpp>
#include <resilite/schema/schema_mode.hpp>
#include <resilite/schema/schema_status.hpp>

#include <fmt/format.h>

#include <string>
#include <vector>

namespace resilite {

struct schema_report {
    struct action {
        std::string table;        // or the trigger's name
        std::string description;  // "create table", "add column email", "recreate index by_name"
        std::string sql;
        bool applied = false;
    };
    enum class severity { warning, critical };
    struct drift {
        severity level = severity::warning;
        std::string table;
        std::string column;  // empty when about the table as a whole
        std::string description;
    };

    schema_mode mode = schema_mode::add_missing;
    std::vector<action> actions;
    std::vector<drift> drifts;
    bool changed = false;  // true when the database was altered

    // report_only: an action not applied is something declared that the database lacks (a
    // table, a column, an index): not ok, though nothing is incompatible (warnings).
    [[nodiscard]] schema_status status() const {
        bool warn = false;
        for (const auto& a : actions)
            warn = warn || (mode == schema_mode::report_only && !a.applied);
        for (const auto& d : drifts) {
            if (d.level == severity::critical) return schema_status::critical;
            warn = true;
        }
        return warn ? schema_status::warnings : schema_status::ok;
    }
    [[nodiscard]] int exit_code() const { return static_cast<int>(status()); }

    [[nodiscard]] std::string to_text() const {
        std::string out = resilite::detail::format(
            "schema sync ({}): {}, {} action{}{}, {} drift item{}\n", to_string(mode), to_string(status()),
            actions.size(), actions.size() == 1 ? "" : "s",
            changed ? " applied" : (actions.empty() ? "" : " not applied"), drifts.size(),
            drifts.size() == 1 ? "" : "s");
        for (const auto& a : actions) {
            out += resilite::detail::format("  {} {}: {}\n", a.applied ? "done " : "to do", a.table,
                                            a.description);
        }
        for (const auto& d : drifts) {
            out += resilite::detail::format("  {} {}{}{}: {}\n",
                                            d.level == severity::critical ? "CRITICAL" : "warning ", d.table,
                                            d.column.empty() ? "" : ".", d.column, d.description);
        }
        return out;
    }
};

}  // namespace resilite
