// Quick start: the snippet in README.md.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

int main() {
    const auto path = std::filesystem::temp_directory_path() / "resilite-quick-start.db";

    // Default policies: WAL + synchronous=FULL, checkpoints in the background, failures and
    // warnings printed to stderr.
    resilite::Database<> db{path};
    db.exec_script("CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");

    db.transaction([](auto& tx) {
        tx.exec("INSERT INTO users(name) VALUES(?)", "Ann");
        tx.exec("INSERT INTO users(name) VALUES(?)", std::string{"Bo"});
    });  // committed here; an exception inside would have rolled both back

    for (const auto& [id, name] : db.query<std::int64_t, std::string>("SELECT id, name FROM users")) {
        std::printf("%lld %s\n", static_cast<long long>(id), name.c_str());
    }

    try {
        db.exec("INSERT INTO users(name) VALUES(NULL)");
    } catch (const resilite::error& e) {
        std::printf("shown to the user: %s\n", std::string{e.user_message()}.c_str());
        std::printf("class: %s, code: %s\n", std::string{resilite::name(e.klass())}.c_str(),
                    e.technical().code_name.c_str());
    }
    return 0;
}
