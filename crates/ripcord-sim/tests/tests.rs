//! Integration tests of the simulator: one binary, one module per subject.

mod detection;
mod review;
mod whatif;
