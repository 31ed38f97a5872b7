#include <resilite/resilite.hpp>

int second_tu() {
    return resilite::user_message(resilite::error_class::corrupt).empty() ? 0 : 7;
}
