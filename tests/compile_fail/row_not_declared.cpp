#include <resilite/resilite.hpp>
struct item {
    BOOST_HANA_DEFINE_STRUCT(item, (std::int64_t, id), (std::string, name));
};
struct other {
    BOOST_HANA_DEFINE_STRUCT(other, (std::int64_t, id));
};
using items = resilite::table<"items", item, resilite::primary_key<"id">>;
int main() {
    resilite::Database<resilite::schema<items>> db{"unused.db"};
    return static_cast<int>(db.insert(other{1}));
}
