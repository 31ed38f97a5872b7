#pragma once
// resilite::foreign_key<"col", "parent_table", "parent_col", OnDelete, OnUpdate>: every value of
// this column (other than NULL) is a key of a row in the parent table. The parent must be a
// table of the same schema, and the parent column its single-column primary key or declared
// unique (SQLite can only enforce a reference to a unique key). Declaring any foreign key turns
// SQLite's enforcement on, on every connection the Database opens (docs/schema.md).
//
//   using orders = resilite::table<"orders", Order, resilite::primary_key<"id">,
//       resilite::foreign_key<"user_id", "users", "id", resilite::referential_action::cascade>>;

#include <resilite/detail/fixed_string.hpp>
#include <resilite/schema/referential_action.hpp>

#include <string_view>

namespace resilite {

template <detail::fixed_string Column, detail::fixed_string ParentTable, detail::fixed_string ParentColumn,
          referential_action OnDelete = referential_action::no_action,
          referential_action OnUpdate = referential_action::no_action>
struct foreign_key {
    static constexpr bool is_foreign_key = true;
    static constexpr std::string_view column = Column.view();
    static constexpr std::string_view parent_table = ParentTable.view();
    static constexpr std::string_view parent_column = ParentColumn.view();
    static constexpr referential_action on_delete = OnDelete;
    static constexpr referential_action on_update = OnUpdate;
};

}  // namespace resilite
