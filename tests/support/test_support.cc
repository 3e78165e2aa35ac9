#include "tests/support/test_support.h"

namespace om {

void expect_all_ok(const CheckList& results) {
  EXPECT_FALSE(results.empty()) << "a check list ran no checks";
  for (const CheckResult& r : results) EXPECT_TRUE(r.ok()) << r.ToString();
}

}  // namespace om
