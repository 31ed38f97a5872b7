// Clock policies: the manual clock that tests drive.
#include "support.hpp"

#include <catch2/catch.hpp>

// Each file in its own namespace: the test files also compile as one unit (CI's unity build).
namespace policy_clock_tests {

using namespace std::chrono_literals;

TEST_CASE("manual clock moves only when told, and copies share one timeline", "[clock]") {
    resilite::manual_clock clock;
    const auto t0 = clock.now();
    const auto u0 = clock.utc_now();
    CHECK(clock.now() == t0);
    resilite::manual_clock copy = clock;
    copy.advance(1500ms);
    CHECK(clock.now() - t0 == 1500ms);
    CHECK(clock.utc_now() - u0 == 1500ms);
    clock.sleep_for(250ms);
    CHECK(copy.now() - t0 == 1750ms);
    CHECK(clock.sleeps() == std::vector<std::chrono::nanoseconds>{250ms});
}

TEST_CASE("manual clock tells subscribers of every advance until they unsubscribe", "[clock]") {
    resilite::manual_clock clock;
    int calls = 0;
    {
        auto sub = clock.subscribe([&] { ++calls; });
        clock.advance(1s);
        clock.sleep_for(1s);
        CHECK(calls == 2);
        auto moved = std::move(sub);
        clock.advance(1s);
        CHECK(calls == 3);
    }
    clock.advance(1s);
    CHECK(calls == 3);
}

TEST_CASE("system clock is monotonic and sleeps for real", "[clock]") {
    resilite::system_clock clock;
    const auto a = clock.now();
    clock.sleep_for(1ms);
    CHECK(clock.now() - a >= 1ms);
    STATIC_REQUIRE(resilite::clock_policy<resilite::system_clock>);
    STATIC_REQUIRE(resilite::advancing_clock<resilite::manual_clock>);
    STATIC_REQUIRE_FALSE(resilite::advancing_clock<resilite::system_clock>);
}

}  // namespace policy_clock_tests
