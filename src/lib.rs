//! mas-sockets: run the Matrix Authentication Service (`mas-cli server`) on the
//! sockets that systemd holds for it.
//!
//! # Layout
//!
//! - [`cli`]: the command line, whose doc comments are the help text.
//! - [`cmd`]: one module per subcommand, each with a `run`.
//! - [`config`]: MAS's YAML config read as MAS reads it (raw), then checked into a
//!   [`config::Plan`] that everything else acts on.
//! - [`units`]: the systemd `.socket` and `.service` units for a plan.
//! - [`nginx`]: the nginx site in front of MAS, and checks of a hand-written one.
//! - [`activation`]: taking and inspecting the listening fds systemd passes.
//! - [`bind`]: binding the configured addresses when nothing was passed.
//! - [`assign`]: matching sockets to the configured binds.
//! - [`notify`]: the `sd_notify(3)` protocol, both towards systemd and from the child.
//! - [`child`]: starting MAS with its sockets at fds 3.. and its own environment.
//! - [`supervisor`]: the event loop that ties the child, systemd and signals together.
//! - [`sys`]: the few raw system calls, each with its safety argument.

pub mod activation;
pub mod assign;
pub mod bind;
pub mod child;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod control;
pub mod logging;
pub mod nginx;
pub mod notify;
pub mod supervisor;
pub mod sys;
pub mod units;
