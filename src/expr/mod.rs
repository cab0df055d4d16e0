//! Template values below the steps and the engine: evaluation of expressions and
//! templates ([`values`]), the nested variable scopes a run builds ([`scope`]) and the
//! masking of secrets in everything that leaves a run ([`mask`]).

pub(crate) mod mask;
pub(crate) mod scope;
pub(crate) mod values;
