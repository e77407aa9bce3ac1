//! One module per subcommand; each owns its arguments and returns the exit code.

pub mod audit;
pub mod bench;
pub mod demo;
pub mod drill;
pub mod evidence;
pub mod incident;
pub mod policy;
pub mod purge;
pub mod remote;
pub mod replay;
pub mod report;
pub mod review;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod template;
pub mod test;
pub mod token;
