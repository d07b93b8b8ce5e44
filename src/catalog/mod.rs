//! The catalog: recording metadata behind one trait.
