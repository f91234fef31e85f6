//! keyway: a reverse-proxy authentication gateway on Pingora.
//!
//! One request, end to end (each step is a module):
//!
//! ```text
//! client -> listener -> request id -> route match -> authenticate -> mutate headers -> upstream
//!           (app)       (proxy::ctx)  (routing)      (auth)          (headers)         (upstream)
//!        <- error envelope for any failure, ours or the upstream's (error, proxy::upstream_errors)
//!           metrics + access log for every request (metrics, proxy::logging)
//! ```
//!
//! `config` turns `config.toml` into the compiled types the hooks in `proxy` use; `app` wires
//! the Pingora server (proxy service, admin service, lifecycle service).

pub mod admin;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod converse;
pub mod endpoints;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod hosted_email;
pub mod jwks;
pub mod jwt;
pub mod lifecycle;
pub mod listeners;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod store;
pub mod upstream;
