#pragma once
// resilite::sqlite::savepoint: a nested transaction. release() keeps its changes (they become
// part of the enclosing transaction); leaving without release() undoes them with
// ROLLBACK TO followed by RELEASE, which also pops the savepoint off SQLite's stack.

#include <resilite/detail/format.hpp>
#include <resilite/sqlite/connection.hpp>

#include <fmt/format.h>

#include <string>
#include <utility>

namespace resilite::sqlite {

class savepoint {
public:
    // `name` must be unique among open savepoints; it is quoted as an identifier.
    savepoint(connection& c, const std::string& name)
        : conn_(&c),
          name_(quote(name)),
          undo_sql_(resilite::detail::format("ROLLBACK TO {0}; RELEASE {0}", name_)) {
        c.exec_script(resilite::detail::format("SAVEPOINT {}", name_));
        active_ = true;
    }
    savepoint(const savepoint&) = delete;
    savepoint& operator=(const savepoint&) = delete;
    savepoint(savepoint&& o) noexcept
        : conn_(o.conn_),
          name_(std::move(o.name_)),
          undo_sql_(std::move(o.undo_sql_)),
          active_(std::exchange(o.active_, false)) {}
    savepoint& operator=(savepoint&&) = delete;

    ~savepoint() { abandon(); }

    // Undoes the savepoint if still open, without throwing (destructors use it).
    void abandon() noexcept {
        if (!active_) return;
        active_ = false;
        // Text prepared at construction: nothing here allocates or throws.
        sqlite3_exec(conn_->native_handle(), undo_sql_.c_str(), nullptr, nullptr, nullptr);
    }

    void release() {
        conn_->exec_script(resilite::detail::format("RELEASE {}", name_));
        active_ = false;
    }

    // Still open when it fails (the destructor's abandon() tries again).
    void rollback() {
        if (!active_) return;
        conn_->exec_script(undo_sql_);
        active_ = false;
    }

    [[nodiscard]] bool active() const noexcept { return active_; }

private:
    static std::string quote(const std::string& id) {
        std::string out = "\"";
        for (char ch : id) {
            out += ch;
            if (ch == '"') out += '"';
        }
        out += '"';
        return out;
    }

    connection* conn_;
    std::string name_;
    std::string undo_sql_;
    bool active_ = false;
};

}  // namespace resilite::sqlite
