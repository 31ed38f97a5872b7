#include <resilite/resilite.hpp>
struct point {
    int x, y;
};
int main() {
    resilite::Database<> db{"unused.db"};
    db.exec("INSERT INTO t VALUES(?)", point{1, 2});
}
