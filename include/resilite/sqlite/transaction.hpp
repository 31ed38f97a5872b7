#pragma once
// resilite::sqlite::transaction: BEGIN in the constructor, ROLLBACK in the destructor unless
// committed. The plain SQLite-level building block under resilite::basic_transaction.

#include <resilite/core/transaction_mode.hpp>
#include <resilite/sqlite/connection.hpp>

#include <utility>

namespace resilite::sqlite {

class transaction {
public:
    explicit transaction(connection& c, transaction_mode mode = transaction_mode::immediate) : conn_(&c) {
        if (c.in_transaction()) {
            throw detail::library_failure(
                error_class::misuse, "begin",
                "a transaction is already open on this connection; use a savepoint to nest", c.path());
        }
        c.exec(begin_statement(mode));
        active_ = true;
    }
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;
    transaction(transaction&& o) noexcept : conn_(o.conn_), active_(std::exchange(o.active_, false)) {}
    transaction& operator=(transaction&&) = delete;

    ~transaction() { abandon(); }

    // On BUSY the transaction stays open and commit() may be called again. On any other
    // failure SQLite may already have rolled back; the destructor finishes the job.
    void commit() {
        try {
            conn_->exec("COMMIT");
        } catch (const error& e) {
            // A WAL write or sync that fails leaves the transaction's frames in the WAL: SQLite
            // reports the COMMIT failed, yet its recovery after a crash brings it back. "Failed"
            // would claim more than is known.
            if ((e.technical().extended_code & 0xff) != SQLITE_IOERR || !e.technical().note.empty()) throw;
            auto d = e.technical();
            d.outcome_unknown = true;
            d.note = "the COMMIT's outcome is unknown: SQLite reports it failed, but its changes may be in the WAL, "
                     "and after a crash SQLite's recovery can bring the transaction back; it was not tried again (a "
                     "retry could apply it twice)";
            throw error{e.klass(), std::move(d)};
        }
        active_ = false;
    }

    void rollback() {
        if (!active_) return;
        active_ = false;
        if (conn_->in_transaction()) conn_->exec("ROLLBACK");
    }

    [[nodiscard]] bool active() const noexcept { return active_; }
    // SQLite ended the transaction by itself (a statement's ROLLBACK, an error it rolls back
    // for): nothing is left to commit or roll back.
    void ended_by_sqlite() noexcept { active_ = false; }
    [[nodiscard]] connection& conn() const noexcept { return *conn_; }

    // Rolls back if still open, without throwing (destructors use it).
    void abandon() noexcept {
        if (!active_) return;
        active_ = false;
        // Direct call: no allocation, no exception. A failed ROLLBACK leaves SQLite to roll back
        // the journal at the next access, which is safe.
        if (conn_->in_transaction())
            sqlite3_exec(conn_->native_handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }

private:
    connection* conn_;
    bool active_ = false;
};

}  // namespace resilite::sqlite
