#pragma once
// How C++ values are bound to statement parameters and read back from result columns.

#include <resilite/core/blob.hpp>
#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>

#include <sqlite3.h>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
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

// Reads are exact or fail (docs/errors.md, "Reading values"): a value is returned only when the
// C++ type holds it exactly, because a silently converted value ('abc' read as 0, 2.75 as 2) is
// wrong data that nobody notices. Each read asks sqlite3_column_type once and passes the answer
// on (read_as), so the check costs one call per value.

[[nodiscard]] constexpr std::string_view storage_class_name(int type) noexcept {
    switch (type) {
        case SQLITE_INTEGER:
            return "INTEGER";
        case SQLITE_FLOAT:
            return "REAL";
        case SQLITE_TEXT:
            return "TEXT";
        case SQLITE_BLOB:
            return "BLOB";
        case SQLITE_NULL:
            return "NULL";
        default:
            return "?";
    }
}

// The C++ type as a reader would write it; integers by width, since int and long are aliases.
template <class T>
[[nodiscard]] constexpr std::string_view cpp_type_name() noexcept {
    if constexpr (std::same_as<T, bool>) {
        return "bool";
    } else if constexpr (std::integral<T>) {
        constexpr bool s = std::is_signed_v<T>;
        if constexpr (sizeof(T) == 1) return s ? "std::int8_t" : "std::uint8_t";
        else if constexpr (sizeof(T) == 2) return s ? "std::int16_t" : "std::uint16_t";
        else if constexpr (sizeof(T) == 4) return s ? "std::int32_t" : "std::uint32_t";
        else return s ? "std::int64_t" : "std::uint64_t";
    } else if constexpr (std::same_as<T, float>) {
        return "float";
    } else if constexpr (std::same_as<T, double>) {
        return "double";
    } else if constexpr (std::same_as<T, long double>) {
        return "long double";
    } else if constexpr (std::same_as<T, std::string>) {
        return "std::string";
    } else if constexpr (std::same_as<T, std::string_view>) {
        return "std::string_view";
    } else if constexpr (std::same_as<T, blob>) {
        return "resilite::blob";
    } else if constexpr (std::same_as<T, std::vector<std::uint8_t>>) {
        return "std::vector<std::uint8_t>";
    } else {
        return "?";
    }
}

// The record of a failure at a statement: its operation, its SQL and its database.
[[nodiscard]] inline technical_detail statement_detail(sqlite3_stmt* s, std::string_view operation) {
    const char* file = sqlite3_db_filename(sqlite3_db_handle(s), "main");
    technical_detail d;
    d.operation = operation;
    d.sql = sqlite3_sql(s);
    d.database_path = file != nullptr ? file : "";
    return d;
}

// Cold path: builds the mismatch error for column `col` holding storage class `type`.
[[noreturn]] inline void throw_unreadable(sqlite3_stmt* s, int col, int type, std::string_view cpp,
                                          std::string_view hint) {
    const char* column = sqlite3_column_name(s, col);
    auto d = statement_detail(s, "read column");
    // Never the value itself: it may be a secret column, and the note goes to logs.
    if (type == SQLITE_NULL) {
        d.note = resilite::detail::format(
            "column {} ('{}') is NULL, which {} cannot hold; read it as std::optional<T>", col,
            column != nullptr ? column : "?", cpp);
    } else {
        d.note =
            resilite::detail::format("column {} ('{}') holds {}, which cannot be read exactly as {}: {}", col,
                                     column != nullptr ? column : "?", storage_class_name(type), cpp, hint);
    }
    throw error{error_class::mismatch, std::move(d)};
}

// Cold path: a NaN given for parameter `index`. SQLite stores NaN as NULL: a number written
// would come back as nothing (or fail a NOT NULL rule and be reported as that).
[[noreturn]] inline void throw_nan(sqlite3_stmt* s, int index) {
    const char* parameter = sqlite3_bind_parameter_name(s, index);
    auto d = statement_detail(s, "bind");
    d.note = resilite::detail::format(
        "parameter {}{}{} is NaN, which SQLite stores as NULL: it would not come back; store "
        "std::nullopt for no value",
        index, parameter != nullptr ? " " : "", parameter != nullptr ? parameter : "");
    throw error{error_class::mismatch, std::move(d)};
}

// The hint for a storage class a type never accepts.
[[noreturn]] inline void throw_wrong_class(sqlite3_stmt* s, int col, int type, std::string_view cpp) {
    std::string_view hint = "read it as the type it holds";
    switch (type) {
        case SQLITE_INTEGER:
            hint = "read it as an integer";
            break;
        case SQLITE_FLOAT:
            hint = "read it as double";
            break;
        case SQLITE_TEXT:
            hint = "read it as std::string";
            break;
        case SQLITE_BLOB:
            hint = "read it as resilite::blob";
            break;
        default:
            break;
    }
    throw_unreadable(s, col, type, cpp, hint);
}

// A REAL that is a whole number within T's range (SQLite may hand back 3.0 for an integer).
template <class T>
[[nodiscard]] bool integral_real(double d, T& out) noexcept {
    // int64's range is [-2^63, 2^63); both bounds are exact doubles. NaN fails the test too.
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return false;
    const auto v = static_cast<std::int64_t>(d);
    if (static_cast<double>(v) != d || !std::in_range<T>(v)) return false;
    out = static_cast<T>(v);
    return true;
}

template <>
struct value_traits<bool> {
    static constexpr std::string_view name = "bool";
    static int bind(sqlite3_stmt* s, int i, bool v, bool) { return sqlite3_bind_int(s, i, v ? 1 : 0); }
    static bool read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    // 0 and 1 only: 2 read as true would hide a column that is not a flag.
    static bool read_as(sqlite3_stmt* s, int c, int type) {
        if (type == SQLITE_INTEGER) {
            const auto v = sqlite3_column_int64(s, c);
            if (v == 0 || v == 1) return v == 1;
            throw_unreadable(s, c, type, name, "only 0 and 1 are booleans; read it as an integer");
        }
        if (type == SQLITE_FLOAT) {
            const double d = sqlite3_column_double(s, c);
            if (d == 0.0 || d == 1.0) return d == 1.0;
            throw_unreadable(s, c, type, name, "only 0 and 1 are booleans; read it as double");
        }
        throw_wrong_class(s, c, type, name);
    }
};

template <sqlite_integer T>
struct value_traits<T> {
    static constexpr std::string_view name = cpp_type_name<T>();
    static int bind(sqlite3_stmt* s, int i, T v, bool) {
        return sqlite3_bind_int64(s, i, static_cast<sqlite3_int64>(v));
    }
    static T read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    static T read_as(sqlite3_stmt* s, int c, int type) {
        if (type == SQLITE_INTEGER) [[likely]] {
            const std::int64_t v = sqlite3_column_int64(s, c);
            if (std::in_range<T>(v)) [[likely]]
                return static_cast<T>(v);
            throw_unreadable(s, c, type, name, "the value is out of its range; read a wider integer");
        }
        if (type == SQLITE_FLOAT) {
            T out{};
            if (integral_real(sqlite3_column_double(s, c), out)) return out;
            throw_unreadable(s, c, type, name, "the value is not a whole number in range; read it as double");
        }
        throw_wrong_class(s, c, type, name);
    }
};

template <std::floating_point T>
struct value_traits<T> {
    static constexpr std::string_view name = cpp_type_name<T>();
    static int bind(sqlite3_stmt* s, int i, T v, bool) {
        if (std::isnan(v)) [[unlikely]] throw_nan(s, i);
        return sqlite3_bind_double(s, i, static_cast<double>(v));
    }
    static T read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    static T read_as(sqlite3_stmt* s, int c, int type) {
        if (type == SQLITE_FLOAT) [[likely]] {
            const double d = sqlite3_column_double(s, c);
            if constexpr (sizeof(T) >= sizeof(double)) {
                return static_cast<T>(d);
            } else {
                // Converting a double beyond T's range is undefined: check the range first.
                if (std::isinf(d) || (std::fabs(d) <= static_cast<double>(std::numeric_limits<T>::max()) &&
                                      static_cast<double>(static_cast<T>(d)) == d)) {
                    return static_cast<T>(d);
                }
                throw_unreadable(s, c, type, name, "the value has no exact representation; read it as double");
            }
        }
        if (type == SQLITE_INTEGER) {
            // Exact when the conversion round-trips (beyond 2^53 for double, 2^24 for float, it may not).
            const std::int64_t v = sqlite3_column_int64(s, c);
            const T t = static_cast<T>(v);
            if (t >= static_cast<T>(-9223372036854775808.0) && t < static_cast<T>(9223372036854775808.0) &&
                static_cast<std::int64_t>(t) == v) {
                return t;
            }
            throw_unreadable(s, c, type, name, "the integer has no exact representation; read it as std::int64_t");
        }
        throw_wrong_class(s, c, type, name);
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

// TEXT as it is; an INTEGER as its decimal text (exact and reversible). A REAL is refused: SQLite
// renders it with 15 significant digits, which loses precision; a BLOB is bytes, not text.
inline std::string_view text_of(sqlite3_stmt* s, int c, int type, std::string_view cpp) {
    if (type == SQLITE_TEXT || type == SQLITE_INTEGER) [[likely]]
        return column_text(s, c);
    throw_wrong_class(s, c, type, cpp);
}

template <>
struct value_traits<std::string> {
    static int bind(sqlite3_stmt* s, int i, const std::string& v, bool copy) {
        return bind_text(s, i, v, copy);
    }
    static constexpr std::string_view name = "std::string";
    static std::string read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    static std::string read_as(sqlite3_stmt* s, int c, int type) {
        return std::string{text_of(s, c, type, name)};
    }
};

// Read back as a view: valid only until the statement steps again or is reset.
template <>
struct value_traits<std::string_view> {
    static int bind(sqlite3_stmt* s, int i, std::string_view v, bool copy) {
        return bind_text(s, i, v, copy);
    }
    static constexpr std::string_view name = "std::string_view";
    static std::string_view read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    static std::string_view read_as(sqlite3_stmt* s, int c, int type) { return text_of(s, c, type, name); }
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
    static constexpr std::string_view name = cpp_type_name<std::vector<Byte>>();
    static std::vector<Byte> read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    // A BLOB, or TEXT as its bytes (exact); numbers would be read as their text, a type confusion.
    static std::vector<Byte> read_as(sqlite3_stmt* s, int c, int type) {
        if (type != SQLITE_BLOB && type != SQLITE_TEXT) throw_wrong_class(s, c, type, name);
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
    static std::optional<T> read(sqlite3_stmt* s, int c) { return read_as(s, c, sqlite3_column_type(s, c)); }
    static std::optional<T> read_as(sqlite3_stmt* s, int c, int type) {
        if (type == SQLITE_NULL) return std::nullopt;
        return value_traits<T>::read_as(s, c, type);
    }
};

}  // namespace resilite::detail
