#pragma once
// UTC times as text, with strftime: what fmt/chrono.h would do for these few formats, without
// the second or more it adds to the compile time of every file that includes resilite.

#include <time.h>

#include <chrono>
#include <cstddef>
#include <ctime>
#include <string>

namespace resilite::detail {

// t (to the second, rounded down) in UTC, formatted by strftime: utc_format(t, "%Y-%m-%dT%H:%M:%S").
[[nodiscard]] inline std::string utc_format(std::chrono::system_clock::time_point t, const char* format) {
    const auto seconds = std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
    const auto tt = static_cast<std::time_t>(seconds);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[96];
    const std::size_t n = std::strftime(buf, sizeof buf, format, &tm);
    return std::string(buf, n);
}

}  // namespace resilite::detail
