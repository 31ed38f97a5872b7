// Conan's test package: the packaged headers compile, link and work.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    resilite::Database<resilite::null_observer> db{argv[1]};
    db.exec_script("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    db.transaction([](auto& tx) { tx.exec("INSERT INTO t(v) VALUES(?)", std::string{"packaged"}); });
    const auto v = db.query_one<std::string>("SELECT v FROM t ORDER BY id DESC LIMIT 1");
    if (!v || *v != "packaged") return 1;
    std::printf("resilite %d.%d.%d works\n", resilite::version.major, resilite::version.minor, resilite::version.patch);
    return 0;
}
