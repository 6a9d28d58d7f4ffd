//! Work that runs beside the requests: the settle job, the outbound worker, the watcher of
//! fan-outs made by another process, and the listener for other instances' changes.

pub mod changes;
pub mod fanouts;
pub mod outbound;
pub mod settle;
