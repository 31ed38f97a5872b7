#pragma once
// resilite::sqlite::rows<T...>: a single-pass range over the result of a query, each row read
// as T (one column) or std::tuple<T...>.

#include <resilite/detail/format.hpp>
#include <resilite/sqlite/statement_cache.hpp>

#include <cstddef>
#include <iterator>
#include <optional>
#include <string_view>
#include <type_traits>
#include <tuple>
#include <utility>

namespace resilite::sqlite {

template <class... T>
using row_t =
    std::conditional_t<sizeof...(T) == 1, std::tuple_element_t<0, std::tuple<T...>>, std::tuple<T...>>;

}  // namespace resilite::sqlite

// Results that outlive the statement must own their text: a view would dangle.
#define RESILITE_NO_VIEWS_MESSAGE \
    "std::string_view would dangle once the query returns; read std::string instead"

namespace resilite::detail {
template <class... T>
inline constexpr bool owning_row = !(std::is_same_v<T, std::string_view> || ...);

template <class... T, std::size_t... I>
sqlite::row_t<T...> read_row(sqlite::statement& s, std::index_sequence<I...>) {
    if constexpr (sizeof...(T) == 1) {
        return s.template column<T...>(0);
    } else {
        return sqlite::row_t<T...>{s.template column<T>(static_cast<int>(I))...};
    }
}

inline void check_columns(sqlite::statement& s, std::size_t wanted) {
    if (static_cast<std::size_t>(s.column_count()) != wanted) {
        technical_detail d;
        d.operation = "query";
        d.sql = s.sql();
        d.note = resilite::detail::format("the query returns {} columns but {} types were asked for",
                                          s.column_count(), wanted);
        throw error{error_class::mismatch, std::move(d)};
    }
}
}  // namespace resilite::detail

namespace resilite::sqlite {

template <class... T>
[[nodiscard]] row_t<T...> read_row(statement& s) {
    return detail::read_row<T...>(s, std::index_sequence_for<T...>{});
}

template <class... T>
class rows {
public:
    using value_type = row_t<T...>;

    explicit rows(statement_cache::lease stmt) : stmt_(std::move(stmt)) {
        detail::check_columns(*stmt_, sizeof...(T));
    }

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = row_t<T...>;
        using difference_type = std::ptrdiff_t;
        using pointer = const value_type*;
        using reference = const value_type&;

        iterator() = default;
        explicit iterator(rows* r) : rows_(r) { advance(); }

        reference operator*() const { return *current_; }
        pointer operator->() const { return &*current_; }
        iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        friend bool operator==(const iterator& a, std::default_sentinel_t) noexcept {
            return a.rows_ == nullptr;
        }

    private:
        void advance() {
            if ((*rows_->stmt_).step()) {
                current_.emplace(read_row<T...>(*rows_->stmt_));
                ++rows_->count_;
            } else {
                current_.reset();
                rows_ = nullptr;
            }
        }
        rows* rows_ = nullptr;
        std::optional<value_type> current_;
    };

    // Single pass: begin() starts stepping; call it once.
    [[nodiscard]] iterator begin() { return iterator{this}; }
    [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }
    [[nodiscard]] std::size_t rows_read() const noexcept { return count_; }

private:
    statement_cache::lease stmt_;
    std::size_t count_ = 0;
};

}  // namespace resilite::sqlite
