// Retries: a policy with its own limits, a transaction that knows it may be replayed, and what
// the caller sees when the database stays busy past the deadline.
#include <resilite/resilite.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

// snippet-begin: policy
using Db = resilite::Database<resilite::exponential_backoff<2 /*base ms*/, 100 /*cap ms*/, 1000 /*attempts*/,
                                                            resilite::jitter::full, 300 /*deadline ms*/>,
                              resilite::callback_observer>;
// snippet-end: policy

int main() {
    const auto path = std::filesystem::temp_directory_path() / "resilite-retry.db";
    for (const char* suffix : {"", "-wal", "-shm", "-resilite"})
        std::filesystem::remove(path.string() + suffix);

    Db::options options;
    // SQLite's own wait inside each attempt: short here, so that the attempts show.
    options.settings = Db::default_settings();
    options.settings->busy_timeout = std::chrono::milliseconds{20};
    options.observer.callback = [](const resilite::event& e) {
        if (e.name == "retry")
            std::printf("retry: %.*s\n", static_cast<int>(e.detail.size()), e.detail.data());
    };
    Db db{path, options};
    db.exec_script("CREATE TABLE jobs(id INTEGER PRIMARY KEY, state TEXT NOT NULL)");

    // f may run more than once when the database is busy: keep outside effects idempotent.
    db.transaction([](auto& tx) {
        if (tx.attempt() > 1) std::printf("replaying the transaction, attempt %d\n", tx.attempt());
        tx.exec("INSERT INTO jobs(state) VALUES('queued')");
    });

    // Another connection holds the write lock longer than our 300 ms deadline.
    resilite::sqlite::connection other{path};
    other.exec("BEGIN IMMEDIATE");
    try {
        db.exec("UPDATE jobs SET state = 'running'");
    } catch (const resilite::error& e) {
        std::printf("gave up: %s\n", std::string{e.user_message()}.c_str());
        std::printf("class %s after %d attempts; last cause: %s\n",
                    std::string{resilite::name(e.klass())}.c_str(), e.technical().attempt,
                    e.cause() ? std::string{resilite::name(e.cause()->klass())}.c_str() : "-");
    }
    other.exec("ROLLBACK");

    // snippet-begin: reconfigure
    resilite::settings s = db.current_settings();    // starts from the policies' parameters
    s.sync = resilite::synchronous::extra;           // PRAGMA synchronous
    s.busy_timeout = std::chrono::milliseconds{50};  // SQLite's busy wait inside each attempt
    s.retry.deadline = std::chrono::seconds{2};      // all attempts of one operation together
    s.statement_cache_capacity = 128;
    db.reconfigure(s);  // validated whole, then in force from the next operation

    s.checkpoint_interval = std::chrono::seconds{0};  // invalid
    try {
        db.reconfigure(s);
    } catch (const resilite::error& e) {  // class invalid_setting; the previous settings remain
        std::printf("refused: %s\n", e.what());
    }
    // snippet-end: reconfigure
    if (db.current_settings().retry.deadline != std::chrono::seconds{2}) return 1;
    return db.query_one<std::string>("SELECT state FROM jobs") == "queued" ? 0 : 1;
}
