//! Nothing here: the tests are the `api` test binary (`api/main.rs`).
