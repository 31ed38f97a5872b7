#pragma once
// Finds, for each slot, the policy the user gave or the slot's default, and rejects with a
// readable message a type that is no policy or two policies for one slot.

#include <resilite/core/slot.hpp>
#include <resilite/policy/archive.hpp>
#include <resilite/policy/backup.hpp>
#include <resilite/policy/clock.hpp>
#include <resilite/policy/degradation.hpp>
#include <resilite/policy/durability.hpp>
#include <resilite/policy/healing.hpp>
#include <resilite/policy/migrations.hpp>
#include <resilite/policy/observer.hpp>
#include <resilite/policy/retry.hpp>
#include <resilite/schema/schema.hpp>

#include <boost/hana/at_key.hpp>
#include <boost/hana/contains.hpp>
#include <boost/hana/count_if.hpp>
#include <boost/hana/find_if.hpp>
#include <boost/hana/map.hpp>
#include <boost/hana/optional.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <type_traits>

namespace resilite::detail {

namespace hana = boost::hana;

// Every slot the library knows, with its default policy.
inline constexpr auto slot_defaults =
    hana::make_map(hana::make_pair(hana::type_c<slot::durability>, hana::type_c<wal_durability<>>),
                   hana::make_pair(hana::type_c<slot::observer>, hana::type_c<stderr_observer<>>),
                   hana::make_pair(hana::type_c<slot::clock>, hana::type_c<system_clock>),
                   hana::make_pair(hana::type_c<slot::retry>, hana::type_c<exponential_backoff<>>),
                   hana::make_pair(hana::type_c<slot::schema>, hana::type_c<no_schema>),
                   hana::make_pair(hana::type_c<slot::migrations>, hana::type_c<no_migrations>),
                   hana::make_pair(hana::type_c<slot::backup>, hana::type_c<no_backup>),
                   hana::make_pair(hana::type_c<slot::archive>, hana::type_c<no_archive>),
                   hana::make_pair(hana::type_c<slot::healing>, hana::type_c<no_healing>),
                   hana::make_pair(hana::type_c<slot::degradation>, hana::type_c<degradation<>>));

template <class P>
concept has_slot = requires {
    typename P::slot;
};

template <class P>
constexpr bool is_policy() {
    if constexpr (has_slot<P>) {
        return hana::contains(slot_defaults, hana::type_c<typename P::slot>);
    } else {
        return false;
    }
}

// Instantiated per argument so that the compiler names the offending type.
template <class P>
struct check_is_policy {
    static_assert(is_policy<P>(),
                  "resilite::Database<...>: this template argument is not a policy. A policy "
                  "declares `using slot = resilite::slot::<name>;` (durability, observer, clock, retry, "
                  "schema, migrations, backup, archive, healing, degradation); "
                  "pass policy types such as resilite::wal_durability<> or "
                  "resilite::callback_observer");
    static constexpr bool value = is_policy<P>();
};

// hana predicate: does the policy type sit in Slot?
template <class Slot>
struct in_slot_t {
    template <class T>
    constexpr auto operator()(T) const {
        using P = typename T::type;
        if constexpr (has_slot<P>) {
            return hana::bool_c<std::is_same_v<typename P::slot, Slot>>;
        } else {
            return hana::false_c;
        }
    }
};
template <class Slot>
inline constexpr in_slot_t<Slot> in_slot{};

template <class Slot, class... Ps>
inline constexpr bool at_most_one_in_slot =
    decltype(hana::count_if(hana::tuple_t<Ps...>, in_slot<Slot>))::value <= 1;

template <class Slot, class... Ps>
constexpr auto find_policy() {
    return hana::find_if(hana::tuple_t<Ps...>, in_slot<Slot>).value_or(slot_defaults[hana::type_c<Slot>]);
}

template <class... Ps>
struct policy_set {
    static constexpr bool all_policies = (check_is_policy<Ps>::value && ...);
    static_assert(at_most_one_in_slot<slot::durability, Ps...>,
                  "resilite::Database<...>: two durability policies given: keep one");
    static_assert(at_most_one_in_slot<slot::observer, Ps...>,
                  "resilite::Database<...>: two observer policies given: keep one");
    static_assert(at_most_one_in_slot<slot::clock, Ps...>,
                  "resilite::Database<...>: two clock policies given: keep one");
    static_assert(at_most_one_in_slot<slot::retry, Ps...>,
                  "resilite::Database<...>: two retry policies given: keep one");
    static_assert(
        at_most_one_in_slot<slot::schema, Ps...>,
        "resilite::Database<...>: two schema policies given: put every table in one resilite::schema<...>");
    static_assert(at_most_one_in_slot<slot::backup, Ps...>,
                  "resilite::Database<...>: two backup policies given: keep one");
    static_assert(at_most_one_in_slot<slot::archive, Ps...>,
                  "resilite::Database<...>: two archive policies given: keep one");
    static_assert(at_most_one_in_slot<slot::healing, Ps...>,
                  "resilite::Database<...>: two healing policies given: keep one");
    static_assert(at_most_one_in_slot<slot::degradation, Ps...>,
                  "resilite::Database<...>: two degradation policies given: keep one");
    static_assert(at_most_one_in_slot<slot::migrations, Ps...>,
                  "resilite::Database<...>: two migrations policies given: list every migration in one "
                  "resilite::migrations<...>");

    // The policy given for Slot, or the slot's default.
    template <class Slot>
    using get = typename decltype(find_policy<Slot, Ps...>())::type;
};

// The policy of every slot, each checked against its family's concept (the message names the
// fix). What the components of a Database are instantiated with.
template <class... Ps>
struct resolved_policies {
    using set = policy_set<Ps...>;
    using durability = typename set::template get<slot::durability>;
    using observer = typename set::template get<slot::observer>;
    using clock = typename set::template get<slot::clock>;
    using retry = typename set::template get<slot::retry>;
    using schema = typename set::template get<slot::schema>;
    using migrations = typename set::template get<slot::migrations>;
    using backup = typename set::template get<slot::backup>;
    using archive = typename set::template get<slot::archive>;
    using healing = typename set::template get<slot::healing>;
    using degradation = typename set::template get<slot::degradation>;

    static constexpr bool valid =
        set::all_policies && checked_durability_policy<durability>() && checked_observer_policy<observer>() &&
        checked_clock_policy<clock>() && checked_retry_policy<retry>() && checked_schema_policy<schema>() &&
        checked_migrations_policy<migrations>() && checked_backup_policy<backup>() &&
        checked_archive_policy<archive>() && checked_healing_policy<healing>() &&
        checked_degradation_policy<degradation>();
    static_assert(!archive::enabled || !schema::empty,
                  "resilite::archive<> needs a declared schema: it archives every table, and the declared ones "
                  "say which columns are secret (never archived); add resilite::schema<resilite::table<...>, ...>");
    static constexpr bool archiving = archive::enabled;
};

}  // namespace resilite::detail
