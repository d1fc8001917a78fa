//! Thin, checked wrappers over the socket calls the event loop makes.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, IntoRawFd};

/// Binds a non-blocking listener; the descriptor is shared by every core's poller.
pub fn listen(addr: &str, port: u16) -> io::Result<(i32, SocketAddr)> {
    let listener = TcpListener::bind((addr, port))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    Ok((listener.into_raw_fd(), local))
}

/// Accepts one pending connection as a non-blocking socket with TCP_NODELAY and, when
/// `keepalive_secs` is not zero, TCP keepalive probes after that much idle time.
pub fn accept(listener: i32, keepalive_secs: u64) -> io::Result<Option<(i32, String)>> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr/len describe a valid buffer.
    let fd = unsafe {
        libc::accept4(
            listener,
            &mut addr as *mut _ as *mut libc::sockaddr,
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted => Ok(None),
            _ => Err(err),
        };
    }
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    if keepalive_secs > 0 {
        let idle = keepalive_secs.min(i32::MAX as u64) as i32;
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle);
        // As Redis does: probe a third as often, give up after three missed probes.
        set_int_option(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_KEEPINTVL,
            (idle / 3).max(1),
        );
        set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    }
    Ok(Some((fd, peer_name(fd))))
}

fn set_int_option(fd: i32, level: i32, name: i32, value: libc::c_int) {
    // SAFETY: the option value points at a live int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const _ as *const libc::c_void,
            4,
        );
    }
}

fn format_addr(addr: &libc::sockaddr_storage) -> String {
    match addr.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let a = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            format!("{}:{}", ip, u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let a = unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            format!("{}:{}", ip, u16::from_be(a.sin6_port))
        }
        _ => "?:0".into(),
    }
}

fn name_of(fd: i32, peer: bool) -> String {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ptr = &mut addr as *mut _ as *mut libc::sockaddr;
    // SAFETY: addr/len describe a valid buffer.
    let ret = unsafe {
        if peer {
            libc::getpeername(fd, ptr, &mut len)
        } else {
            libc::getsockname(fd, ptr, &mut len)
        }
    };
    if ret < 0 {
        return "?:0".into();
    }
    format_addr(&addr)
}

pub fn peer_name(fd: i32) -> String {
    name_of(fd, true)
}

pub fn local_name(fd: i32) -> String {
    name_of(fd, false)
}

/// Outcome of a non-blocking read or write.
pub enum Io {
    Done(usize),
    WouldBlock,
    Closed,
}

pub fn read(fd: i32, buf: &mut [u8]) -> Io {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    classify(n, true)
}

pub fn write(fd: i32, buf: &[u8]) -> Io {
    // SAFETY: buf is valid for reads of its length; MSG_NOSIGNAL avoids SIGPIPE.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    classify(n, false)
}

fn classify(n: isize, reading: bool) -> Io {
    if n > 0 || (n == 0 && !reading) {
        return Io::Done(n as usize);
    }
    if n == 0 {
        return Io::Closed;
    }
    match io::Error::last_os_error().kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Io::WouldBlock,
        _ => Io::Closed,
    }
}

pub fn close(fd: i32) {
    // SAFETY: the caller owns fd and never uses it again.
    unsafe { libc::close(fd) };
}

/// An eventfd another core writes to wake this core's poller.
pub struct Waker {
    fd: i32,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Waker { fd })
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter only means a wake is pending.
        unsafe { libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8) };
    }

    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        unsafe { libc::read(self.fd, &mut value as *mut u64 as *mut libc::c_void, 8) };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> i32 {
        self.fd
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// Raises the open-files limit to its hard maximum so `maxclients` can be honoured.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-parameter.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}
