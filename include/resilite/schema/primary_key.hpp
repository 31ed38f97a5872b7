#pragma once
// resilite::primary_key<"col", ...>: the table's primary key (one column or several). A single
// integer column becomes SQLite's rowid alias (INTEGER PRIMARY KEY).

#include <resilite/detail/fixed_string.hpp>

namespace resilite {

template <detail::fixed_string... Columns>
struct primary_key {
    static_assert(sizeof...(Columns) > 0, "resilite::primary_key<>: name at least one column");
    static constexpr std::string_view columns[] = {Columns.view()...};
};

}  // namespace resilite
