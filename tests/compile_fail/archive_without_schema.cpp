#include <resilite/resilite.hpp>
int main() {
    resilite::Database<resilite::archive<>> db{"unused.db"};
    return static_cast<int>(db.exec("SELECT 1"));
}
