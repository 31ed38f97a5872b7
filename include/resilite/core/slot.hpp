#pragma once
// resilite::slot: the tags a policy uses to say which concern it governs
// (`using slot = resilite::slot::durability;`). Database<Ps...> fills each slot once.

namespace resilite::slot {

struct durability {};
struct observer {};
struct clock {};
struct retry {};
struct schema {};
struct migrations {};
struct backup {};
struct archive {};
struct healing {};
struct degradation {};

}  // namespace resilite::slot
