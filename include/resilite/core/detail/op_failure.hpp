#pragma once
// How an operation ended, for the event it emits.

#include <resilite/core/error.hpp>
#include <resilite/detail/format.hpp>

#include <fmt/format.h>

#include <exception>
#include <string>

namespace resilite::detail {

struct op_failure {
    error_class klass = error_class::none;
    std::string detail;

    static op_failure from_current_exception() {
        try {
            throw;
        } catch (const error& e) {
            return {e.klass(), e.what()};
        } catch (const std::exception& e) {
            // The application's own exception (a transaction's or savepoint's function threw):
            // the operation was cancelled, not completed ("none" is never a failure's class).
            return {error_class::aborted, resilite::detail::format("exception: {}", one_line(e.what()))};
        } catch (...) {
            return {error_class::aborted, "unknown exception"};
        }
    }
};

}  // namespace resilite::detail
