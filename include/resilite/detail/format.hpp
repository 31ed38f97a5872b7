#pragma once
// resilite::detail::format: fmt::format without the compile-time check of the format string.
//
// fmt checks every format string against its arguments at compile time (a consteval
// constructor). Over the library's ~550 messages that check was a quarter of the compile time
// of every program that includes resilite (4.7 of 21 s for a 10-table Database at -O2,
// docs/performance.md). The library's own tests define RESILITE_CHECK_FORMAT_STRINGS, so each
// string is still checked where the tests compile it; a program gets the unchecked path, and
// the same strings.

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace resilite::detail {

#if defined(RESILITE_CHECK_FORMAT_STRINGS)
template <typename... Args>
[[nodiscard]] std::string format(fmt::format_string<Args...> f, Args&&... args) {
    return fmt::format(f, std::forward<Args>(args)...);
}
#else
template <typename... Args>
[[nodiscard]] std::string format(std::string_view f, const Args&... args) {
    return fmt::vformat(f, fmt::make_format_args(args...));
}
#endif

}  // namespace resilite::detail
