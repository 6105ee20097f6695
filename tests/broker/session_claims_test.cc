// Who owns a session on the progress socket: first come, kept while in use.
#include "imgq/broker/session_claims.h"

#include <gtest/gtest.h>

namespace imgq::broker {
namespace {

using namespace std::chrono_literals;

TEST(SessionClaims, ASessionIsItsFirstKeysAndNoOneElses) {
  SessionClaims claims;
  const SessionClaims::Time t0{};
  EXPECT_TRUE(claims.claim("a11ce000", "alice", t0));
  EXPECT_TRUE(claims.claim("a11ce000", "alice", t0 + 1s));
  EXPECT_FALSE(claims.claim("a11ce000", "bob", t0 + 2s));
  EXPECT_TRUE(claims.taken_by_other("a11ce000", "bob"));
  EXPECT_FALSE(claims.taken_by_other("a11ce000", "alice"));
  EXPECT_FALSE(claims.taken_by_other("b0b00000", "alice"));
  // Without CURVE (no key) nothing is claimed and everything is allowed.
  EXPECT_TRUE(claims.claim("a11ce000", "", t0));
  EXPECT_FALSE(claims.taken_by_other("a11ce000", ""));
  EXPECT_EQ(claims.size(), 1u);
}

TEST(SessionClaims, AClaimLastsWhileUsedThenAnHourMore) {
  SessionClaims claims;
  const SessionClaims::Time t0{};
  auto none = [](const std::string&) { return false; };
  ASSERT_TRUE(claims.claim("a11ce000", "alice", t0));
  ASSERT_TRUE(claims.claim("0000beef", "alice", t0));
  claims.subscribed("0000beef", +1);
  claims.sweep(t0 + SessionClaims::kIdle - 1s, none);
  EXPECT_EQ(claims.size(), 2u);
  // Past the hour: the one a subscription names stays, and one a job uses.
  claims.sweep(t0 + SessionClaims::kIdle, [](const std::string& s) { return s == "a11ce000"; });
  EXPECT_EQ(claims.size(), 2u);
  claims.sweep(t0 + SessionClaims::kIdle, none);
  EXPECT_EQ(claims.size(), 1u);
  EXPECT_TRUE(claims.claim("a11ce000", "bob", t0 + SessionClaims::kIdle));  // free again
  // Subscriptions are counted: two in, one out, and it is still named.
  claims.subscribed("0000beef", +1);
  claims.subscribed("0000beef", -1);
  claims.sweep(t0 + 3 * SessionClaims::kIdle, [](const std::string& s) { return s == "a11ce000"; });
  EXPECT_TRUE(claims.taken_by_other("0000beef", "bob"));
  claims.subscribed("0000beef", -1);
  claims.subscribed("0000beef", -1);  // more out than in (a disconnect's) does no harm
  claims.sweep(t0 + 3 * SessionClaims::kIdle, [](const std::string& s) { return s == "a11ce000"; });
  EXPECT_FALSE(claims.taken_by_other("0000beef", "bob"));
}

}  // namespace
}  // namespace imgq::broker
