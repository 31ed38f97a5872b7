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
            return {error_class::none, resilite::detail::format("exception: {}", e.what())};
        } catch (...) {
            return {error_class::none, "unknown exception"};
        }
    }
};

}  // namespace resilite::detail
