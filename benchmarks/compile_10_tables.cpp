// Compile-time benchmark: a translation unit declaring a 10-table Database and using typed rows
// on every table (DESIGN.md target: within 5 s of user time at -O2). Measured, with the other
// compile_*.cpp, by benchmarks/compile_time.sh.
#include <resilite/resilite.hpp>

namespace shop {
struct customer {
    BOOST_HANA_DEFINE_STRUCT(customer, (std::int64_t, id), (std::string, name),
                             (std::optional<std::string>, email));
};
struct product {
    BOOST_HANA_DEFINE_STRUCT(product, (std::int64_t, id), (std::string, title), (double, price));
};
struct order {
    BOOST_HANA_DEFINE_STRUCT(order, (std::int64_t, id), (std::int64_t, customer_id),
                             (std::string, placed_at));
};
struct order_line {
    BOOST_HANA_DEFINE_STRUCT(order_line, (std::int64_t, order_id), (std::int64_t, product_id),
                             (std::int64_t, qty));
};
struct invoice {
    BOOST_HANA_DEFINE_STRUCT(invoice, (std::int64_t, id), (std::int64_t, order_id), (std::int64_t, cents));
};
struct payment {
    BOOST_HANA_DEFINE_STRUCT(payment, (std::int64_t, id), (std::int64_t, invoice_id), (std::string, method));
};
struct shipment {
    BOOST_HANA_DEFINE_STRUCT(shipment, (std::int64_t, id), (std::int64_t, order_id),
                             (std::optional<std::string>, tracking));
};
struct review {
    BOOST_HANA_DEFINE_STRUCT(review, (std::int64_t, id), (std::int64_t, product_id), (std::int64_t, stars),
                             (std::string, text));
};
struct coupon {
    BOOST_HANA_DEFINE_STRUCT(coupon, (std::string, code), (std::int64_t, percent), (bool, active));
};
struct audit {
    BOOST_HANA_DEFINE_STRUCT(audit, (std::int64_t, id), (std::string, what), (resilite::blob, payload));
};

using Db = resilite::Database<
    resilite::schema<
        resilite::table<"customers", customer, resilite::primary_key<"id">, resilite::unique<"email">>,
        resilite::table<"products", product, resilite::primary_key<"id">,
                        resilite::index<"products_by_title", "title">>,
        resilite::table<"orders", order, resilite::primary_key<"id">,
                        resilite::index<"orders_by_customer", "customer_id">>,
        resilite::table<"order_lines", order_line, resilite::primary_key<"order_id", "product_id">>,
        resilite::table<"invoices", invoice, resilite::primary_key<"id">>,
        resilite::table<"payments", payment, resilite::primary_key<"id">,
                        resilite::default_value<"method", "'card'">>,
        resilite::table<"shipments", shipment, resilite::primary_key<"id">>,
        resilite::table<"reviews", review, resilite::primary_key<"id">,
                        resilite::partial_index<"good_reviews", "stars >= 4", "product_id">>,
        resilite::table<"coupons", coupon, resilite::primary_key<"code">>,
        resilite::table<"audit", audit, resilite::primary_key<"id">, resilite::secret<"payload">>>,
    resilite::exponential_backoff<>, resilite::callback_observer>;

// Every table used: insert, get, select, erase.
template <class Row, class Key>
std::size_t touch(Db& db, const Row& row, const Key& key) {
    db.insert(row);
    auto found = db.get<Row>(key);
    auto all = db.select<Row>("LIMIT 10");
    db.erase<Row>(key);
    return all.size() + (found ? 1 : 0);
}

std::size_t exercise(Db& db) {
    std::size_t n = 0;
    n += touch(db, customer{1, "Ann", {}}, 1);
    n += touch(db, product{1, "Pen", 1.5}, 1);
    n += touch(db, order{1, 1, "2026-11-22"}, 1);
    n += db.insert(order_line{1, 1, 2}) > 0 ? 1 : 0;
    n += touch(db, invoice{1, 1, 300}, 1);
    n += touch(db, payment{1, 1, "card"}, 1);
    n += touch(db, shipment{1, 1, {}}, 1);
    n += touch(db, review{1, 1, 5, "good"}, 1);
    n += touch(db, coupon{"X", 10, true}, std::string{"X"});
    n += touch(db, audit{1, "login", {}}, 1);
    return n;
}
}  // namespace shop
