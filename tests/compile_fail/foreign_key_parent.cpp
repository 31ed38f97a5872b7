#include <resilite/resilite.hpp>
struct user {
    BOOST_HANA_DEFINE_STRUCT(user, (std::int64_t, id), (std::string, name));
};
struct order {
    BOOST_HANA_DEFINE_STRUCT(order, (std::int64_t, id), (std::int64_t, user_id));
};
using users = resilite::table<"users", user, resilite::primary_key<"id">>;
// "name" is not a key of users: SQLite would fail every write with "foreign key mismatch".
using orders = resilite::table<"orders", order, resilite::primary_key<"id">,
                               resilite::foreign_key<"user_id", "users", "name">>;
int main() {
    return static_cast<int>(resilite::schema<users, orders>::definition().tables.size());
}
