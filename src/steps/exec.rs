//! `exec` steps (being written).
