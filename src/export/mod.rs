//! Writing a project out for another system to run: `runner export kubernetes`.

pub mod kubernetes;
