//! The lessons as data: one file per lesson and language (assets/lessons), parsed and checked
//! here, and where each formula they name is computed. The panel that shows them is
//! `panels/lessons.rs`.

pub(super) mod code_refs;
pub(super) mod file;
