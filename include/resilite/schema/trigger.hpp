#pragma once
// resilite::trigger<"name", "AFTER INSERT ON t BEGIN ... END">: a trigger given as SQL (the text
// after CREATE TRIGGER "name"), for example to keep a summary table up to date.

#include <resilite/detail/fixed_string.hpp>

namespace resilite {

template <detail::fixed_string Name, detail::fixed_string Sql>
struct trigger {
    static constexpr bool is_trigger = true;
    static constexpr std::string_view name = Name.view();
    static constexpr std::string_view sql = Sql.view();
};

}  // namespace resilite
