//! Synthetic traffic for ripcord and the policy-test runner.
