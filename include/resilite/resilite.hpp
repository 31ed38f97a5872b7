#pragma once
// resilite: SQLite databases that survive production. Include this for everything a user needs.

#include <resilite/blob.hpp>
#include <resilite/checkpoint_mode.hpp>
#include <resilite/checkpoint_result.hpp>
#include <resilite/database.hpp>
#include <resilite/database_options.hpp>
#include <resilite/error.hpp>
#include <resilite/error_class.hpp>
#include <resilite/event.hpp>
#include <resilite/jitter.hpp>
#include <resilite/policy/clock.hpp>
#include <resilite/policy/durability.hpp>
#include <resilite/policy/observer.hpp>
#include <resilite/policy/retry.hpp>
#include <resilite/retry_settings.hpp>
#include <resilite/settings.hpp>
#include <resilite/slot.hpp>
#include <resilite/synchronous.hpp>
#include <resilite/transaction.hpp>
#include <resilite/transaction_mode.hpp>
#include <resilite/version.hpp>
