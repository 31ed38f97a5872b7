#pragma once
// The one table of every field of resilite::settings. A field's path is its C++ member path and
// its JSON path in the settings file ("retry.max_attempts"); its environment variable is
// RESILITE_ and the path in upper case, dots as underscores (RESILITE_RETRY_MAX_ATTEMPTS). The
// environment reader, the settings file reader, the range check of every change and the test
// that docs/settings.md lists every variable all read this table: a new field, or a new
// section, is one line per field in setting_fields() below.
//
// Values are converted exactly or refused: an integer out of its range, a duration that is not
// a whole number of the field's unit, an unknown enum name are refusals that say why.

#include <resilite/detail/format.hpp>
#include <resilite/detail/json.hpp>
#include <resilite/detail/json_value.hpp>
#include <resilite/flow/settings.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resilite::detail {

using json = json_value;

// Why a value cannot be used, or nothing when it can.
using refusal = std::optional<std::string>;

[[nodiscard]] inline std::string lower_ascii(std::string_view s) {
    std::string out{s};
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// JSON's name for what a value is, for "expected ..., got ..." refusals.
[[nodiscard]] inline std::string json_kind(const json& j) {
    return std::string{j.described()};
}

// ---- codecs: one per kind of value --------------------------------------------------------------

struct boolean_codec {
    using value_type = bool;
    [[nodiscard]] std::string type() const { return "boolean"; }
    [[nodiscard]] std::string range() const { return "true, false"; }
    [[nodiscard]] refusal parse(std::string_view text, bool& out) const {
        const auto t = lower_ascii(text);
        if (t == "true" || t == "1" || t == "yes" || t == "on") {
            out = true;
        } else if (t == "false" || t == "0" || t == "no" || t == "off") {
            out = false;
        } else {
            return std::string{"not a boolean (true/false, 1/0, yes/no, on/off)"};
        }
        return std::nullopt;
    }
    [[nodiscard]] refusal from_json(const json& j, bool& out) const {
        if (!j.is_boolean()) return resilite::detail::format("expected true or false, got {}", json_kind(j));
        out = j.boolean;
        return std::nullopt;
    }
    [[nodiscard]] std::string show(bool v) const { return v ? "true" : "false"; }
    [[nodiscard]] refusal check(bool) const { return std::nullopt; }
};

template <class T>
struct integer_codec {
    using value_type = T;
    std::int64_t min, max;  // every range fits in int64 (the widest is 2^50 bytes)

    [[nodiscard]] std::string type() const { return "integer"; }
    [[nodiscard]] std::string range() const { return resilite::detail::format("{}..{}", min, max); }
    [[nodiscard]] refusal parse(std::string_view text, T& out) const {
        std::int64_t v = 0;
        const auto* end = text.data() + text.size();
        const auto [p, ec] = std::from_chars(text.data(), end, v);
        if (ec == std::errc::result_out_of_range)
            return resilite::detail::format("out of range ({})", range());
        if (ec != std::errc{} || p != end || text.empty()) return std::string{"not a whole number"};
        return store(v, out);
    }
    [[nodiscard]] refusal from_json(const json& j, T& out) const {
        if (j.is_whole_number() && j.number == json::number_kind::unsigned_integer) {
            const auto u = j.natural;
            if (u > static_cast<std::uint64_t>(max))
                return resilite::detail::format("{} is out of range ({})", u, range());
            return store(static_cast<std::int64_t>(u), out);
        }
        if (j.is_whole_number()) return store(j.integer, out);
        return resilite::detail::format("expected a whole number, got {}", json_kind(j));
    }
    [[nodiscard]] std::string show(T v) const { return resilite::detail::format("{}", v); }
    [[nodiscard]] refusal check(T v) const {
        if constexpr (std::is_signed_v<T>) {
            if (static_cast<std::int64_t>(v) < min || static_cast<std::int64_t>(v) > max)
                return resilite::detail::format("{} is out of range ({})", v, range());
        } else {
            if (static_cast<std::uint64_t>(v) < static_cast<std::uint64_t>(min) ||
                static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(max))
                return resilite::detail::format("{} is out of range ({})", v, range());
        }
        return std::nullopt;
    }

private:
    refusal store(std::int64_t v, T& out) const {
        if (v < min || v > max) return resilite::detail::format("{} is out of range ({})", v, range());
        out = static_cast<T>(v);  // exact: min..max fits T (checked in the table's tests)
        return std::nullopt;
    }
};

// A duration is written with its unit, in the environment and in the file alike: "500ms", "10s",
// "5min", "24h", "7d"; a bare number is refused (which unit?). It must be a whole number of the
// field's own unit: "1500ms" for a field in seconds is refused, never rounded.
template <class D>
struct duration_codec {
    using value_type = D;
    D min, max;

    struct unit {
        std::string_view suffix;
        std::int64_t ms;
    };
    static constexpr unit units[] = {
        {"d", 86'400'000}, {"h", 3'600'000}, {"min", 60'000}, {"s", 1000}, {"ms", 1}};
    static constexpr std::int64_t own_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(D{1}).count();  // fields are ms or coarser

    [[nodiscard]] std::string type() const { return "duration"; }
    [[nodiscard]] std::string range() const {
        return resilite::detail::format("{}..{}", show(min), show(max));
    }
    [[nodiscard]] refusal parse(std::string_view text, D& out) const {
        const auto digits_end = text.find_first_not_of("-0123456789");
        if (digits_end == 0 || digits_end == std::string_view::npos)
            return std::string{
                "not a duration: write a whole number and a unit (ms, s, min, h, d), e.g. 500ms"};
        const auto suffix = text.substr(digits_end);
        const auto* u = std::find_if(std::begin(units), std::end(units),
                                     [&](const unit& x) { return x.suffix == suffix; });
        if (u == std::end(units))
            return resilite::detail::format("unknown unit \"{}\" (use ms, s, min, h or d)", suffix);
        std::int64_t n = 0;
        const auto number = text.substr(0, digits_end);
        const auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
        if (ec == std::errc::result_out_of_range)
            return resilite::detail::format("out of range ({})", range());
        if (ec != std::errc{} || p != number.data() + number.size()) return std::string{"not a whole number"};
        std::int64_t ms = 0;
        if (__builtin_mul_overflow(n, u->ms, &ms))
            return resilite::detail::format("out of range ({})", range());
        if (ms % own_ms != 0)
            return resilite::detail::format("{} is not a whole number of {} (this field's unit)", text,
                                            units_name());
        const D v{ms / own_ms};
        if (auto r = check(v)) return r;
        out = v;
        return std::nullopt;
    }
    [[nodiscard]] refusal from_json(const json& j, D& out) const {
        if (!j.is_string())
            return resilite::detail::format(
                "expected a duration as a string with its unit (e.g. \"500ms\", \"10s\"), got {}",
                json_kind(j));
        return parse(j.text, out);
    }
    // In the largest unit that holds it exactly, so that what is shown reads back the same.
    [[nodiscard]] std::string show(D v) const {
        const std::int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(v).count();
        for (const auto& u : units)
            if (u.ms >= own_ms && ms % u.ms == 0 && (ms != 0 || u.ms == own_ms))
                return resilite::detail::format("{}{}", ms / u.ms, u.suffix);
        return resilite::detail::format("{}ms", ms);
    }
    [[nodiscard]] refusal check(D v) const {
        if (v < min || v > max) return resilite::detail::format("{} is out of range ({})", show(v), range());
        return std::nullopt;
    }

private:
    [[nodiscard]] static std::string_view units_name() {
        for (const auto& u : units)
            if (u.ms == own_ms) return u.suffix;
        return "ms";
    }
};

// One of a few names (case does not matter in the environment; the file takes them as shown).
template <class E>
struct choice_codec {
    using value_type = E;
    std::vector<std::pair<std::string_view, E>> names;
    // Names that exist elsewhere (SQLite's PRAGMA) and are refused here, with the reason.
    std::vector<std::pair<std::string_view, std::string_view>> refused{};

    [[nodiscard]] std::string type() const { return "enum"; }
    [[nodiscard]] std::string range() const {
        std::string out;
        for (const auto& [name, v] : names)
            out += (out.empty() ? "" : ", ") + std::string{name};
        return out;
    }
    [[nodiscard]] refusal parse(std::string_view text, E& out) const {
        const auto t = lower_ascii(text);
        for (const auto& [name, v] : names) {
            if (t == name) {
                out = v;
                return std::nullopt;
            }
        }
        for (const auto& [name, why] : refused)
            if (t == name) return std::string{why};
        return resilite::detail::format("unknown value \"{}\" (one of: {})", text, range());
    }
    [[nodiscard]] refusal from_json(const json& j, E& out) const {
        if (!j.is_string())
            return resilite::detail::format("expected one of {} as a string, got {}", range(), json_kind(j));
        return parse(j.text, out);
    }
    [[nodiscard]] std::string show(E v) const {
        for (const auto& [name, x] : names)
            if (x == v) return std::string{name};
        return resilite::detail::format("{}", static_cast<int>(v));
    }
    [[nodiscard]] refusal check(E v) const {
        for (const auto& [name, x] : names)
            if (x == v) return std::nullopt;
        return resilite::detail::format("{} is not one of {}", static_cast<int>(v), range());
    }
};

// Text taken as it is: a path (empty: the default place beside the database) or a command.
struct text_codec {
    using value_type = std::string;
    std::string_view kind = "text";
    std::string_view meaning = "any";

    [[nodiscard]] std::string type() const { return std::string{kind}; }
    [[nodiscard]] std::string range() const { return std::string{meaning}; }
    [[nodiscard]] refusal parse(std::string_view text, std::string& out) const {
        out = std::string{text};
        return check(out);
    }
    [[nodiscard]] refusal from_json(const json& j, std::string& out) const {
        if (!j.is_string()) return resilite::detail::format("expected a string, got {}", json_kind(j));
        return parse(j.text, out);
    }
    [[nodiscard]] std::string show(const std::string& v) const { return json_string(v); }
    [[nodiscard]] refusal check(const std::string& v) const {
        if (v.find('\0') != std::string::npos) return std::string{"contains a NUL character"};
        return std::nullopt;
    }
};

// ---- the table ------------------------------------------------------------------------------------

// What a field does with a settings object. One implementation per codec type, shared by every
// field of that type (the member is reached through a function pointer): a table of 47 fields
// costs each translation unit that includes it a dozen small classes, not 280 std::functions
// (that was 40 % of the compile time of a program using the library).
struct setting_field_ops {
    setting_field_ops() = default;
    setting_field_ops(const setting_field_ops&) = delete;
    setting_field_ops& operator=(const setting_field_ops&) = delete;
    virtual ~setting_field_ops() = default;
    [[nodiscard]] virtual refusal from_text(settings& s, std::string_view text) const = 0;
    [[nodiscard]] virtual refusal from_json(settings& s, const json& j) const = 0;
    [[nodiscard]] virtual std::string show(const settings& s) const = 0;
    [[nodiscard]] virtual refusal check(const settings& s) const = 0;
    virtual void copy(const settings& from, settings& to) const = 0;
    [[nodiscard]] virtual bool same(const settings& a, const settings& b) const = 0;
};

template <class Codec>
class typed_setting_field final : public setting_field_ops {
public:
    using T = typename Codec::value_type;
    using access_fn = T& (*)(settings&);
    using read_fn = const T& (*)(const settings&);

    typed_setting_field(access_fn access, read_fn read, Codec codec)
        : access_(access), read_(read), codec_(std::move(codec)) {}

    [[nodiscard]] refusal from_text(settings& s, std::string_view text) const override {
        T v{};
        if (auto r = codec_.parse(text, v)) return r;
        access_(s) = std::move(v);
        return std::nullopt;
    }
    [[nodiscard]] refusal from_json(settings& s, const json& j) const override {
        T v{};
        if (auto r = codec_.from_json(j, v)) return r;
        access_(s) = std::move(v);
        return std::nullopt;
    }
    [[nodiscard]] std::string show(const settings& s) const override { return codec_.show(read_(s)); }
    [[nodiscard]] refusal check(const settings& s) const override { return codec_.check(read_(s)); }
    void copy(const settings& from, settings& to) const override { access_(to) = read_(from); }
    [[nodiscard]] bool same(const settings& a, const settings& b) const override { return read_(a) == read_(b); }

private:
    access_fn access_;
    read_fn read_;
    Codec codec_;
};

struct setting_field {
    std::string path;  // "retry.max_attempts": member path, JSON path
    std::string type;  // for the docs and refusals
    std::string range;
    bool fixed_while_open = false;  // refused by reconfigure() and by a reloaded file
    std::shared_ptr<const setting_field_ops> ops;

    [[nodiscard]] refusal from_text(settings& s, std::string_view text) const { return ops->from_text(s, text); }
    [[nodiscard]] refusal from_json(settings& s, const json& j) const { return ops->from_json(s, j); }
    [[nodiscard]] std::string show(const settings& s) const { return ops->show(s); }
    // The range, however the value came.
    [[nodiscard]] refusal check(const settings& s) const { return ops->check(s); }
    void copy(const settings& from, settings& to) const { ops->copy(from, to); }
    [[nodiscard]] bool same(const settings& a, const settings& b) const { return ops->same(a, b); }

    // RESILITE_RETRY_MAX_ATTEMPTS
    [[nodiscard]] std::string variable() const {
        std::string v = "RESILITE_";
        for (const char c : path)
            v += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return v;
    }
    // "retry" ("" for a top-level field)
    [[nodiscard]] std::string section() const {
        const auto dot = path.find('.');
        return dot == std::string::npos ? std::string{} : path.substr(0, dot);
    }
    // "max_attempts"
    [[nodiscard]] std::string name() const {
        const auto dot = path.find('.');
        return dot == std::string::npos ? path : path.substr(dot + 1);
    }
};

// `access` and `read` name the member in a settings, and `read` in a const one:
// [](settings& s) -> auto& { return s.retry.max_attempts; } (the RESILITE_SETTING macro below).
template <class Codec>
[[nodiscard]] setting_field make_setting_field(std::string path, typename typed_setting_field<Codec>::access_fn access,
                                               typename typed_setting_field<Codec>::read_fn read, Codec codec,
                                               bool fixed = false) {
    setting_field f;
    f.path = std::move(path);
    f.type = codec.type();
    f.range = codec.range();
    f.fixed_while_open = fixed;
    f.ops = std::make_shared<const typed_setting_field<Codec>>(access, read, std::move(codec));
    return f;
}

// Every field of resilite::settings, in the order of docs/settings.md. One line per field: the
// member path (also the JSON path and the variable's name), the codec with its range, and
// `fixed` for what cannot change while the database is open.
[[nodiscard]] inline const std::vector<setting_field>& setting_fields() {
    static const std::vector<setting_field> table = [] {
        using namespace std::chrono_literals;
        using ms = std::chrono::milliseconds;
        using sec = std::chrono::seconds;
        using std::chrono::hours;
        using std::chrono::minutes;
        constexpr std::int64_t int_max = std::numeric_limits<int>::max();
        constexpr std::int64_t pib = std::int64_t{1} << 50;  // bytes: past any disk; keeps sums exact
        constexpr sec year{365 * 86'400};  // intervals: a longer one is a mistake (or an overflow later)
        constexpr bool fixed = true;
        const choice_codec<synchronous> sync_names{
            {{"normal", synchronous::normal}, {"full", synchronous::full}, {"extra", synchronous::extra}},
            {{"off",
              "OFF is not accepted: a power loss could lose committed transactions (use normal, full "
              "or extra)"}}};
        const text_codec path_text{"path", "any; empty: the default beside the database"};
        std::vector<setting_field> t;
#define RESILITE_SETTING(member, ...)                                          \
    t.push_back(make_setting_field(                                            \
        #member, [](settings& s) -> auto& { return s.member; },                \
        [](const settings& s) -> auto& { return s.member; }, __VA_ARGS__))
        RESILITE_SETTING(sync, sync_names);
        RESILITE_SETTING(checkpoint_interval, duration_codec<sec>{1s, year});
        RESILITE_SETTING(wal_alert_bytes, integer_codec<std::uint64_t>{1, pib});
        RESILITE_SETTING(busy_timeout, duration_codec<ms>{0ms, 600'000ms});
        RESILITE_SETTING(statement_cache_capacity, integer_codec<std::size_t>{1, 10'000});
        RESILITE_SETTING(read_connections, integer_codec<std::size_t>{0, 64}, fixed);
        RESILITE_SETTING(quick_check_interval, duration_codec<sec>{0s, year});
        RESILITE_SETTING(integrity_check_interval, duration_codec<sec>{0s, year});

        RESILITE_SETTING(retry.kind, choice_codec<retry_settings::strategy>{
                                         {{"exponential", retry_settings::strategy::exponential},
                                          {"constant", retry_settings::strategy::constant}}});
        RESILITE_SETTING(retry.jitter, choice_codec<jitter>{{{"none", jitter::none},
                                                             {"full", jitter::full},
                                                             {"equal", jitter::equal},
                                                             {"decorrelated", jitter::decorrelated}}});
        RESILITE_SETTING(retry.base, duration_codec<ms>{0ms, year});
        RESILITE_SETTING(retry.cap, duration_codec<ms>{0ms, year});
        RESILITE_SETTING(retry.multiplier, integer_codec<unsigned>{1, 65'536});
        RESILITE_SETTING(retry.max_attempts, integer_codec<int>{1, int_max});
        RESILITE_SETTING(retry.deadline, duration_codec<ms>{1ms, year});

        RESILITE_SETTING(backup.enabled, boolean_codec{});
        RESILITE_SETTING(backup.how, choice_codec<backup_settings::method>{
                                         {{"online", backup_settings::method::online},
                                          {"vacuum_into", backup_settings::method::vacuum_into}}});
        RESILITE_SETTING(backup.pages_per_step, integer_codec<int>{1, int_max});
        RESILITE_SETTING(backup.pause, duration_codec<ms>{0ms, 1h});
        RESILITE_SETTING(backup.time_limit, duration_codec<sec>{1s, year});
        RESILITE_SETTING(backup.interval,
                         duration_codec<minutes>{0min, std::chrono::duration_cast<minutes>(year)});
        RESILITE_SETTING(backup.check, choice_codec<check_level>{{{"header", check_level::header},
                                                                  {"quick", check_level::quick},
                                                                  {"full", check_level::full}}});
        RESILITE_SETTING(backup.keep_last, integer_codec<int>{0, 1'000'000});
        RESILITE_SETTING(backup.keep_hourly, integer_codec<int>{0, 1'000'000});
        RESILITE_SETTING(backup.keep_daily, integer_codec<int>{0, 1'000'000});
        RESILITE_SETTING(backup.keep_weekly, integer_codec<int>{0, 1'000'000});
        RESILITE_SETTING(backup.directory, path_text);
        RESILITE_SETTING(backup.sink,
                         text_codec{"command", "any; {path} and {name} are replaced; empty: none"});
        RESILITE_SETTING(backup.max_restarts, integer_codec<int>{0, 1000});
        RESILITE_SETTING(backup.sink_timeout, duration_codec<sec>{1s, std::chrono::hours{24}});

        RESILITE_SETTING(offsite.remote, text_codec{"path", "an rclone remote and path; empty: off"});
        RESILITE_SETTING(offsite.interval, duration_codec<sec>{1s, std::chrono::hours{24}});
        RESILITE_SETTING(offsite.timeout, duration_codec<sec>{1s, std::chrono::hours{24}});

        RESILITE_SETTING(archive.enabled, boolean_codec{}, fixed);
        RESILITE_SETTING(archive.when, choice_codec<archive_settings::flush>{
                                           {{"on_commit", archive_settings::flush::on_commit},
                                            {"batched", archive_settings::flush::batched}}});
        RESILITE_SETTING(archive.interval, duration_codec<ms>{1ms, year});
        RESILITE_SETTING(archive.directory, path_text, fixed);
        RESILITE_SETTING(archive.settle_rows, integer_codec<int>{1, int_max});
        RESILITE_SETTING(archive.baseline_after_bytes, integer_codec<std::uint64_t>{0, pib});

        RESILITE_SETTING(healing.enabled, boolean_codec{});
        RESILITE_SETTING(healing.max_attempts, integer_codec<int>{1, 1'000'000});
        RESILITE_SETTING(healing.time_limit, duration_codec<sec>{1s, year});
        RESILITE_SETTING(healing.quarantine_directory, path_text);
        RESILITE_SETTING(healing.retention,
                         duration_codec<hours>{0h, std::chrono::duration_cast<hours>(10 * year)});
        RESILITE_SETTING(healing.accept_loss_since_backup, boolean_codec{});
        RESILITE_SETTING(healing.drill_interval, duration_codec<sec>{0s, year});
        RESILITE_SETTING(healing.trial_rebuild_limit_bytes, integer_codec<std::uintmax_t>{0, pib});

        RESILITE_SETTING(degradation.probe_interval, duration_codec<ms>{1ms, year});
        RESILITE_SETTING(degradation.probe_max_interval, duration_codec<ms>{1ms, year});
#undef RESILITE_SETTING
        return t;
    }();
    return table;
}

// The field at a path, if there is one.
[[nodiscard]] inline const setting_field* find_setting_field(std::string_view path) {
    for (const auto& f : setting_fields())
        if (f.path == path) return &f;
    return nullptr;
}

// The first field out of its range, as "path: reason" (settings::problem() checks the rest:
// relations between fields, and what the policies allow).
[[nodiscard]] inline refusal field_range_problem(const settings& s) {
    for (const auto& f : setting_fields())
        if (auto r = f.check(s)) return resilite::detail::format("{}: {}", f.path, *r);
    return std::nullopt;
}

// The paths whose values differ, e.g. "busy_timeout, retry.max_attempts".
[[nodiscard]] inline std::string changed_fields(const settings& a, const settings& b) {
    std::string out;
    for (const auto& f : setting_fields())
        if (!f.same(a, b)) out += (out.empty() ? "" : ", ") + f.path;
    return out;
}

}  // namespace resilite::detail
