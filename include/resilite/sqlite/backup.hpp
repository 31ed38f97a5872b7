#pragma once
// resilite::sqlite::backup: RAII over sqlite3_backup_*, copying the "main" database of one
// connection into another a number of pages at a time. Finished (and released) on destruction.

#include <resilite/core/error.hpp>
#include <resilite/sqlite/connection.hpp>

#include <sqlite3.h>

#include <utility>

namespace resilite::sqlite {

class backup {
public:
    backup(connection& destination, connection& source)
        : dst_(&destination), b_(sqlite3_backup_init(destination.native_handle(), "main", source.native_handle(), "main")) {
        if (b_ == nullptr) {
            throw detail::sqlite_failure(dst_->native_handle(), sqlite3_extended_errcode(dst_->native_handle()),
                                         "backup", {}, source.path());
        }
    }
    backup(const backup&) = delete;
    backup& operator=(const backup&) = delete;
    ~backup() {
        if (b_ != nullptr) sqlite3_backup_finish(b_);
    }

    // SQLITE_OK (more to copy), SQLITE_DONE, SQLITE_BUSY / SQLITE_LOCKED (try again), or an error.
    [[nodiscard]] int step(int pages) noexcept { return sqlite3_backup_step(b_, pages); }
    [[nodiscard]] int remaining() const noexcept { return sqlite3_backup_remaining(b_); }
    [[nodiscard]] int pagecount() const noexcept { return sqlite3_backup_pagecount(b_); }
    // Releases the backup; returns SQLite's verdict on the whole copy.
    [[nodiscard]] int finish() noexcept { return sqlite3_backup_finish(std::exchange(b_, nullptr)); }

private:
    connection* dst_;
    sqlite3_backup* b_;
};

}  // namespace resilite::sqlite
