//! State this service keeps on disk: the quarantine.

pub mod quarantine;
