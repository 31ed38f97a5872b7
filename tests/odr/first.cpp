// Both translation units include everything; linking them proves no header defines a
// non-inline function or variable.
#include <resilite/resilite.hpp>

int second_tu();

int main() {
    const auto m = resilite::user_message(resilite::error_class::busy);
    return (!m.empty() && second_tu() == 7) ? 0 : 1;
}
