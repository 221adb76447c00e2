//! The files behind the collections: the data directory and its lock, each collection's metadata,
//! write-ahead log segments and snapshot, and their binary encoding. Every write that must
//! survive a crash is fsynced, and every directory change is fsynced in its parent.

pub mod codec;
pub mod data_dir;
pub mod files;
pub mod meta;
pub mod record;
pub mod segment;
pub mod snapshot;
