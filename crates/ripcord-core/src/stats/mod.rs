//! Anytime-valid statistics, written here on top of statrs.
