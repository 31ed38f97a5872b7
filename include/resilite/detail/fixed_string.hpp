#pragma once
// A string usable as a template argument: resilite::table<"users", User>.

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace resilite::detail {

template <std::size_t N>
struct fixed_string {
    char data[N]{};
    constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, data); }  // NOLINT: implicit by design
    [[nodiscard]] constexpr std::string_view view() const { return {data, N - 1}; }
    [[nodiscard]] constexpr std::size_t size() const { return N - 1; }
};

}  // namespace resilite::detail
