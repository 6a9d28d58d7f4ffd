//! Work that runs beside the requests: the settle job, the outbound worker, and the watcher of
//! fan-outs made by another process.

pub mod fanouts;
pub mod outbound;
pub mod settle;
