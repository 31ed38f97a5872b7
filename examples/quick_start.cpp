// Quick start: the region below is README.md's first snippet, character for character
// (tests/docs/check_snippets.cpp compares them), built and run by the test suite.
// snippet-begin: quick_start
#include <resilite/resilite.hpp>

#include <iostream>

int main() {
    resilite::Database<> db{"app.db"};  // WAL + synchronous=FULL, problems printed to stderr
    db.exec_script("CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");

    db.transaction([](auto& tx) {
        tx.exec("INSERT INTO users(name) VALUES(?)", "Ann");
        tx.exec("INSERT INTO users(name) VALUES(?)", std::string{"Bo"});
    });  // committed here; an exception inside would have rolled both back

    for (const auto& [id, name] : db.query<std::int64_t, std::string>("SELECT id, name FROM users")) {
        std::cout << id << ' ' << name << '\n';
    }

    try {
        db.exec("INSERT INTO users(name) VALUES(NULL)");
    } catch (const resilite::error& e) {
        std::cout << e.user_message() << '\n';  // plain words: "The change was refused because ..."
        std::clog << e.what() << '\n';          // for logs: class, SQLITE_CONSTRAINT_NOTNULL, SQL, path, ...
    }
}
// snippet-end: quick_start
