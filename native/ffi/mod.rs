//! The foreign faces of the core. Each only translates handles, buffers and errors, then calls
//! the same core functions; neither imports the other.

pub mod c;
pub mod jni;
