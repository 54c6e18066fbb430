//! The invariants the fuzz targets check; see [`checks`].

pub mod checks;
