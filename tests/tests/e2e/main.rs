//! The end-to-end suite: real `loyalty` server processes on loopback, real device stores, real
//! tills, the real JavaScript client and QR decoders, in one test binary (one link instead of
//! eighteen: linking is the slow part of a build on two cores). Each module is one area; the
//! shared harness (servers, tokens, simultaneous requests) is `loyalty_tests` (`tests/src`).
//! Run one area with `cargo test -p loyalty-tests --test e2e AREA::`.

mod adjust;
mod bad_input;
mod budget;
mod cards;
mod checkout;
mod cli;
mod communications;
mod console;
mod convergence;
mod crash;
mod edge;
mod epochs;
mod failover;
mod find_members;
mod fuzz_regressions;
mod instances;
mod js_client;
mod keys;
mod member_history;
mod offer_admin;
mod offers;
mod offline_till;
mod openapi;
mod operators;
mod ops;
mod outbound_adapters;
mod postgres;
mod programme;
mod redemption;
mod reports;
mod reset;
mod sync;
mod till_keys;
mod till_races;
mod watch_list;
