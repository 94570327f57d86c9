//! A ready-made event loop for programs that have none: it owns the `Poll`,
//! drives a [`Server`] on it, and hands every other event to the caller.

use std::io;

use mio::event::Event;
use mio::{Events, Poll, Registry, Token};

use crate::server::Server;

/// Runs `server` on a `Poll` of its own until the process ends (or the loop
/// fails). For signals or other sources of your own, use [`EventLoop`].
pub fn run(server: Server) -> io::Result<()> {
    EventLoop::new(server)?.run(|_| Control::Continue)
}

/// The first token the [`EventLoop`] gives its server; tokens below it are the caller's.
pub const SERVER_FIRST_TOKEN: Token = Token(1024);

/// What the caller's event handler wants the loop to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep serving.
    Continue,
    /// Begin a graceful shutdown; asked a second time, close everything at once.
    Shutdown,
    /// Close every connection now and return from [`EventLoop::run`].
    Stop,
}

/// A `Poll` with one [`Server`] on it.
pub struct EventLoop {
    poll: Poll,
    events: Events,
    server: Server,
}

impl EventLoop {
    /// Creates a `Poll` and registers `server` on it from [`SERVER_FIRST_TOKEN`].
    pub fn new(mut server: Server) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        server.register(poll.registry(), SERVER_FIRST_TOKEN)?;
        Ok(EventLoop { poll, events: Events::with_capacity(1024), server })
    }

    /// The registry, for the caller's own sources (tokens below [`SERVER_FIRST_TOKEN`]).
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The server being run.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Serves until a shutdown asked for by `on_event` has drained. `on_event`
    /// receives every event that is not the server's.
    pub fn run(&mut self, mut on_event: impl FnMut(&Event) -> Control) -> io::Result<()> {
        let mut shutting_down = false;
        loop {
            let timeout = self.server.poll_timeout();
            if let Err(e) = self.poll.poll(&mut self.events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let registry = self.poll.registry();
            for event in self.events.iter() {
                if self.server.owns(event.token()) {
                    self.server.handle_event(registry, event);
                } else {
                    match on_event(event) {
                        Control::Continue => {}
                        Control::Shutdown => {
                            if shutting_down {
                                self.server.close_all();
                            }
                            shutting_down = true;
                            self.server.shutdown(registry);
                        }
                        Control::Stop => {
                            self.server.shutdown(registry);
                            self.server.close_all();
                            return Ok(());
                        }
                    }
                }
            }
            self.server.handle_timeouts(registry);
            if self.server.is_drained() {
                return Ok(());
            }
        }
    }
}
