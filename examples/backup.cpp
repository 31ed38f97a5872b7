// Backups and health: taken through SQLite, checked, kept by retention, restorable.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

// snippet-begin: policy
using Db = resilite::Database<
    resilite::backup<resilite::online_backup<>, resilite::every_minutes<60>, resilite::keep_last<24>>>;
// snippet-end: policy

int main() {
    const auto dir = std::filesystem::temp_directory_path() / "resilite-backup-example";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const auto path = dir / "app.db";

    Db::options options;
    options.settings = Db::default_settings();
    // Ship each finished backup off the machine (here: a local directory standing in for a remote).
    std::filesystem::create_directories(dir / "offsite");
    options.settings->backup.sink = "cp {path} " + (dir / "offsite").string() + "/{name}";

    resilite::backup_result first;
    {
        Db db{path, options};
        db.exec_script("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL)");
        db.exec("INSERT INTO notes(text) VALUES(?)", "keep me");
        first = db.backup_now();  // also taken every hour by the background thread
        std::printf("backup: %s (%llu bytes, %lld pages, check %s)\n", first.path.filename().c_str(),
                    static_cast<unsigned long long>(first.bytes), static_cast<long long>(first.pages),
                    std::string{resilite::to_string(first.check.result)}.c_str());
        db.exec("DELETE FROM notes");  // a mistake
        std::printf("health: %s\n", db.health().to_json().c_str());
    }
    // Put the backup back (the database must be closed: restore refuses an open target).
    resilite::restore(first.path, path);
    Db db{path, options};
    const auto text = db.query_one<std::string>("SELECT text FROM notes");
    std::printf("restored: %s\n", text.value_or("(nothing)").c_str());
    return text == "keep me" ? 0 : 1;
}
