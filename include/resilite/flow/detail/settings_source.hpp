#pragma once
// Where settings come from besides the code: the environment (read once, at open) and the
// settings file (JSON, read at open and again whenever it changes). Each gives an overlay: the
// fields it names, put over the settings below it. Precedence, lowest first (docs/settings.md):
// the policies' defaults, options.settings, the settings file, the environment.
//
// Nothing is ignored: an unknown field or variable (a typo) is refused like a bad value, and
// every refusal names the variable or the field, the value and the reason.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>
#include <resilite/flow/detail/settings_fields.hpp>
#include <resilite/flow/settings.hpp>

#include <fmt/format.h>

#include <unistd.h>  // environ

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

// The fields one source names, with their values.
struct settings_overlay {
    settings values;
    std::vector<const setting_field*> fields;

    [[nodiscard]] bool empty() const noexcept { return fields.empty(); }
    void apply_to(settings& s) const {
        for (const auto* f : fields)
            f->copy(values, s);
    }
};

// The variable that names the settings file.
inline constexpr std::string_view settings_file_variable = "RESILITE_SETTINGS_FILE";

// Variables of resilite's that are not settings (so not typos of one).
[[nodiscard]] inline bool other_resilite_variable(std::string_view name) noexcept {
    return name == settings_file_variable || name == "RESILITE_TRIALS";  // (testing/trials.hpp)
}

// Every RESILITE_* variable, read now. Throws invalid_setting for an unknown variable or a
// value that cannot be used, naming the variable, the value and the reason.
[[nodiscard]] inline settings_overlay read_environment(std::string_view operation,
                                                       std::string_view path = {}) {
    std::vector<std::pair<std::string, std::string>> vars;
    for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry{*e};
        if (!entry.starts_with("RESILITE_")) continue;
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos) continue;
        vars.emplace_back(std::string{entry.substr(0, eq)}, std::string{entry.substr(eq + 1)});
    }
    std::sort(vars.begin(), vars.end());  // the same variable is named first whatever the order
    settings_overlay o;
    for (const auto& var : vars) {
        const auto& name = var.first;
        const auto& value = var.second;
        if (other_resilite_variable(name)) continue;
        const auto& table = setting_fields();
        const auto f =
            std::find_if(table.begin(), table.end(), [&](const auto& x) { return x.variable() == name; });
        if (f == table.end()) {
            throw library_failure(
                error_class::invalid_setting, operation,
                resilite::detail::format("environment variable {} is not a setting (docs/settings.md lists "
                                         "them); a misspelt setting is refused, not ignored",
                                         name),
                path);
        }
        if (auto r = f->from_text(o.values, value)) {
            throw library_failure(error_class::invalid_setting, operation,
                                  resilite::detail::format("environment variable {}=\"{}\": {} ({}: {}, {})",
                                                           name, value, *r, f->path, f->type, f->range),
                                  path);
        }
        o.fields.push_back(&*f);
    }
    return o;
}

// The first name given twice in one object, in file order, as its path ("retry.max_attempts"),
// or nothing. (A JSON library would keep the last one silently, and an invalid value before it
// would never be seen.)
[[nodiscard]] inline std::optional<std::string> name_given_twice(const json& j, const std::string& path = {}) {
    if (!j.is_object()) return std::nullopt;
    std::set<std::string_view> seen;
    for (std::size_t i = 0; i < j.names.size(); ++i) {
        const auto here = path.empty() ? j.names[i] : path + "." + j.names[i];
        if (!seen.insert(j.names[i]).second) return here;
        if (auto inner = name_given_twice(j.values[i], here)) return inner;
    }
    return std::nullopt;
}

// The settings file's text as an overlay, or the first problem as "field: reason". The file is
// a JSON object: top-level fields by name, each section an object of its fields
// ({"busy_timeout": "2s", "retry": {"max_attempts": 50}}).
[[nodiscard]] inline refusal parse_settings_json(std::string_view text, settings_overlay& out) {
    // The text ends at a NUL byte, as it did for the JSON library read before: a file's tail of
    // zeros (left by a crash on some file systems) was accepted, and must stay so after an upgrade.
    text = text.substr(0, text.find('\0'));
    std::string why;
    const auto parsed = parse_json(text, &why);
    if (!parsed) return resilite::detail::format("not valid JSON: {}", why);
    const json& doc = *parsed;
    if (auto twice = name_given_twice(doc))
        return resilite::detail::format("{}: given twice (which one counts would be a guess)", *twice);
    if (!doc.is_object())
        return resilite::detail::format("the file must hold a JSON object, not {}", json_kind(doc));
    settings_overlay o;
    const auto take = [&](const std::string& name, const json& value) -> refusal {
        const auto* f = find_setting_field(name);
        if (f == nullptr)
            return resilite::detail::format("{}: unknown field (docs/settings.md lists them)", name);
        if (value.is_object()) return resilite::detail::format("{}: expected a value, got an object", name);
        // The same field by two spellings ("retry.max_attempts" beside the "retry" section).
        if (std::find(o.fields.begin(), o.fields.end(), f) != o.fields.end())
            return resilite::detail::format("{}: given twice (which one counts would be a guess)", name);
        if (auto r = f->from_json(o.values, value))
            return resilite::detail::format("{}: {} (value {})", name, *r, value.dump());
        o.fields.push_back(f);
        return std::nullopt;
    };
    for (std::size_t i = 0; i < doc.names.size(); ++i) {
        const std::string& key = doc.names[i];
        const json& value = doc.values[i];
        const bool section = std::any_of(setting_fields().begin(), setting_fields().end(),
                                         [&](const auto& f) { return f.section() == key; });
        if (!section) {
            if (auto r = take(key, value)) return r;
            continue;
        }
        if (!value.is_object())
            return resilite::detail::format("{}: expected an object of its fields, got {}", key,
                                            json_kind(value));
        for (std::size_t k = 0; k < value.names.size(); ++k)
            if (auto r = take(key + "." + value.names[k], value.values[k])) return r;
    }
    out = std::move(o);
    return std::nullopt;
}

// A file's whole text, or nothing when it cannot be read (the reason in `why`).
[[nodiscard]] inline std::optional<std::string> read_text_file(const std::filesystem::path& path,
                                                               std::string& why) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        why = std::strerror(errno);
        return std::nullopt;
    }
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) {
        why = "read error";
        return std::nullopt;
    }
    return text;
}

}  // namespace resilite::detail
