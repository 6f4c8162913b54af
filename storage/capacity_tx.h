// Storage-internal: the pool states of LoadPoolStates (capacity_store.h) read inside a caller's
// transaction, for the redemption batches that place and reserve in one transaction.
#ifndef VCH_STORAGE_CAPACITY_TX_H_
#define VCH_STORAGE_CAPACITY_TX_H_

#include <pqxx/pqxx>
#include <vector>

#include "policy/placement.h"

namespace vch::storage {

// Every pool with its site's facts (one row per pool, ordered by pool id)...
extern const char kPoolStatesSql[];
// ... and those rows as the placement engine's states.
std::vector<policy::PoolState> PoolStatesFromRows(const pqxx::result& rows);

}  // namespace vch::storage

#endif  // VCH_STORAGE_CAPACITY_TX_H_
