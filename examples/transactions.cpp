// Transactions, explicit transactions, savepoints and a custom observer.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

int main() {
    const auto path = std::filesystem::temp_directory_path() / "resilite-transactions.db";
    for (const char* suffix : {"", "-wal", "-shm", "-resilite"})
        std::filesystem::remove(path.string() + suffix);

    // snippet-begin: policies
    using Db = resilite::Database<resilite::wal_durability<resilite::synchronous::extra>,
                                  resilite::callback_observer>;
    Db::options options;
    options.observer.callback = [](const resilite::event& e) {  // name, result, duration, rows, ...
        std::printf("event %-12.*s %-7.*s rows=%lld\n", static_cast<int>(e.name.size()), e.name.data(),
                    static_cast<int>(to_string(e.result).size()), to_string(e.result).data(),
                    static_cast<long long>(e.rows));
    };
    Db db{path, options};
    // snippet-end: policies
    db.exec_script(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))");
    db.exec("INSERT INTO accounts VALUES(1, 100), (2, 0)");

    // A transfer that would overdraw: the CHECK fails, both updates are rolled back.
    try {
        db.transaction([](auto& tx) {
            tx.exec("UPDATE accounts SET balance = balance + 150 WHERE id = 2");
            tx.exec("UPDATE accounts SET balance = balance - 150 WHERE id = 1");
        });
    } catch (const resilite::error& e) {
        std::printf("transfer refused: %s\n", std::string{e.user_message()}.c_str());
    }

    // An explicit transaction with a savepoint: the bonus is undone, the transfer kept.
    {
        auto tx = db.begin();
        tx.exec("UPDATE accounts SET balance = balance - 40 WHERE id = 1");
        tx.exec("UPDATE accounts SET balance = balance + 40 WHERE id = 2");
        try {
            tx.savepoint([](auto& sp) {
                sp.exec("UPDATE accounts SET balance = balance + 1000 WHERE id = 2");
                throw std::runtime_error("bonus not approved");
            });
        } catch (const std::runtime_error&) {
        }
        tx.commit();
    }

    for (const auto& [id, balance] : db.query<int, int>("SELECT id, balance FROM accounts ORDER BY id")) {
        std::printf("account %d: %d\n", id, balance);
    }
    const auto total = db.query_one<int>("SELECT sum(balance) FROM accounts");
    return total == 100 ? 0 : 1;
}
