//! Listening sockets: bound here (optionally with `SO_REUSEPORT`, one per
//! worker) or inherited from a supervisor (systemd socket activation, `--fd`).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;
/// The backlog of listeners bound here.
const BACKLOG: i32 = 1024;

/// Binds a listening TCP socket on `addr` with `SO_REUSEADDR`; IPv6 sockets are
/// IPv6-only, so `[::]` and `0.0.0.0` can both be bound. With `reuse_port`, also
/// `SO_REUSEPORT`: several sockets (one per worker) may then bind the same
/// address and the kernel spreads new connections across them.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` listening sockets on `addr` that share it with `SO_REUSEPORT`
/// (one per worker; the kernel spreads new connections across them), as
/// [`bind`] does. Fails with `AddrInUse` when something already listens on
/// `addr`, even a group of another process that set `SO_REUSEPORT` too (which
/// the kernel would let this one join, splitting the traffic between them).
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        // A socket without SO_REUSEPORT cannot bind where anyone listens.
        drop(bind(addr, false)?);
    }
    let first = bind(addr, true)?;
    // Port 0 chose a port: the others join that one.
    let bound = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind(bound, true)?);
    }
    Ok(group)
}

fn set_reuse_port(socket: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    set_int_option(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
}

/// Asks the kernel to hand over a new connection only once its first bytes have
/// arrived (TCP_DEFER_ACCEPT, nginx's `deferred`): the request is then read at
/// once, and a connection answered and closed in one go never touches epoll. A
/// client that sends nothing is held by the kernel, not by the server, for about
/// a second (then accepted anyway, and the header deadline applies). Best effort.
pub(crate) fn defer_accept(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    if let Err(e) = set_int_option(listener.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1) {
        log::debug!("TCP_DEFER_ACCEPT: {e}");
    }
}

/// Sets TCP_NOTSENT_LOWAT on a socket (a listener's accepted sockets inherit it):
/// the socket then counts as writable only while fewer than `bytes` of it are
/// still unsent, so a sender woken by the poller queues one slice at a time
/// instead of filling the whole send buffer. 0 leaves the kernel's default.
/// Best effort.
pub(crate) fn notsent_lowat(socket: &impl std::os::fd::AsRawFd, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if let Err(e) = set_int_option(socket.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, bytes) {
        log::debug!("TCP_NOTSENT_LOWAT: {e}");
    }
}

/// `setsockopt(fd, level, name, value)` for an `int` option.
fn set_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to a live c_int and its size; a bad fd is an error return.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes over descriptor `fd` as a listener after checking that it is a
/// listening TCP socket. It is made close-on-exec; the caller must not use or
/// close `fd` otherwise.
pub fn from_fd(fd: RawFd) -> io::Result<TcpListener> {
    let int_opt = |name: libc::c_int| -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt with pointers to a live c_int and its length.
        let rc =
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut value as *mut libc::c_int).cast(), &mut len) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    };
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {fd} is {what}"));
    if int_opt(libc::SO_TYPE).map_err(|e| io::Error::new(e.kind(), format!("descriptor {fd}: {e}")))?
        != libc::SOCK_STREAM
    {
        return Err(invalid("not a stream socket"));
    }
    if int_opt(libc::SO_ACCEPTCONN)? != 1 {
        return Err(invalid("not listening"));
    }
    let domain = int_opt(libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(invalid("not a TCP/IP socket"));
    }
    // SAFETY: fd is an open socket (getsockopt succeeded) that the caller hands over.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    // SAFETY: fcntl on the descriptor we now own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
    Ok(listener)
}

/// The listeners passed by systemd socket activation: when `LISTEN_PID` is this
/// process and `LISTEN_FDS` is N, descriptors 3 .. 3+N. Empty when not socket
/// activated. The variables are not removed; call this once.
pub fn systemd_listeners() -> io::Result<Vec<TcpListener>> {
    let (Some(pid), Some(count)) = (std::env::var_os("LISTEN_PID"), std::env::var_os("LISTEN_FDS")) else {
        return Ok(Vec::new());
    };
    let parse = |value: &std::ffi::OsStr| value.to_str().and_then(|v| v.trim().parse::<u32>().ok());
    if parse(&pid) != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let Some(count) = parse(&count) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "LISTEN_FDS is not a number"));
    };
    (0..count).map(|i| from_fd(LISTEN_FDS_START + i as RawFd)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn reuse_port_lets_two_sockets_share_an_address() {
        let first = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr, true).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        assert!(bind(addr, false).is_err(), "a socket without SO_REUSEPORT joined the group");
    }

    /// `getsockopt(fd, IPPROTO_TCP, name)` for an `int` option.
    fn tcp_option(fd: &impl std::os::fd::AsRawFd, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt with pointers to a live c_int and its length.
        let rc = unsafe {
            libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, name, (&mut value as *mut libc::c_int).cast(), &mut len)
        };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn notsent_lowat_is_inherited_by_accepted_sockets() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        notsent_lowat(&listener, 32 * 1024);
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(tcp_option(&accepted, libc::TCP_NOTSENT_LOWAT), 32 * 1024);
        drop(client);
    }

    #[test]
    fn deferred_accept_is_set() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let get = || tcp_option(&listener, libc::TCP_DEFER_ACCEPT);
        assert_eq!(get(), 0);
        defer_accept(&listener);
        assert!(get() > 0, "TCP_DEFER_ACCEPT not set");
    }

    #[test]
    fn from_fd_accepts_only_listening_tcp_sockets() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let addr = listener.local_addr().unwrap();
        let taken = from_fd(listener.into_raw_fd()).unwrap();
        assert_eq!(taken.local_addr().unwrap(), addr);

        let unbound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let fd = unbound.into_raw_fd();
        assert!(from_fd(fd).is_err(), "a socket that is not listening was taken");
        // SAFETY: fd is ours and was not taken over.
        unsafe { libc::close(fd) };

        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = file.into_raw_fd();
        assert!(from_fd(fd).is_err(), "a file was taken as a listener");
        // SAFETY: fd is ours and was not taken over.
        unsafe { libc::close(fd) };
    }
}
