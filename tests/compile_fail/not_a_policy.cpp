#include <resilite/resilite.hpp>
struct not_a_policy {};
using Db = resilite::Database<resilite::null_observer, not_a_policy>;
int main() {
    return sizeof(Db) > 0 ? 0 : 1;
}
