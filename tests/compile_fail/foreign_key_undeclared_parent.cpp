#include <resilite/resilite.hpp>
struct order {
    BOOST_HANA_DEFINE_STRUCT(order, (std::int64_t, id), (std::int64_t, user_id));
};
// The parent table "users" is not in the schema.
using orders = resilite::table<"orders", order, resilite::primary_key<"id">,
                               resilite::foreign_key<"user_id", "users", "id">>;
int main() {
    return static_cast<int>(resilite::schema<orders>::definition().tables.size());
}
