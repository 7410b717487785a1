//! Running as a service: what the `cmdbus` binary tells a service manager, and how it stops.
//! `notify`: systemd's notify protocol (`Type=notify`) spoken to a socket the test binds;
//! `stop`: a service manager's stop (SIGTERM) ends the process within its bounds even while the
//! broker hangs; `windows`: the Windows build under Wine (opt-in, `scripts/windows.sh`).
//! `gate` puts the broker behind a port the test refuses, forwards or freezes.

#[path = "../common/mod.rs"]
mod common;

mod gate;
mod notify;
mod stop;
mod windows;
