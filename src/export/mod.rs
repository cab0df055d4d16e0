//! Writing a project out for another system to run: `runner export kubernetes`.

pub(crate) mod kubernetes;
