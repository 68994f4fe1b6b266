//! zmprov: the admin command line. It owns the command table (Zimbra's verbs and short
//! names), argument and batch-file parsing, and the output formats; the work itself is
//! done by route-lookup over gRPC.
//!
//! # Layout
//! - [`commands`]: the verbs, their arguments and output.
//! - [`tokenize`]: splitting batch lines into arguments.
//! - [`client`]: the gRPC connection with the admin token.

pub mod client;
pub mod commands;
pub mod tokenize;
