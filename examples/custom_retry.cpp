// A retry policy of your own: derive from a library policy and replace one of its static hooks.
// This one never retries an I/O error (the application has its own failover for those), and
// waits a linear, predictable delay before each retry instead of a random one.
#include <resilite/resilite.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

// snippet-begin: policy
struct linear_no_io_retry : resilite::exponential_backoff<10 /*base ms*/, 100 /*cap ms*/> {
    // Which failures are retried: as the library decides, except I/O errors.
    static resilite::retry_scope scope_of(const resilite::error& e) noexcept {
        if (e.klass() == resilite::error_class::io) return resilite::retry_scope::none;
        return resilite::default_retry_scope(e);
    }
    // The delay before the n-th retry: base, 2 x base, 3 x base, ... up to the cap.
    static std::chrono::nanoseconds delay(const resilite::retry_settings& s, int retry,
                                          std::chrono::nanoseconds /*previous*/, std::mt19937_64& /*rng*/) {
        return std::min<std::chrono::nanoseconds>(s.base * retry, s.cap);
    }
};

using Db = resilite::Database<linear_no_io_retry, resilite::callback_observer>;
// snippet-end: policy

int main() {
    const auto dir = std::filesystem::temp_directory_path() / "resilite-custom-retry";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);

    Db::options options;
    int retries = 0;
    options.observer.callback = [&](const resilite::event& e) {
        if (e.name != "retry") return;
        ++retries;
        std::printf("%.*s\n", static_cast<int>(e.detail.size()), e.detail.data());
    };
    // Stand-ins for trouble: the first two attempts of an exec find the database busy (another
    // process writing); later, with `disk_trouble`, every exec meets an I/O error.
    bool disk_trouble = false;
    options.inject_failure = [&](std::string_view operation, int attempt) {
        if (operation != "exec") return SQLITE_OK;
        if (disk_trouble) return SQLITE_IOERR;
        return attempt <= 2 ? SQLITE_BUSY : SQLITE_OK;
    };
    Db db{dir / "app.db", options};
    db.exec_script("CREATE TABLE t(x)");
    db.exec("INSERT INTO t VALUES (1)");  // busy twice, then done: after 10 ms and 20 ms
    if (retries != 2) return 1;

    disk_trouble = true;
    int attempts = 0;
    try {
        db.exec("INSERT INTO t VALUES (2)");
    } catch (const resilite::error& e) {
        attempts = e.technical().attempt;
        std::printf("not retried: %s after %d attempt\n", std::string{resilite::name(e.klass())}.c_str(), attempts);
    }
    std::filesystem::remove_all(dir);
    return attempts == 1 ? 0 : 1;
}
