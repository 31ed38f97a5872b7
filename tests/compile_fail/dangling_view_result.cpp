#include <resilite/resilite.hpp>
int main() {
    resilite::Database<> db{"unused.db"};
    auto rows = db.query<std::string_view>("SELECT 'x'");
    return rows.empty() ? 1 : 0;
}
