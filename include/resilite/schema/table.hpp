#pragma once
// resilite::table<"name", Row, Options...>: a table declared once, from a struct described with
// BOOST_HANA_DEFINE_STRUCT. Members map to columns in order: integers and bool to INTEGER,
// floating point to REAL, std::string to TEXT, resilite::blob / std::vector<std::uint8_t> to
// BLOB; std::optional<T> is nullable, every other column NOT NULL.
//
//   using users = resilite::table<"users", User, resilite::primary_key<"id">,
//                                 resilite::unique<"email">, resilite::index<"users_by_name", "name">>;
//   using orders = resilite::table<"orders", Order, resilite::primary_key<"id">,
//                                  resilite::foreign_key<"user_id", "users", "id">>;

#include <resilite/detail/fixed_string.hpp>
#include <resilite/schema/default_value.hpp>
#include <resilite/schema/detail/row_traits.hpp>
#include <resilite/schema/detail/schema_def.hpp>
#include <resilite/schema/foreign_key.hpp>
#include <resilite/schema/index.hpp>
#include <resilite/schema/primary_key.hpp>
#include <resilite/schema/secret.hpp>
#include <resilite/schema/unique.hpp>

#include <boost/hana/define_struct.hpp>  // users describe rows with BOOST_HANA_DEFINE_STRUCT
#include <boost/hana/for_each.hpp>

#include <array>
#include <string>
#include <string_view>
#include <type_traits>

namespace resilite {

namespace detail {
template <class T>
struct is_primary_key : std::false_type {};
template <fixed_string... C>
struct is_primary_key<primary_key<C...>> : std::true_type {};
template <class T>
struct is_default_value : std::false_type {};
template <fixed_string C, fixed_string S>
struct is_default_value<default_value<C, S>> : std::true_type {};
template <class T>
struct is_unique : std::false_type {};
template <fixed_string C>
struct is_unique<unique<C>> : std::true_type {};
template <class T>
struct is_secret : std::false_type {};
template <fixed_string C>
struct is_secret<secret<C>> : std::true_type {};
template <class T>
concept index_option = requires {
    requires T::is_index;
};
template <class T>
concept foreign_key_option = requires {
    requires T::is_foreign_key;
};

// A foreign key as the schema checks it at compile time (resilite::schema<...>).
struct foreign_key_ref {
    std::string_view column;
    std::string_view parent_table;
    std::string_view parent_column;
};

template <class T>
constexpr std::size_t foreign_key_count() {
    return foreign_key_option<T> ? 1 : 0;
}

// True when Opt makes `column` alone a unique key: a one-column primary key, unique<column>, or
// a unique index (not partial) on exactly that column.
template <class Opt>
constexpr bool makes_unique_key(std::string_view column) {
    if constexpr (is_primary_key<Opt>::value) {
        return std::size(Opt::columns) == 1 && Opt::columns[0] == column;
    } else if constexpr (is_unique<Opt>::value) {
        return Opt::column == column;
    } else if constexpr (index_option<Opt>) {
        return Opt::is_unique && Opt::where.empty() && std::size(Opt::columns) == 1 && Opt::columns[0] == column;
    } else {
        return false;
    }
}

template <class T>
constexpr std::size_t primary_key_size() {
    if constexpr (is_primary_key<T>::value) {
        return std::size(T::columns);
    } else {
        return 0;
    }
}

template <class T>
constexpr bool is_table_option() {
    return is_primary_key<T>::value || is_default_value<T>::value || is_unique<T>::value ||
           is_secret<T>::value || index_option<T> || foreign_key_option<T>;
}

// Every column an option names is a member of Row.
template <class Row, class Opt>
constexpr bool option_columns_exist() {
    if constexpr (is_primary_key<Opt>::value || index_option<Opt>) {
        for (auto c : Opt::columns) {
            if (!has_member<Row>(c)) return false;
        }
        return true;
    } else if constexpr (is_default_value<Opt>::value || is_unique<Opt>::value || is_secret<Opt>::value ||
                         foreign_key_option<Opt>) {
        return has_member<Row>(Opt::column);
    } else {
        return true;
    }
}

template <class... Options>
constexpr bool distinct_foreign_key_columns() {
    std::array<std::string_view, sizeof...(Options) + 1> cols{};
    std::size_t n = 0;
    (
        [&] {
            if constexpr (foreign_key_option<Options>) cols[n++] = Options::column;
        }(),
        ...);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = i + 1; j < n; ++j)
            if (cols[i] == cols[j]) return false;
    return true;
}

template <class Opt, class Item>
void apply_option(table_def& t, const Item&) {
    if constexpr (is_primary_key<Opt>::value) {
        for (auto c : Opt::columns)
            t.primary_key.emplace_back(c);
    } else if constexpr (index_option<Opt>) {
        index_def i{std::string{Opt::name}, {}, Opt::is_unique, std::string{Opt::where}};
        for (auto c : Opt::columns)
            i.columns.emplace_back(c);
        t.indexes.push_back(std::move(i));
    } else {
        for (auto& col : t.columns) {
            if (col.name != Opt::column) continue;
            if constexpr (is_default_value<Opt>::value) col.default_sql = std::string{Opt::sql};
            if constexpr (is_unique<Opt>::value) col.unique = true;
            if constexpr (is_secret<Opt>::value) col.secret = true;
            if constexpr (foreign_key_option<Opt>)
                col.references = foreign_key_def{std::string{Opt::parent_table}, std::string{Opt::parent_column},
                                                 Opt::on_delete, Opt::on_update};
        }
    }
}
}  // namespace detail

template <detail::fixed_string Name, class Row, class... Options>
struct table {
    static_assert(detail::is_described<Row>,
                  "resilite::table<name, Row>: describe Row with BOOST_HANA_DEFINE_STRUCT so that its "
                  "members can become columns");
    static_assert(detail::members_storable<Row>(),
                  "resilite::table<name, Row>: a member of Row has a type that cannot be stored; use "
                  "integers, bool, floating point, std::string, resilite::blob, "
                  "std::vector<std::uint8_t> or std::optional of those");
    static_assert((detail::is_table_option<Options>() && ...),
                  "resilite::table<name, Row, Options...>: unknown option; use primary_key, "
                  "default_value, unique, secret, foreign_key, index, unique_index, partial_index or "
                  "unique_partial_index");
    static_assert((0 + ... + (detail::is_primary_key<Options>::value ? 1 : 0)) <= 1,
                  "resilite::table<name, Row, Options...>: two primary_key options given: keep one (list "
                  "several columns in one primary_key for a composite key)");
    static_assert((detail::option_columns_exist<Row, Options>() && ...),
                  "resilite::table<name, Row, Options...>: an option names a column that is not a member "
                  "of Row (check the spelling against BOOST_HANA_DEFINE_STRUCT)");
    static_assert(detail::distinct_foreign_key_columns<Options...>(),
                  "resilite::table<name, Row, Options...>: two foreign_key options name one column: a column "
                  "references one parent");

    using row_type = Row;
    static constexpr bool is_table = true;
    static constexpr std::string_view name = Name.view();
    static constexpr std::size_t primary_key_size = (0 + ... + detail::primary_key_size<Options>());

    // For the schema's compile-time checks of foreign keys (resilite::schema<...>).
    [[nodiscard]] static constexpr bool has_unique_key([[maybe_unused]] std::string_view column) {
        return (false || ... || detail::makes_unique_key<Options>(column));
    }
    static constexpr auto foreign_keys = [] {
        std::array<detail::foreign_key_ref, (0 + ... + detail::foreign_key_count<Options>())> out{};
        [[maybe_unused]] std::size_t i = 0;
        (
            [&] {
                if constexpr (detail::foreign_key_option<Options>)
                    out[i++] = {Options::column, Options::parent_table, Options::parent_column};
            }(),
            ...);
        return out;
    }();

    [[nodiscard]] static detail::table_def definition() {
        detail::table_def t;
        t.name = std::string{name};
        boost::hana::for_each(boost::hana::accessors<Row>(), [&](auto p) {
            using M = detail::member_type_t<Row, decltype(p)>;
            detail::column_def c;
            c.name = std::remove_cvref_t<decltype(boost::hana::first(p))>::c_str();
            c.type = std::string{detail::sql_type_of<M>::type};
            c.not_null = !detail::sql_type_of<M>::nullable;
            t.columns.push_back(std::move(c));
        });
        (detail::apply_option<Options>(t, 0), ...);
        return t;
    }
};

}  // namespace resilite
