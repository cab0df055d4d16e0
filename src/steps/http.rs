//! `http` steps (being written).
