#include <resilite/resilite.hpp>
struct first {
    static constexpr int version = 1;
    static constexpr std::string_view sql = "SELECT 1";
};
struct also_first {
    static constexpr int version = 1;
    static constexpr std::string_view sql = "SELECT 2";
};
using M = resilite::migrations<first, also_first>;
int main() {
    return M::latest;
}
