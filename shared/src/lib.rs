//! kasm-autoscale's library: everything the Lambda functions and the CLI share.
//!
//! Layers (dependencies point down only):
//! - [`app`]: one function per handler (evaluate, provision, reap), generic over the ports.
//! - [`engine`]: the pure scaling rule, `decide(inputs, now) -> Plan`.
//! - [`ports`]: the traits the app is generic over, re-exported in one place.
//! - [`store`], [`secrets`], [`kasm`], [`providers`], [`dns`], [`script`]: the adapters.
//! - [`config`]: the serde model of Kasm's configs, validation and JSON Schema.
//! - [`sim`]: the simulator behind `kasm-autoscale simulate`.
//! - [`input`]: size and nesting limits on untrusted files, checked before parsing.

pub mod app;
#[cfg(feature = "aws-sdk")]
pub mod aws_error;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod engine;
#[cfg(feature = "fuzz")]
pub mod fuzzing;
pub mod http;
pub mod input;
pub mod kasm;
pub mod model;
pub mod ports;
pub mod providers;
pub mod script;
pub mod secrets;
pub mod sim;
pub mod store;
pub mod webhook;
pub mod wiring;
