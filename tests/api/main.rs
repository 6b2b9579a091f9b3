//! Black-box tests of the backend, one binary: the gateway (every function's router) started
//! on a free port against the real local stack (`make test` starts it), one module per area.
//! Tests that stop or kill a service take the stack exclusively (see `helpers::spawn_app`).

#![allow(clippy::too_many_lines)]

mod helpers;
mod routes;
mod run_log;

mod auth;
mod bench;
mod browser;
mod cancel;
mod chat;
mod chat_errors;
mod chat_faults;
mod clients;
mod conversations;
mod deploy;
mod dev;
mod fault_proxy;
mod faults;
mod files;
mod first_use;
mod hardening;
mod health;
mod http_tap;
mod letta_contract;
mod letta_tap;
mod limits;
mod load;
mod logs;
mod migration;
mod openai;
mod openapi;
mod outages;
mod provisioning;
mod provisioning_faults;
mod reconcile;
mod tokens;
mod user_agent;
mod voice;
