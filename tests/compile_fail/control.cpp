// The same shapes as the failing files, written correctly: must compile, or the compile-fail
// tests could be passing for the wrong reason.
#include <resilite/resilite.hpp>
using Extra = resilite::Database<resilite::wal_durability<resilite::synchronous::extra>,
                                 resilite::null_observer>;
using Relaxed = resilite::Database<resilite::relaxed_durability<>, resilite::manual_clock>;
int main() {
    Extra db{"unused.db"};
    db.exec("INSERT INTO t VALUES(?)", 42);
    return sizeof(Relaxed) > 0 ? 0 : 1;
}
