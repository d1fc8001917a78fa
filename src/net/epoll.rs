//! The epoll backend: edge-triggered for connections, so a socket is reported once per change
//! and the connection reads or writes until the kernel says `EAGAIN`.

use super::{Event, Poller};
use std::io;

pub struct Epoll {
    fd: i32,
    buf: Vec<libc::epoll_event>,
}

fn check(ret: i32) -> io::Result<i32> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            fd,
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        })
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` outlives the call.
        check(unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) }).map(drop)
    }
}

impl Poller for Epoll {
    fn add_socket(&self, fd: i32, token: u64) -> io::Result<()> {
        let events = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
        self.ctl(libc::EPOLL_CTL_ADD, fd, events as u32, token)
    }

    fn watch_output(&self, fd: i32, token: u64, on: bool) -> io::Result<()> {
        let mut events = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
        if on {
            events |= libc::EPOLLOUT;
        }
        self.ctl(libc::EPOLL_CTL_MOD, fd, events as u32, token)
    }

    fn add_reader(&self, fd: i32, token: u64, exclusive: bool) -> io::Result<()> {
        let mut events = libc::EPOLLIN as u32;
        if exclusive {
            events |= libc::EPOLLEXCLUSIVE as u32;
        }
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    fn remove(&self, fd: i32) {
        // Closing the descriptor removes it too; this only matters for shared ones.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout_ms: i32) -> io::Result<()> {
        // SAFETY: the buffer holds `len` initialised events for the kernel to overwrite.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.buf.as_mut_ptr(),
                self.buf.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        for ev in &self.buf[..n as usize] {
            let flags = ev.events as i32;
            events.push(Event {
                token: ev.u64,
                readable: flags & libc::EPOLLIN != 0,
                writable: flags & libc::EPOLLOUT != 0,
                closed: flags & (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) != 0,
            });
        }
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}
