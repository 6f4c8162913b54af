// Early-return helpers for absl::Status / absl::StatusOr (Abseil 20220623 ships none).
#ifndef VCH_BASE_STATUS_MACROS_H_
#define VCH_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VCH_STATUS_CONCAT_INNER_(a, b) a##b
#define VCH_STATUS_CONCAT_(a, b) VCH_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define VCH_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status vch_status_ = (expr);       \
    if (!vch_status_.ok()) return vch_status_; \
  } while (false)

// `VCH_ASSIGN_OR_RETURN(auto x, F())` declares x from F()'s value or returns its status.
#define VCH_ASSIGN_OR_RETURN(lhs, expr) \
  VCH_ASSIGN_OR_RETURN_IMPL_(VCH_STATUS_CONCAT_(vch_statusor_, __LINE__), lhs, expr)
#define VCH_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)    \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // VCH_BASE_STATUS_MACROS_H_
