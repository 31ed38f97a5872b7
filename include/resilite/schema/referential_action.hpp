#pragma once
// What SQLite does to a child row when the parent row it references is deleted or its key
// changes (resilite::foreign_key's OnDelete / OnUpdate). The names are SQLite's actions.

#include <string_view>

namespace resilite {

enum class referential_action {
    no_action,    // the change fails if a child row still references the old key (at commit)
    restrict,     // the change fails at once if a child row references the old key
    set_null,     // the child's column becomes NULL (the column must be nullable)
    set_default,  // the child's column gets its DEFAULT (which must reference an existing parent)
    cascade,      // the child row is deleted with its parent, or takes the parent's new key
};

[[nodiscard]] constexpr std::string_view to_sql(referential_action a) noexcept {
    switch (a) {
        case referential_action::restrict: return "RESTRICT";
        case referential_action::set_null: return "SET NULL";
        case referential_action::set_default: return "SET DEFAULT";
        case referential_action::cascade: return "CASCADE";
        case referential_action::no_action: break;
    }
    return "NO ACTION";
}

}  // namespace resilite
