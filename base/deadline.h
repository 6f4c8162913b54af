// The deadline of the work the current thread is doing for a caller (an RPC's deadline), so
// that storage can pass it to Postgres as statement_timeout without every function taking it.
// Set for a scope with ScopedDeadline; InfiniteFuture when none.
#ifndef VCH_BASE_DEADLINE_H_
#define VCH_BASE_DEADLINE_H_

#include "absl/time/time.h"

namespace vch {

absl::Time CurrentDeadline();

// Sets the current thread's deadline until destroyed (restoring the previous one). Not movable.
class ScopedDeadline {
 public:
  explicit ScopedDeadline(absl::Time deadline);
  ~ScopedDeadline();
  ScopedDeadline(const ScopedDeadline&) = delete;
  ScopedDeadline& operator=(const ScopedDeadline&) = delete;

 private:
  absl::Time previous_;
};

}  // namespace vch

#endif  // VCH_BASE_DEADLINE_H_
