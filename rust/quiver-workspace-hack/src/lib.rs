//! No code: this crate only adds dependency features (see its Cargo.toml), so that a
//! build of quiver-py alone, as maturin does it, reuses the workspace build's artifacts.
