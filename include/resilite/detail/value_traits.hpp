#pragma once
// How C++ values are bound to statement parameters and read back from result columns.

#include <resilite/blob.hpp>
#include <resilite/error.hpp>

#include <sqlite3.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace resilite::detail {

template <class T>
struct value_traits;  // specialised below; an unsupported type fails in `bindable`/`readable`

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
concept sqlite_integer = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> &&
                         (sizeof(T) < 8 || std::is_signed_v<T>);

template <class T>
concept bindable = requires(sqlite3_stmt* s, const T& v, bool copy) {
    { value_traits<std::remove_cvref_t<T>>::bind(s, 1, v, copy) } -> std::same_as<int>;
};

template <class T>
concept readable = requires(sqlite3_stmt* s) {
    { value_traits<T>::read(s, 0) } -> std::same_as<T>;
};

[[noreturn]] inline void throw_null_column(sqlite3_stmt* s, int col) {
    sqlite3* db = sqlite3_db_handle(s);
    const char* file = sqlite3_db_filename(db, "main");
    technical_detail d;
    d.operation = "read column";
    d.sql = sqlite3_sql(s);
    d.database_path = file != nullptr ? file : "";
    d.note = fmt::format("column {} ('{}') is NULL; read it as std::optional<T>", col,
                         sqlite3_column_name(s, col));
    throw error{error_class::mismatch, std::move(d)};
}

inline void require_not_null(sqlite3_stmt* s, int col) {
    if (sqlite3_column_type(s, col) == SQLITE_NULL) throw_null_column(s, col);
}

template <>
struct value_traits<bool> {
    static int bind(sqlite3_stmt* s, int i, bool v, bool) { return sqlite3_bind_int(s, i, v ? 1 : 0); }
    static bool read(sqlite3_stmt* s, int c) {
        require_not_null(s, c);
        return sqlite3_column_int64(s, c) != 0;
    }
};

template <sqlite_integer T>
struct value_traits<T> {
    static int bind(sqlite3_stmt* s, int i, T v, bool) {
        return sqlite3_bind_int64(s, i, static_cast<sqlite3_int64>(v));
    }
    static T read(sqlite3_stmt* s, int c) {
        require_not_null(s, c);
        return static_cast<T>(sqlite3_column_int64(s, c));
    }
};

template <std::floating_point T>
struct value_traits<T> {
    static int bind(sqlite3_stmt* s, int i, T v, bool) {
        return sqlite3_bind_double(s, i, static_cast<double>(v));
    }
    static T read(sqlite3_stmt* s, int c) {
        require_not_null(s, c);
        return static_cast<T>(sqlite3_column_double(s, c));
    }
};

inline int bind_text(sqlite3_stmt* s, int i, std::string_view v, bool copy) {
    // data() of an empty view may be null, which SQLite would store as NULL, not ''.
    return sqlite3_bind_text64(s, i, v.data() != nullptr ? v.data() : "", v.size(),
                               copy ? SQLITE_TRANSIENT : SQLITE_STATIC, SQLITE_UTF8);
}

inline std::string_view column_text(sqlite3_stmt* s, int c) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
    const auto n = static_cast<std::size_t>(sqlite3_column_bytes(s, c));
    return p != nullptr ? std::string_view{p, n} : std::string_view{};
}

template <>
struct value_traits<std::string> {
    static int bind(sqlite3_stmt* s, int i, const std::string& v, bool copy) {
        return bind_text(s, i, v, copy);
    }
    static std::string read(sqlite3_stmt* s, int c) {
        require_not_null(s, c);
        return std::string{column_text(s, c)};
    }
};

// Read back as a view: valid only until the statement steps again or is reset.
template <>
struct value_traits<std::string_view> {
    static int bind(sqlite3_stmt* s, int i, std::string_view v, bool copy) {
        return bind_text(s, i, v, copy);
    }
    static std::string_view read(sqlite3_stmt* s, int c) {
        require_not_null(s, c);
        return column_text(s, c);
    }
};

template <>
struct value_traits<const char*> {
    static int bind(sqlite3_stmt* s, int i, const char* v, bool copy) {
        return v == nullptr ? sqlite3_bind_null(s, i) : bind_text(s, i, v, copy);
    }
};

template <std::size_t N>
struct value_traits<char[N]> {
    static int bind(sqlite3_stmt* s, int i, const char (&v)[N], bool copy) {
        return bind_text(s, i, std::string_view{v}, copy);
    }
};

inline int bind_bytes(sqlite3_stmt* s, int i, const void* p, std::size_t n, bool copy) {
    // A null pointer would bind NULL; an empty blob must stay an empty blob.
    static constexpr char empty = 0;
    return sqlite3_bind_blob64(s, i, p != nullptr ? p : &empty, n, copy ? SQLITE_TRANSIENT : SQLITE_STATIC);
}

template <class Byte>
requires(std::same_as<Byte, std::byte> ||
         std::same_as<Byte, std::uint8_t>) struct value_traits<std::vector<Byte>> {
    static int bind(sqlite3_stmt* s, int i, const std::vector<Byte>& v, bool copy) {
        return bind_bytes(s, i, v.data(), v.size(), copy);
    }
    static std::vector<Byte> read(sqlite3_stmt* s, int c) {
        require_not_null(s, c);
        const auto* p = static_cast<const Byte*>(sqlite3_column_blob(s, c));
        const auto n = static_cast<std::size_t>(sqlite3_column_bytes(s, c));
        return p != nullptr ? std::vector<Byte>(p, p + n) : std::vector<Byte>{};
    }
};

template <>
struct value_traits<std::span<const std::byte>> {
    static int bind(sqlite3_stmt* s, int i, std::span<const std::byte> v, bool copy) {
        return bind_bytes(s, i, v.data(), v.size(), copy);
    }
};

template <>
struct value_traits<std::nullptr_t> {
    static int bind(sqlite3_stmt* s, int i, std::nullptr_t, bool) { return sqlite3_bind_null(s, i); }
};

template <class T>
struct value_traits<std::optional<T>> {
    static int bind(sqlite3_stmt* s, int i, const std::optional<T>& v, bool copy) {
        return v ? value_traits<T>::bind(s, i, *v, copy) : sqlite3_bind_null(s, i);
    }
    static std::optional<T> read(sqlite3_stmt* s, int c) {
        if (sqlite3_column_type(s, c) == SQLITE_NULL) return std::nullopt;
        return value_traits<T>::read(s, c);
    }
};

}  // namespace resilite::detail
