//! lockbench: drive distributed lock backends through the same scenarios, record
//! every operation, check the history for safety violations, and report.
//!
//! Rooms: `scenario` (what to do), `run` (doing it), `faults` (the nemesis),
//! `record` (what happened), `check` (was it safe), `report` (what a person
//! reads). Backends live in the `lockbench-backends` crate and are reached only
//! through its traits.

pub mod check;
pub mod cli;
pub mod faults;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
