#pragma once
// What the library knows about a row struct described with BOOST_HANA_DEFINE_STRUCT: its member
// names, their SQL types and nullability, all at compile time.

#include <resilite/core/blob.hpp>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/unpack.hpp>

#include <array>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace resilite::detail {

template <class T>
struct sql_type_of {
    static constexpr bool supported = false;
};
template <class T>
requires(std::integral<T>) struct sql_type_of<T> {
    static constexpr bool supported = true;
    static constexpr std::string_view type = "INTEGER";
    static constexpr bool nullable = false;
};
template <std::floating_point T>
struct sql_type_of<T> {
    static constexpr bool supported = true;
    static constexpr std::string_view type = "REAL";
    static constexpr bool nullable = false;
};
template <>
struct sql_type_of<std::string> {
    static constexpr bool supported = true;
    static constexpr std::string_view type = "TEXT";
    static constexpr bool nullable = false;
};
template <>
struct sql_type_of<blob> {
    static constexpr bool supported = true;
    static constexpr std::string_view type = "BLOB";
    static constexpr bool nullable = false;
};
template <>
struct sql_type_of<std::vector<std::uint8_t>> : sql_type_of<blob> {};
template <class T>
struct sql_type_of<std::optional<T>> : sql_type_of<T> {
    static constexpr bool nullable = true;
};

template <class Row>
inline constexpr bool is_described = boost::hana::Struct<Row>::value;

template <class Row, class Accessor>
using member_type_t =
    std::remove_cvref_t<decltype(boost::hana::second(std::declval<Accessor>())(std::declval<Row&>()))>;

// Member names, in declaration order.
template <class Row>
constexpr auto member_names() {
    return boost::hana::unpack(boost::hana::accessors<Row>(), [](auto... p) {
        return std::array<std::string_view, sizeof...(p)>{
            std::string_view{std::remove_cvref_t<decltype(boost::hana::first(p))>::c_str()}...};
    });
}

template <class Row>
constexpr bool has_member(std::string_view name) {
    for (auto n : member_names<Row>()) {
        if (n == name) return true;
    }
    return false;
}

// True when every member has a type the library can store.
template <class Row>
constexpr bool members_storable() {
    return boost::hana::unpack(boost::hana::accessors<Row>(), [](auto... p) {
        return (sql_type_of<member_type_t<Row, decltype(p)>>::supported && ... && true);
    });
}

}  // namespace resilite::detail
