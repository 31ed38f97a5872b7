#pragma once
// resilite::detail::format: fmt::format without the compile-time check of the format string.
//
// fmt checks every format string against its arguments at compile time (a consteval
// constructor). Over the library's ~550 messages that check cost every program that includes
// resilite about a second of parsing (a 10-table Database: g++ -fsyntax-only 9.4 -> 8.3 s,
// clang++ -O2 16.7-17.1 -> 15.2-15.5 s; g++ -O2 within its noise; docs/performance.md). The
// library's own tests define RESILITE_CHECK_FORMAT_STRINGS, so each string is still checked
// where the tests compile it; a program gets the unchecked path, and the same strings.

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
