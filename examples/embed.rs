//! Embedding spindle in a program that already runs its own mio event loop.
//!
//! The program owns the `Poll`. Beside spindle it runs a UDP echo service on the
//! same loop and thread. It reserves a token range for spindle, forwards the
//! events in that range, includes spindle's deadline in its poll timeout and lets
//! spindle expire its deadlines after every wakeup. A `quit` datagram stops the
//! HTTP side gracefully: in-flight responses finish, then the server is dropped
//! and the program exits.
//!
//! ```sh
//! cargo run --example embed
//! curl http://127.0.0.1:8080/             # HTTP, served by spindle
//! curl http://127.0.0.1:8080/status       # spindle's counters as JSON
//! echo hi | nc -u -w1 127.0.0.1 9000      # UDP, echoed by the host program
//! printf quit | nc -u -w1 127.0.0.1 9000  # graceful shutdown
//! ```

use std::io;
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use spindle::{Config, Request, Response, Router, Server, StatsHandle, StatsPage};

/// The host's own source.
const UDP: Token = Token(0);
/// The first of the tokens reserved for spindle (`spindle::TOKEN_SPAN` of them,
/// so the range sits low: the host's own tokens go below it).
const SPINDLE: Token = Token(1 << 20);

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut poll = Poll::new()?;

    let mut udp = UdpSocket::bind("127.0.0.1:9000".parse().expect("a valid address"))?;
    poll.registry().register(&mut udp, UDP, Interest::READABLE)?;

    // The status page reports the server it is mounted in: the handle exists first.
    let stats = StatsHandle::new();
    let router = Router::new()
        .get("/", |req: &Request<'_>| Response::text(format!("hello, {}\n", req.peer())))
        .get("/status", StatsPage::new(vec![stats.clone()]));
    let mut server = Server::with_stats(Config::default(), router, stats);
    let http = server.bind("127.0.0.1:8080".parse().expect("a valid address"))?;
    // Listeners are bound first: registering fixes the server's token range.
    server.register(poll.registry(), SPINDLE)?;
    log::info!("HTTP on http://{http}/, UDP echo on {}", udp.local_addr()?);

    let mut events = Events::with_capacity(256);
    let mut datagram = [0u8; 1500];
    loop {
        // The host's own timers would go into this minimum too.
        let timeout = server.poll_timeout().map_or(Duration::from_secs(60), |t| t.min(Duration::from_secs(60)));
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        for event in events.iter() {
            if server.owns(event.token()) {
                server.handle_event(poll.registry(), event);
            } else if event.token() == UDP {
                loop {
                    match udp.recv_from(&mut datagram) {
                        Ok((n, _)) if &datagram[..n] == b"quit" => {
                            log::info!("shutting down: finishing in-flight responses");
                            server.shutdown(poll.registry());
                        }
                        Ok((n, from)) => {
                            let _ = udp.send_to(&datagram[..n], from);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        server.handle_timeouts(poll.registry());
        // Once drained the server holds nothing and asks for no wakeups; a host
        // with other work may keep it or drop it. This one is done.
        if server.is_drained() {
            log::info!("HTTP drained; exiting");
            return Ok(());
        }
    }
}
