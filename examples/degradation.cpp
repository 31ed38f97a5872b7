// Degradation modes: an orders service that keeps taking orders while its disk is full, and
// one that says "try again shortly" at once instead of hanging (docs/degradation.md).
#include <resilite/resilite.hpp>
#include <resilite/testing/fault_vfs.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

namespace {

struct Order {
    BOOST_HANA_DEFINE_STRUCT(Order, (std::int64_t, id), (std::string, item), (std::int64_t, quantity));
};
using orders = resilite::table<"orders", Order, resilite::primary_key<"id">>;

// snippet-begin: declaration
// Writes go to a durable queue while the database is unavailable (at most 10,000 of them);
// reads are served while the file itself is sound.
using OrdersDb = resilite::Database<resilite::schema<orders>, resilite::degradation<resilite::queue_writes<10000>>>;

// The default: every call fails at once with class `degraded` while the file is in doubt (a heal,
// damage); while only writes fail (disk full), reads are served and each write is tried.
using StrictDb = resilite::Database<resilite::schema<orders>, resilite::degradation<resilite::fail_fast>>;
// snippet-end: declaration

// snippet-begin: take_order
// Returns what to tell the customer.
std::string take_order(OrdersDb& db, const Order& order) {
    const resilite::write_result r = db.insert(order);
    if (r.queued()) {
        // Durable (fsynced) in the queue beside the database; replayed in order, exactly once,
        // when the database is back. Reads do not see it until then.
        return fmt::format("order {} accepted (queued as entry {})", order.id, r.queue_seq);
    }
    return fmt::format("order {} recorded", order.id);
}
// snippet-end: take_order

// snippet-begin: fail_fast
std::string cancel_order(StrictDb& db, std::int64_t id) {
    try {
        db.erase<Order>(id);
        return "cancelled";
    } catch (const resilite::error& e) {
        if (e.klass() == resilite::error_class::degraded) return "please try again in a moment";
        throw;
    }
}
// snippet-end: fail_fast

// snippet-begin: metrics
// The application's /metrics endpoint, for Prometheus (docs/metrics.md): every figure of
// health(), as OpenMetrics text labelled with the database.
std::string metrics_page(OrdersDb& db) { return resilite::to_openmetrics(db.health(), "orders.db"); }
// snippet-end: metrics

}  // namespace

int main() {
    const auto dir = std::filesystem::temp_directory_path() / "resilite-degradation-example";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    int failures = 0;
    {
        // A disk that fills up, imitated by the fault VFS of the testing toolkit.
        resilite::testing::fault_vfs disk{"degradation-example"};
        OrdersDb::options options;
        options.vfs = disk.name();
        auto s = OrdersDb::default_settings();
        s.degradation.probe_interval = std::chrono::milliseconds{5};
        options.settings = s;
        OrdersDb db(dir / "orders.db", std::move(options));

        std::puts(take_order(db, {1, "tea", 2}).c_str());
        disk.set_space(0);  // the disk is full from here on
        std::puts(take_order(db, {2, "coffee", 1}).c_str());
        std::puts(take_order(db, {3, "cake", 4}).c_str());

        // snippet-begin: health
        const resilite::health_snapshot h = db.health();
        if (!h.available) {
            std::printf("database unavailable (%s): %s; %llu writes queued\n", h.unavailable_reason.c_str(),
                        h.unavailable_detail.c_str(), static_cast<unsigned long long>(h.queue_depth));
        }
        // snippet-end: health
        failures += h.available || h.queue_depth != 2;
        failures += db.query_one<int>("SELECT count(*) FROM orders") != 1;  // reads still served

        disk.unlimited_space();  // space freed: the next probe (background thread) replays the queue
        for (int i = 0; i < 2000 && !db.health().available; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds{5});
        const auto n = db.query_one<int>("SELECT count(*) FROM orders").value_or(0);
        std::printf("available again: %d orders in the database\n", n);
        failures += n != 3;
        const auto page = metrics_page(db);
        failures += !page.ends_with("# EOF\n") || page.find("resilite_operations_total{database=\"orders.db\"}") == std::string::npos;
    }
    {
        StrictDb db(dir / "strict.db");
        db.insert(Order{1, "tea", 2});
        std::printf("cancel: %s\n", cancel_order(db, 1).c_str());
    }
    std::filesystem::remove_all(dir);
    return failures == 0 ? 0 : 1;
}
