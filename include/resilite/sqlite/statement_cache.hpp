#pragma once
// resilite::sqlite::statement_cache: a bounded LRU of prepared statements keyed by SQL text.

#include <resilite/sqlite/statement.hpp>

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace resilite::sqlite {

class statement_cache {
    struct entry {
        std::string sql;
        statement stmt;
        bool in_use = false;
    };
    using list_type = std::list<entry>;

public:
    // A statement on loan. Returning it resets it; bindings that point at the caller's memory
    // stay until the next user binds (the connection's own calls bind every parameter, counted;
    // connection::prepare_cached clears them first), which saves a clear on every statement;
    // values SQLite copied (a blob, a token) are cleared at once. When the cached copy is
    // already lent (re-entrant use of the same SQL, e.g. a query inside a loop over the same
    // query), a private statement is prepared instead.
    class lease {
    public:
        lease(lease&& o) noexcept
            : owner_(std::exchange(o.owner_, nullptr)), it_(o.it_), own_(std::move(o.own_)) {}
        lease& operator=(lease&&) = delete;
        lease(const lease&) = delete;
        ~lease() {
            if (owner_ != nullptr) owner_->give_back(it_);
        }
        [[nodiscard]] statement& operator*() noexcept { return owner_ ? it_->stmt : own_; }
        [[nodiscard]] statement* operator->() noexcept { return &**this; }

    private:
        friend class statement_cache;
        lease(statement_cache* owner, list_type::iterator it) : owner_(owner), it_(it) {}
        explicit lease(statement own) : own_(std::move(own)) {}

        statement_cache* owner_ = nullptr;
        list_type::iterator it_{};
        statement own_;
    };

    explicit statement_cache(std::size_t capacity = 64) : capacity_(capacity == 0 ? 1 : capacity) {}
    statement_cache(const statement_cache&) = delete;
    statement_cache& operator=(const statement_cache&) = delete;

private:
    friend class connection;  // the only borrower: it binds every parameter, or clears them
    [[nodiscard]] lease acquire(sqlite3* db, std::string_view sql) {
        // The statement used last, asked again (a loop, a polling read): no hashing.
        if (!entries_.empty() && !entries_.front().in_use && entries_.front().sql == sql) {
            ++hits_;
            entries_.front().in_use = true;
            return lease{this, entries_.begin()};
        }
        if (auto found = index_.find(sql); found != index_.end()) {
            auto it = found->second;
            if (!it->in_use) {
                ++hits_;
                it->in_use = true;
                entries_.splice(entries_.begin(), entries_, it);  // most recently used first
                return lease{this, it};
            }
            ++misses_;
            return lease{statement{db, sql}};
        }
        ++misses_;
        statement fresh{db, sql, true};
        entries_.push_front(entry{std::string{sql}, std::move(fresh), true});
        index_.emplace(std::string_view{entries_.front().sql}, entries_.begin());
        evict();
        return lease{this, entries_.begin()};
    }

public:
    void set_capacity(std::size_t capacity) {
        capacity_ = capacity == 0 ? 1 : capacity;
        evict();
    }

    // Finalizes every statement not on loan (before closing the connection).
    void clear() noexcept {
        for (auto it = entries_.begin(); it != entries_.end();) {
            if (it->in_use) {
                ++it;
                continue;
            }
            index_.erase(std::string_view{it->sql});
            it = entries_.erase(it);
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::uint64_t hits() const noexcept { return hits_; }
    [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }

private:
    void give_back(list_type::iterator it) noexcept {
        it->stmt.reset();
        if (it->stmt.holds_copies()) it->stmt.clear_bindings();
        it->in_use = false;
        evict();
    }

    void evict() noexcept {
        auto it = entries_.end();
        while (entries_.size() > capacity_ && it != entries_.begin()) {
            --it;
            if (it->in_use) continue;
            index_.erase(std::string_view{it->sql});
            it = entries_.erase(it);
        }
    }

    std::size_t capacity_;
    list_type entries_;
    std::unordered_map<std::string_view, list_type::iterator> index_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
};

}  // namespace resilite::sqlite
