#pragma once
// Migrations policy family: ordered, versioned steps recorded in PRAGMA user_version. Each runs
// in its own transaction and is rolled back whole if it fails.
//
//   struct add_orders_total {
//       static constexpr int version = 2;
//       static constexpr std::string_view name = "orders.total";   // optional
//       static constexpr std::string_view sql = "UPDATE orders SET total = qty * price";
//   };
//   struct backfill { static constexpr int version = 3;
//                     static void up(auto& tx) { tx.exec("..."); } };  // C++, given the transaction
//   using M = resilite::migrations<add_orders_total, backfill>;

#include <resilite/core/slot.hpp>

#include <concepts>
#include <string_view>

namespace resilite {

// What to do with a database whose user_version is newer than the code's latest migration.
enum class newer_database {
    refuse,     // open fails with a schema error; the file is not touched
    read_only,  // open read-only; writes fail with read_only errors; the file is not touched
};

namespace detail {
template <class M>
concept sql_migration = requires {
    { M::sql } -> std::convertible_to<std::string_view>;
};

template <class M>
constexpr std::string_view migration_name() {
    if constexpr (requires {
                      { M::name } -> std::convertible_to<std::string_view>;
                  }) {
        return M::name;
    } else {
        return {};
    }
}

template <class... Ms>
constexpr bool versions_are_consecutive() {
    int expected = 1;
    bool ok = true;
    ((ok = ok && (Ms::version == expected++)), ...);
    return ok;
}
}  // namespace detail

template <newer_database OnNewer, class... Ms>
struct basic_migrations {
    static_assert((requires { Ms::version; } && ... && true),
                  "resilite::migrations<...>: every migration needs `static constexpr int version`");
    static_assert(detail::versions_are_consecutive<Ms...>(),
                  "resilite::migrations<...>: versions must be 1, 2, 3, ... in the order listed, without "
                  "duplicates or gaps");

    using slot = resilite::slot::migrations;
    static constexpr newer_database on_newer = OnNewer;
    static constexpr int latest = static_cast<int>(sizeof...(Ms));

    // Calls f(type_identity<M>) for each migration, in order.
    template <class F>
    static void for_each(F&& f) {
        (f(std::type_identity<Ms>{}), ...);
    }
};

template <class... Ms>
using migrations = basic_migrations<newer_database::refuse, Ms...>;

using no_migrations = basic_migrations<newer_database::refuse>;

template <class P>
concept migrations_policy = std::same_as<typename P::slot, slot::migrations> && requires {
    { P::latest } -> std::convertible_to<int>;
    { P::on_newer } -> std::convertible_to<newer_database>;
};


namespace detail {
template <class P>
constexpr bool checked_migrations_policy() {
    static_assert(migrations_policy<P>,
                  "resilite::Database<...>: the migrations policy must be a resilite::migrations<...>");
    return true;
}
}  // namespace detail

}  // namespace resilite
