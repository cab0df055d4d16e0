//! Converters from other tools' configuration into runner files.

pub(crate) mod devclaw;
