//! keyway's integration tests: the real binary on loopback port 0, real upstream HTTP servers.

// A test crate has no public API: `pub` in its modules only means "shared between tests".
#![allow(unreachable_pub)]

#[macro_use]
mod support;

mod asapp;
mod check_config;
mod converse;
mod deploy;
mod errors;
mod exchange;
mod faults;
mod fleet;
mod forwarding;
mod hardening;
mod hosted_email;
mod jwt;
mod observability;
mod path_tricks;
mod readme;
mod reload;
mod shutdown;
mod tls;
mod upgrade;
mod wycheproof;
