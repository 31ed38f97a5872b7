#pragma once
// resilite::audit_result: where Database::audit() put the entry.

#include <cstdint>

namespace resilite {

struct audit_result {
    // True: the entry is a committed row of resilite_audit, numbered `seq`. False: the database
    // could not take it (after the retry policy's attempts) and it is synced in the fallback file
    // beside the database (`<db>.audit-fallback.jsonl`) as entry `fallback_seq`; it is imported
    // into resilite_audit, once and in order, when the database is back.
    bool in_database = false;
    std::int64_t seq = 0;
    std::uint64_t fallback_seq = 0;
};

}  // namespace resilite
