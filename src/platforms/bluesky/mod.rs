//! Bluesky (AT Protocol): the fake PDS the tests and the demo talk to.

pub mod fake;
