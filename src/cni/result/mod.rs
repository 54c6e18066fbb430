//! CNI results of every version and conversion between them (being written).
