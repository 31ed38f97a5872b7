#pragma once
// JSON read back: the settings file, the write queue's lines, the audit fallback's lines. Our
// own small reader, not a JSON library's: what is read is small and machine- or operator-written,
// and a general library's templates cost every program that includes resilite seconds of
// compile time (docs/design-notes.md, "JSON without a JSON library").
//
// Strict RFC 8259: one value, no trailing commas or comments, strings of well-formed UTF-8
// without raw control characters, \u escapes with paired surrogates. Objects keep their members
// in the order written, a name given twice included (the settings file refuses that itself).

#include <resilite/detail/format.hpp>
#include <resilite/detail/json.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace resilite::detail {

class json_value {
public:
    enum class kind : unsigned char { null, boolean, number, string, array, object };
    // A number as written: a whole number that fits 64 bits (signed when negative), else a
    // double ("1.0", "1e3" and 2^64 are doubles, as JSON libraries read them).
    enum class number_kind : unsigned char { signed_integer, unsigned_integer, real };

    kind type = kind::null;
    bool boolean = false;
    number_kind number = number_kind::signed_integer;
    std::int64_t integer = 0;   // number_kind::signed_integer
    std::uint64_t natural = 0;  // number_kind::unsigned_integer
    double real = 0;            // number_kind::real
    bool written_whole = false;  // a real written without fraction or exponent: a whole number past 64 bits
    std::string text;           // kind::string
    std::vector<json_value> items;                            // kind::array
    // kind::object, in file order: names[i] is values[i]'s name. (Two vectors, not one of pairs:
    // a pair holding the class being defined is not allowed, a vector of it is.)
    std::vector<std::string> names;
    std::vector<json_value> values;

    [[nodiscard]] bool is_object() const noexcept { return type == kind::object; }
    [[nodiscard]] bool is_string() const noexcept { return type == kind::string; }
    [[nodiscard]] bool is_boolean() const noexcept { return type == kind::boolean; }
    [[nodiscard]] bool is_array() const noexcept { return type == kind::array; }
    [[nodiscard]] bool is_whole_number() const noexcept {
        return type == kind::number && number != number_kind::real;
    }

    // The first member of that name, or null.
    [[nodiscard]] const json_value* find(std::string_view name) const noexcept {
        for (std::size_t i = 0; i < names.size(); ++i)
            if (names[i] == name) return &values[i];
        return nullptr;
    }
    // The member's text when it is a string.
    [[nodiscard]] std::optional<std::string> string_at(std::string_view name) const {
        const auto* v = find(name);
        if (v == nullptr || !v->is_string()) return std::nullopt;
        return v->text;
    }
    // The member's value when it is a whole number from 0 to 2^64-1.
    [[nodiscard]] std::optional<std::uint64_t> unsigned_at(std::string_view name) const noexcept {
        const auto* v = find(name);
        if (v == nullptr || !v->is_whole_number()) return std::nullopt;
        if (v->number == number_kind::unsigned_integer) return v->natural;
        if (v->integer < 0) return std::nullopt;
        return static_cast<std::uint64_t>(v->integer);
    }

    // What the value is, for "expected ..., got ..." messages: "a string", "an object", "a number
    // with a fraction or an exponent".
    [[nodiscard]] std::string_view described() const noexcept {
        switch (type) {
            case kind::null:
                return "a null";
            case kind::boolean:
                return "a boolean";
            case kind::number:
                if (number != number_kind::real) return "a number";
                return written_whole ? "a whole number outside the 64-bit range" : "a number with a fraction or an exponent";
            case kind::string:
                return "a string";
            case kind::array:
                return "an array";
            case kind::object:
                return "an object";
        }
        return "a value";
    }

    // Compact JSON text (for messages: "value 1.5", "value \"2x\"").
    [[nodiscard]] std::string dump() const {
        switch (type) {
            case kind::null:
                return "null";
            case kind::boolean:
                return boolean ? "true" : "false";
            case kind::number:
                if (number == number_kind::signed_integer) return resilite::detail::format("{}", integer);
                if (number == number_kind::unsigned_integer) return resilite::detail::format("{}", natural);
                {
                    auto s = resilite::detail::format("{}", real);  // shortest form that reads back
                    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // still a real
                    return s;
                }
            case kind::string:
                return json_string(text);
            case kind::array: {
                std::string out = "[";
                for (const auto& v : items) {
                    if (out.size() > 1) out += ',';
                    out += v.dump();
                }
                return out + "]";
            }
            case kind::object: {
                std::string out = "{";
                for (std::size_t i = 0; i < names.size(); ++i) {
                    if (i > 0) out += ',';
                    out += json_string(names[i]);
                    out += ':';
                    out += values[i].dump();
                }
                return out + "}";
            }
        }
        return "null";
    }
};

namespace json_detail {

class reader {
public:
    explicit reader(std::string_view text) : s_(text) {}

    // The whole text as one value, or nothing with the reason in why_.
    std::optional<json_value> document() {
        skip_space();
        json_value v;
        if (!value(v, 0)) return std::nullopt;
        skip_space();
        if (i_ != s_.size()) {
            fail("unexpected text after the value");
            return std::nullopt;
        }
        return v;
    }

    [[nodiscard]] const std::string& why() const noexcept { return why_; }

private:
    // Deeper than any file resilite reads; a bound keeps a hostile file from exhausting the stack.
    static constexpr int max_depth = 64;

    bool fail(std::string_view reason) {  // (false, for `return fail(...)`)
        if (why_.empty()) {
            std::size_t line = 1, column = 1;
            for (std::size_t k = 0; k < i_ && k < s_.size(); ++k) {
                if (s_[k] == '\n') {
                    ++line;
                    column = 1;
                } else {
                    ++column;
                }
            }
            why_ = resilite::detail::format("at line {}, column {}: {}", line, column, reason);
        }
        return false;
    }

    void skip_space() noexcept {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
            ++i_;
    }

    bool literal(std::string_view word) {
        if (s_.substr(i_, word.size()) != word) return fail("invalid literal");
        i_ += word.size();
        return true;
    }

    bool value(json_value& out, int depth) {
        if (i_ >= s_.size()) return fail("unexpected end of text, expected a value");
        switch (s_[i_]) {
            case '{':
                return object(out, depth);
            case '[':
                return array(out, depth);
            case '"':
                out.type = json_value::kind::string;
                return string(out.text);
            case 't':
                out.type = json_value::kind::boolean;
                out.boolean = true;
                return literal("true");
            case 'f':
                out.type = json_value::kind::boolean;
                out.boolean = false;
                return literal("false");
            case 'n':
                out.type = json_value::kind::null;
                return literal("null");
            default:
                return number(out);
        }
    }

    bool object(json_value& out, int depth) {
        if (depth >= max_depth) return fail("nested too deeply");
        out.type = json_value::kind::object;
        ++i_;  // '{'
        skip_space();
        if (i_ < s_.size() && s_[i_] == '}') {
            ++i_;
            return true;
        }
        for (;;) {
            skip_space();
            if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a name in quotes");
            out.names.emplace_back();
            if (!string(out.names.back())) return false;
            skip_space();
            if (i_ >= s_.size() || s_[i_] != ':') return fail("expected ':' after a name");
            ++i_;
            skip_space();
            out.values.emplace_back();
            if (!value(out.values.back(), depth + 1)) return false;
            skip_space();
            if (i_ < s_.size() && s_[i_] == ',') {
                ++i_;
                continue;
            }
            if (i_ < s_.size() && s_[i_] == '}') {
                ++i_;
                return true;
            }
            return fail("expected ',' or '}'");
        }
    }

    bool array(json_value& out, int depth) {
        if (depth >= max_depth) return fail("nested too deeply");
        out.type = json_value::kind::array;
        ++i_;  // '['
        skip_space();
        if (i_ < s_.size() && s_[i_] == ']') {
            ++i_;
            return true;
        }
        for (;;) {
            skip_space();
            out.items.emplace_back();
            if (!value(out.items.back(), depth + 1)) return false;
            skip_space();
            if (i_ < s_.size() && s_[i_] == ',') {
                ++i_;
                continue;
            }
            if (i_ < s_.size() && s_[i_] == ']') {
                ++i_;
                return true;
            }
            return fail("expected ',' or ']'");
        }
    }

    bool hex4(std::uint32_t& out) {
        out = 0;
        for (int k = 0; k < 4; ++k, ++i_) {
            if (i_ >= s_.size()) return fail("unexpected end of text in a \\u escape");
            const char c = s_[i_];
            const int d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
            if (d < 0) return fail("a \\u escape needs four hex digits");
            out = out * 16 + static_cast<std::uint32_t>(d);
        }
        return true;
    }

    static void append_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            out += static_cast<char>(0xf0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    bool string(std::string& out) {
        ++i_;  // '"'
        for (;;) {
            if (i_ >= s_.size()) return fail("unexpected end of text in a string");
            const auto c = static_cast<unsigned char>(s_[i_]);
            if (c == '"') {
                ++i_;
                return true;
            }
            if (c < 0x20) return fail("a control character in a string (escape it)");
            if (c >= 0x80) {
                const auto n = utf8_sequence_length(s_, i_);
                if (n == 0) return fail("a string that is not valid UTF-8");
                out.append(s_.substr(i_, n));
                i_ += n;
                continue;
            }
            if (c != '\\') {
                out += static_cast<char>(c);
                ++i_;
                continue;
            }
            ++i_;
            if (i_ >= s_.size()) return fail("unexpected end of text in a string");
            const char e = s_[i_++];
            switch (e) {
                case '"':
                case '\\':
                case '/':
                    out += e;
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    std::uint32_t cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xdc00 && cp <= 0xdfff)
                        return fail("a \\u escape of a low surrogate without a high one");
                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        std::uint32_t low = 0;
                        if (s_.substr(i_, 2) != "\\u")
                            return fail("a high surrogate not followed by a low one");
                        i_ += 2;
                        if (!hex4(low)) return false;
                        if (low < 0xdc00 || low > 0xdfff)
                            return fail("a high surrogate not followed by a low one");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    }
                    append_utf8(out, cp);
                    break;
                }
                default:
                    --i_;
                    return fail("an unknown escape in a string");
            }
        }
    }

    bool number(json_value& out) {
        const std::size_t start = i_;
        const auto digit = [&] { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; };
        if (i_ < s_.size() && s_[i_] == '-') ++i_;
        if (!digit()) return fail("expected a value");
        if (s_[i_] == '0') {
            ++i_;
        } else {
            while (digit())
                ++i_;
        }
        bool whole = true;
        if (i_ < s_.size() && s_[i_] == '.') {
            whole = false;
            ++i_;
            if (!digit()) return fail("expected a digit after '.'");
            while (digit())
                ++i_;
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            whole = false;
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            if (!digit()) return fail("expected a digit in the exponent");
            while (digit())
                ++i_;
        }
        const char* first = s_.data() + start;
        const char* last = s_.data() + i_;
        out.type = json_value::kind::number;
        if (whole) {
            if (*first == '-') {
                if (std::from_chars(first, last, out.integer).ec == std::errc{}) {
                    out.number = json_value::number_kind::signed_integer;
                    return true;
                }
            } else if (std::from_chars(first, last, out.natural).ec == std::errc{}) {
                out.number = json_value::number_kind::unsigned_integer;
                return true;
            }
        }
        out.number = json_value::number_kind::real;
        out.written_whole = whole;
        const auto r = std::from_chars(first, last, out.real);
        if (r.ec != std::errc{} || r.ptr != last) {
            i_ = start;
            return fail("a number out of range");
        }
        return true;
    }

    std::string_view s_;
    std::size_t i_ = 0;
    std::string why_;
};

}  // namespace json_detail

// The text as one JSON value, or nothing with the reason ("at line 3, column 7: expected ',' or
// '}'") in `why`.
[[nodiscard]] inline std::optional<json_value> parse_json(std::string_view text, std::string* why = nullptr) {
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a byte-order mark, as editors may write
    json_detail::reader r{text};
    auto v = r.document();
    if (!v && why != nullptr) *why = r.why();
    return v;
}

}  // namespace resilite::detail
