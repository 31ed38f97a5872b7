#include <resilite/resilite.hpp>
using Db =
    resilite::Database<resilite::wal_durability<>, resilite::wal_durability<resilite::synchronous::extra>>;
int main() {
    return sizeof(Db) > 0 ? 0 : 1;
}
