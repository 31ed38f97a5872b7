#include <resilite/resilite.hpp>
struct item {
    BOOST_HANA_DEFINE_STRUCT(item, (std::int64_t, id), (std::string, name));
};
using items = resilite::table<"items", item, resilite::primary_key<"id">, resilite::index<"by_nme", "nme">>;
int main() {
    return static_cast<int>(items::definition().columns.size());
}
