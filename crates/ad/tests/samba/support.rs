//! What the tests against a real directory share lives in `autoprov_ad::test_fixtures` (the
//! example and the benchmark use it too).

pub use autoprov_ad::test_fixtures::*;
