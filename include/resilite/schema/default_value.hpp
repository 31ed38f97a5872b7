#pragma once
// resilite::default_value<"col", "SQL literal">: the column's DEFAULT, as SQL ("0", "'none'",
// "CURRENT_TIMESTAMP"). A NOT NULL column can be added to a table holding rows only with one.

#include <resilite/detail/fixed_string.hpp>

namespace resilite {

template <detail::fixed_string Column, detail::fixed_string Sql>
struct default_value {
    static constexpr std::string_view column = Column.view();
    static constexpr std::string_view sql = Sql.view();
};

}  // namespace resilite
