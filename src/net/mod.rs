//! The I/O backend interface. A backend tells the event loop which registered sockets became
//! ready; connections own their buffers, so a completion-based backend (io_uring) can fill the
//! same buffers the readiness-based one (epoll) reads into.

pub mod epoll;
pub mod socket;

/// What a readiness event says about a registered descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// The peer hung up or the socket is in error: reading will say how.
    pub closed: bool,
}

/// Readiness notification over a set of descriptors, one instance per core.
pub trait Poller {
    /// Watches a connection socket for input (edge-triggered).
    fn add_socket(&self, fd: i32, token: u64) -> std::io::Result<()>;
    /// Also reports when the socket can take output again; only worth asking after a write
    /// would have blocked, since an always-on output watch wakes the loop after every reply.
    fn watch_output(&self, fd: i32, token: u64, on: bool) -> std::io::Result<()>;
    /// Watches a descriptor for input only (listener, wake-up eventfd). `exclusive` wakes only
    /// one of the pollers sharing it.
    fn add_reader(&self, fd: i32, token: u64, exclusive: bool) -> std::io::Result<()>;
    fn remove(&self, fd: i32);
    /// Waits up to `timeout_ms` (-1: forever) and appends the ready events.
    fn wait(&mut self, events: &mut Vec<Event>, timeout_ms: i32) -> std::io::Result<()>;
}
