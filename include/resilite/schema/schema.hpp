#pragma once
// resilite::schema<Tables and triggers...>: the schema policy. Declared once, synced at open:
// missing tables, columns, indexes and triggers are added; drift is reported (schema_report).
//
//   using Schema = resilite::schema<users, orders, resilite::trigger<"count_orders", "...">>;
//   using Strict = resilite::strict_schema<users, orders>;   // any drift fails open

#include <resilite/core/slot.hpp>
#include <resilite/schema/detail/schema_def.hpp>
#include <resilite/schema/schema_mode.hpp>
#include <resilite/schema/table.hpp>
#include <resilite/schema/trigger.hpp>

#include <boost/hana/filter.hpp>
#include <boost/hana/find_if.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <array>
#include <string_view>
#include <type_traits>

namespace resilite {

namespace detail {
template <class T>
concept table_decl = requires {
    requires T::is_table;
};
template <class T>
concept trigger_decl = requires {
    requires T::is_trigger;
};

template <class T>
constexpr std::string_view table_name_of() {
    if constexpr (table_decl<T>) {
        return T::name;
    } else {
        return {};
    }
}
template <class T>
constexpr std::string_view trigger_name_of() {
    if constexpr (trigger_decl<T>) {
        return T::name;
    } else {
        return {};
    }
}

template <std::size_t N>
constexpr bool distinct_names(const std::array<std::string_view, N>& names) {
    for (std::size_t i = 0; i < N; ++i) {
        for (std::size_t j = i + 1; j < N; ++j) {
            if (!names[i].empty() && names[i] == names[j]) return false;
        }
    }
    return true;
}

template <class T>
constexpr auto foreign_keys_of() {
    if constexpr (table_decl<T>) {
        return T::foreign_keys;
    } else {
        return std::array<foreign_key_ref, 0>{};
    }
}

// True when `parent` is a table of Items whose `column` alone is a unique key.
template <class... Items>
constexpr bool unique_key_in(std::string_view parent, std::string_view column) {
    return (false || ... || [&] {
        if constexpr (table_decl<Items>) {
            return Items::name == parent && Items::has_unique_key(column);
        } else {
            return false;
        }
    }());
}

template <class... Items>
constexpr bool parents_declared() {
    return (true && ... && [] {
        for (const auto& fk : foreign_keys_of<Items>())
            if (!unique_key_in<Items...>(fk.parent_table, fk.parent_column)) return false;
        return true;
    }());
}

template <class Row>
struct table_of_row_t {
    template <class T>
    constexpr auto operator()(T) const {
        using Item = typename T::type;
        if constexpr (table_decl<Item>) {
            return boost::hana::bool_c<std::is_same_v<typename Item::row_type, Row>>;
        } else {
            return boost::hana::false_c;
        }
    }
};
}  // namespace detail

template <schema_mode Mode, class... Items>
struct basic_schema {
    static_assert(((detail::table_decl<Items> || detail::trigger_decl<Items>)&&... && true),
                  "resilite::schema<...>: list resilite::table<...> and resilite::trigger<...> types only");
    static_assert(detail::distinct_names(std::array<std::string_view, sizeof...(Items) + 1>{
                      detail::table_name_of<Items>()..., std::string_view{}}),
                  "resilite::schema<...>: two tables share a name");
    static_assert(detail::distinct_names(std::array<std::string_view, sizeof...(Items) + 1>{
                      detail::trigger_name_of<Items>()..., std::string_view{}}),
                  "resilite::schema<...>: two triggers share a name");
    static_assert(detail::parents_declared<Items...>(),
                  "resilite::schema<...>: a foreign_key names a parent table that is not in this schema, or a "
                  "parent column that is not its key: declare the parent table here, with that column as "
                  "its single-column primary_key, unique<...> or unique_index<...>");

    using slot = resilite::slot::schema;
    static constexpr schema_mode mode = Mode;
    static constexpr bool empty = sizeof...(Items) == 0;

    // The declaration in its run-time form, built once.
    [[nodiscard]] static const detail::schema_def& definition() {
        static const detail::schema_def def = [] {
            detail::schema_def d;
            (add<Items>(d), ...);
            return d;
        }();
        return def;
    }

    // The table declared for Row (a boost::hana::optional of its type).
    template <class Row>
    static constexpr auto find_table() {
        return boost::hana::find_if(boost::hana::tuple_t<Items...>, detail::table_of_row_t<Row>{});
    }

private:
    template <class Item>
    static void add(detail::schema_def& d) {
        if constexpr (detail::table_decl<Item>) {
            d.tables.push_back(Item::definition());
        } else {
            d.triggers.push_back({std::string{Item::name}, std::string{Item::sql}});
        }
    }
};

// The default: adds what is missing, tolerates warnings (an undeclared column, a different
// default), and fails open on critical drift or a declaration SQLite rejects.
template <class... Items>
using schema = basic_schema<schema_mode::add_missing, Items...>;
// Any drift, warnings included, fails open; nothing is changed.
template <class... Items>
using strict_schema = basic_schema<schema_mode::strict, Items...>;
// Never changes the database and never fails open: sync_report() says what would be done.
template <class... Items>
using report_only_schema = basic_schema<schema_mode::report_only, Items...>;

using no_schema = basic_schema<schema_mode::add_missing>;

template <class P>
concept schema_policy = std::same_as<typename P::slot, slot::schema> && requires {
    { P::definition() } -> std::convertible_to<const detail::schema_def&>;
    { P::mode } -> std::convertible_to<schema_mode>;
};


namespace detail {
template <class P>
constexpr bool checked_schema_policy() {
    static_assert(schema_policy<P>,
                  "resilite::Database<...>: the schema policy must be a resilite::schema<...>");
    return true;
}
}  // namespace detail

}  // namespace resilite
