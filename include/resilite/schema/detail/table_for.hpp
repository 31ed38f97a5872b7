#pragma once
// The declared table a row type belongs to, or a compile error that says how to declare it.

#include <boost/hana/optional.hpp>
#include <boost/hana/type.hpp>

#include <type_traits>

namespace resilite::detail {

template <class Schema, class Row>
struct table_lookup {
    static constexpr auto found = Schema::template find_table<Row>();
    using type = typename std::remove_cvref_t<decltype(found.value_or(boost::hana::type_c<void>))>::type;
    static_assert(!std::is_void_v<type>,
                  "resilite::Database: this row type is not declared in the schema; add "
                  "resilite::table<\"name\", Row, ...> to the resilite::schema<...> policy");
};

template <class Schema, class Row>
using table_for = typename table_lookup<Schema, Row>::type;

}  // namespace resilite::detail
