//! Work that runs beside the requests: the settle job, the outbound worker, the watcher of
//! fan-outs made by another process, and the bound on sync jobs running at once.

pub mod fanouts;
pub mod outbound;
pub mod settle;
pub mod sync;
