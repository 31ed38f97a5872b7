#pragma once
// resilite::index<"name", "col", ...> and its unique and partial forms: secondary indexes of a
// table. They hold no data, so a changed definition is simply recreated at open.

#include <resilite/detail/fixed_string.hpp>

#include <string_view>

namespace resilite {

namespace detail {
template <bool Unique, fixed_string Name, fixed_string Where, fixed_string... Columns>
struct index_decl {
    static_assert(sizeof...(Columns) > 0, "resilite::index: name at least one column");
    static constexpr bool is_index = true;
    static constexpr bool is_unique = Unique;
    static constexpr std::string_view name = Name.view();
    static constexpr std::string_view where = Where.view();
    static constexpr std::string_view columns[] = {Columns.view()...};
};
}  // namespace detail

template <detail::fixed_string Name, detail::fixed_string... Columns>
struct index : detail::index_decl<false, Name, "", Columns...> {};

template <detail::fixed_string Name, detail::fixed_string... Columns>
struct unique_index : detail::index_decl<true, Name, "", Columns...> {};

// Only rows matching Where ("deleted_at IS NULL", or "WHERE deleted_at IS NULL") are indexed.
template <detail::fixed_string Name, detail::fixed_string Where, detail::fixed_string... Columns>
struct partial_index : detail::index_decl<false, Name, Where, Columns...> {};

template <detail::fixed_string Name, detail::fixed_string Where, detail::fixed_string... Columns>
struct unique_partial_index : detail::index_decl<true, Name, Where, Columns...> {};

}  // namespace resilite
