#pragma once
// Where an autocommit statement runs when an archive writes its records ahead.

namespace resilite::detail {

// Inside the transaction its record is written in before the COMMIT, or as given
// (sqlite/detail/reads_only.hpp, runs_as_given: a PRAGMA or a VACUUM).
enum class statement_place { write_ahead, as_given };

}  // namespace resilite::detail
