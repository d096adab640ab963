//! The embedded, file-backed store (redb): survives restarts; used by the local daemon.
//! (Being implemented.)

/// A file-backed [`super::Store`].
#[derive(Debug)]
pub struct EmbeddedStore;
