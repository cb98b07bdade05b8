//! mas-sockets' integration tests: one binary, a module per area.
//!
//! They need root (a real systemd is booted in private namespaces) and the
//! MAS stand-in built by `cargo build --workspace`; `scripts/test` does both.

mod util;

mod check;
mod generate_units;
mod nginx;
mod packages;
mod restart;
mod runtime_dir;
mod supervise;
mod systemd_e2e;
mod systemd_nginx;
mod systemd_restart;
mod systemd_smoke;
