// Compile-time benchmark: the umbrella header alone, nothing instantiated: the floor every
// program using resilite pays (benchmarks/compile_time.sh measures it).
#include <resilite/resilite.hpp>

int main() {
    return 0;
}
