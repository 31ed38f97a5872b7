// resilite: the command for operators. Checks a database, verifies and reports on a text archive,
// and resets the healing circuit breaker, without writing any C++.
//
// Conventions (git- and sqlite3-like): --help on every subcommand; --json prints one JSON object
// on stdout; --quiet prints nothing but errors; messages are plain lines on stderr, never a stack
// trace. Exit codes: 0 ok, 1 critical (or the command could not do what was asked), 2 warnings.
#include <resilite/archive/inspect_archive.hpp>
#include <resilite/heal/reset_healing.hpp>
#include <resilite/monitor/check_health.hpp>
#include <resilite/sqlite/detail/marker.hpp>
#include <resilite/version.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

enum exit_code : int { ok = 0, critical = 1, warnings = 2 };

struct output {
    bool json = false;
    bool quiet = false;

    // The result: JSON on stdout with --json, else the text unless --quiet.
    void print(const nlohmann::json& j, const std::string& text) const {
        if (json) {
            // Bytes quoted from a damaged file may not be UTF-8: replaced, never a failure.
            std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else if (!quiet) {
            std::fputs(text.c_str(), stdout);
        }
    }
};

// One plain line on stderr; the command then exits with `critical`.
struct refusal {
    std::string message;
};

void require_database(const fs::path& db) {
    std::error_code ec;
    if (!fs::exists(db, ec)) throw refusal{fmt::format("no database at {}", db.string())};
    if (!fs::is_regular_file(db, ec)) throw refusal{fmt::format("{} is not a file", db.string())};
}

void require_directory(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw refusal{fmt::format("no archive directory at {}", dir.string())};
}

int check(const output& out, const fs::path& db, const std::string& level_name) {
    // A path with nothing there is bad input, unless resilite's sidecar says a database was
    // there: then it is the finding "missing".
    std::error_code ec;
    if (!fs::exists(db, ec) && !fs::exists(resilite::detail::marker_path(db), ec))
        throw refusal{fmt::format("no database at {}", db.string())};
    const auto level = level_name == "header" ? resilite::check_level::header
                       : level_name == "full" ? resilite::check_level::full
                                              : resilite::check_level::quick;
    const auto r = resilite::check_health(db, level);
    const nlohmann::json j{{"database", db.string()},
                           {"level", std::string{resilite::to_string(r.level)}},
                           {"result", std::string{resilite::to_string(r.result)}},
                           {"ok", r.ok()},
                           {"detail", r.detail}};
    out.print(j, fmt::format("{}: {} ({} check){}\n", db.string(), resilite::to_string(r.result),
                             resilite::to_string(r.level), r.detail.empty() ? "" : ": " + r.detail));
    return r.ok() ? ok : critical;
}

nlohmann::json archive_json(const resilite::archive_report& r) {
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& t : r.tables) {
        nlohmann::json row{{"name", t.name}, {"rows", t.rows}, {"content_hash", t.content_hash}};
        row["matches_live"] = t.matches_live ? nlohmann::json(*t.matches_live) : nlohmann::json(nullptr);
        tables.push_back(std::move(row));
    }
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : r.problems) {
        problems.push_back({{"kind", std::string{resilite::to_string(p.what)}},
                            {"segment", p.segment},
                            {"line", p.line},
                            {"fatal", p.fatal},
                            {"message", p.message}});
    }
    nlohmann::json j{{"directory", r.directory.string()},
                     {"status", std::string{resilite::to_string(r.status())}},
                     {"segments", r.segments},
                     {"records", r.records},
                     {"first_seq", r.first_seq},
                     {"last_seq", r.last_seq},
                     {"first_time", r.first_time},
                     {"last_time", r.last_time},
                     {"baseline_seq", r.baseline_seq},
                     {"rebuildable", r.rebuildable()},
                     {"tables", std::move(tables)},
                     {"problems", std::move(problems)}};
    j["reproduces_live"] = r.reproduces_live ? nlohmann::json(*r.reproduces_live) : nlohmann::json(nullptr);
    return j;
}

int archive_inspect(const output& out, const fs::path& dir, const fs::path& db,
                    const std::vector<std::string>& excluded) {
    require_directory(dir);
    resilite::inspect_options options;
    if (!db.empty()) {
        require_database(db);
        options.live_database = db;
    }
    for (const auto& column : excluded) {
        if (column.find('.') == std::string::npos)
            throw refusal{fmt::format("--exclude takes table.column, not '{}'", column)};
        std::string lower = column;
        for (auto& ch : lower)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        options.excluded_columns.insert(lower);
    }
    const auto r = resilite::inspect_archive(dir, options);
    out.print(archive_json(r), r.to_text());
    return r.exit_code();
}

int heal_reset(const output& out, const fs::path& db) {
    require_database(db);
    const auto attempts = resilite::detail::read_marker(db).heal_attempts;
    resilite::reset_healing(db);
    out.print({{"database", db.string()}, {"reset", attempts > 0}, {"heal_attempts_before", attempts}},
              attempts > 0 ? fmt::format("{}: healing had stopped after {} heals in a row that did not succeed; it "
                                         "may run again at the next open\n",
                                         db.string(), attempts)
                           : fmt::format("{}: healing was not stopped; nothing to reset\n", db.string()));
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{fmt::format("resilite {}.{}.{}: check, verify and repair resilite databases and archives",
                             resilite::version.major, resilite::version.minor, resilite::version.patch),
                 "resilite"};
    app.require_subcommand(1);
    app.fallthrough();  // --json and --quiet also after a subcommand: "resilite check app.db --json"
    output out;
    app.add_flag("--json", out.json, "Print the result as one JSON object on stdout");
    app.add_flag("-q,--quiet", out.quiet, "Print nothing but errors");
    app.set_version_flag("--version", fmt::format("resilite {}.{}.{}", resilite::version.major,
                                                  resilite::version.minor, resilite::version.patch));
    app.footer("Exit codes: 0 ok, 1 critical (or nothing done), 2 warnings.");
    int code = ok;

    fs::path db, dir;
    std::string level = "quick";
    auto* check_cmd = app.add_subcommand("check", "Check a database file: header, quick_check or integrity_check");
    check_cmd->add_option("DB", db, "The database file")->required();
    check_cmd->add_option("--level", level, "How deep: header, quick (default) or full")
        ->check(CLI::IsMember({"header", "quick", "full"}));
    check_cmd->callback([&] { code = check(out, db, level); });

    auto* archive_cmd = app.add_subcommand("archive", "Work with a text archive directory");
    archive_cmd->require_subcommand(1);
    auto* verify_cmd = archive_cmd->add_subcommand(
        "verify", "Read every record and rebuild in memory: can the archive rebuild the database?");
    verify_cmd->add_option("DIR", dir, "The archive directory")->required();
    verify_cmd->callback([&] { code = archive_inspect(out, dir, {}, {}); });
    auto* report_cmd = archive_cmd->add_subcommand(
        "report", "What the archive holds, table by table; with --db, compared with the live database");
    report_cmd->add_option("DIR", dir, "The archive directory")->required();
    report_cmd->add_option("--db", db, "The live database to compare with");
    std::vector<std::string> excluded;
    report_cmd->add_option("--exclude", excluded,
                           "A column left out of the comparison, as table.column (repeatable): secret columns "
                           "are never archived, so a rebuild holds placeholders there");
    report_cmd->callback([&] { code = archive_inspect(out, dir, db, excluded); });

    auto* heal_cmd = app.add_subcommand("heal", "Healing");
    heal_cmd->require_subcommand(1);
    auto* reset_cmd = heal_cmd->add_subcommand(
        "reset", "Let healing run again after its circuit breaker stopped it (changes nothing else)");
    reset_cmd->add_option("DB", db, "The database file")->required();
    reset_cmd->callback([&] { code = heal_reset(out, db); });

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "resilite: %s (see resilite --help)\n", e.what());
        return critical;
    } catch (const refusal& r) {
        std::fprintf(stderr, "resilite: %s\n", r.message.c_str());
        return critical;
    } catch (const resilite::error& e) {
        std::fprintf(stderr, "resilite: %s\n", e.what());
        return critical;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "resilite: %s\n", e.what());
        return critical;
    }
    return code;
}
