//! Property test: random operation sequences against the core and a simple
//! reference model (a map of path → file bytes or directory); results and
//! errnos must agree, and so must the final tree.
