//! Server configuration: where to serve from, limits and timeouts.

use std::time::Duration;

/// The limits and timeouts of a [`Server`](crate::Server), with nginx-like defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most connections open at once. A new client at the limit takes the place of
    /// the oldest idle keep-alive connection; when none is idle, it is answered
    /// `503 Service Unavailable` (with `Retry-After: 1`) and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted, in bytes;
    /// larger heads get 431 (or 414 when the request line alone is too long).
    pub max_header_bytes: usize,
    /// Time a client has to send a whole request head, from its first byte
    /// (for a new connection, from when the server takes it: the kernel holds
    /// back a connection that has sent nothing for about a second at first,
    /// `TCP_DEFER_ACCEPT`, and a stream handed over with
    /// [`Server::accept_stream`](crate::Server::accept_stream) starts then).
    /// Trickling does not extend it.
    pub header_timeout: Duration,
    /// Largest request body accepted, in bytes; a larger one gets 413 (before it is
    /// read, when its length is declared).
    pub max_body_bytes: usize,
    /// Most bytes of request bodies held in memory at once by one event loop (each
    /// worker has its own): a body's declared length counts from when its head
    /// arrives, a chunked body's bytes as they come. A body that would go over is
    /// refused with `503 Service Unavailable` (with `Retry-After: 1`) and the
    /// connection closed, so that many clients sending large bodies slowly cannot
    /// exhaust memory. Below `max_body_bytes`, it is the largest body accepted.
    pub max_body_memory: usize,
    /// The request-body deadline window: in each such window a body must bring at
    /// least `body_min_rate` bytes per second (at least one byte), or the client
    /// gets 408 and the connection is closed.
    pub body_timeout: Duration,
    /// Minimum request-body rate in bytes per second (see `body_timeout`).
    pub body_min_rate: u64,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time a response may make no progress because the client is not reading.
    pub send_timeout: Duration,
    /// Time a closing connection waits for the client to stop sending.
    pub linger_timeout: Duration,
    /// Time in-flight responses get to finish after a graceful shutdown begins.
    pub grace_period: Duration,
    /// Most response bytes written to one connection per wakeup, so that one big
    /// download cannot hold up the others: a connection that has written this
    /// much waits for the poller to report its socket writable again, and every
    /// sending connection gets one such slice per loop turn.
    pub send_budget: usize,
    /// Unsent bytes a connection's socket may hold and still count as writable
    /// (`TCP_NOTSENT_LOWAT`, set on the listeners). A small value keeps about one
    /// slice per connection queued in the kernel rather than a whole send buffer:
    /// less memory pinned per connection, and concurrent downloads advance evenly.
    /// 0 leaves the kernel's default.
    pub send_lowat: usize,
    /// Size of each pooled response buffer: heads, bodies of up to 4 KiB, and
    /// files too small for sendfile(2) are written through it.
    pub write_buffer_bytes: usize,
    /// After half a second without traffic, also hand the C allocator's free
    /// memory back to the system (glibc's `malloc_trim`; elsewhere nothing), as
    /// the `spindle` binary does. It acts on the whole process and walks all of
    /// its heap on the loop thread, so it is off by default: a host program with
    /// a large heap of its own would stall for that long.
    pub trim_allocator: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_connections: 10_000,
            max_header_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_body_memory: 64 * 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            body_min_rate: 1024,
            idle_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(2),
            grace_period: Duration::from_secs(10),
            send_budget: 256 * 1024,
            send_lowat: 32 * 1024,
            write_buffer_bytes: 32 * 1024,
            trim_allocator: false,
        }
    }
}
