//! The WGSL int8 engine.
