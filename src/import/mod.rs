//! Converters from other tools' configuration into runner files.

pub mod devclaw;
