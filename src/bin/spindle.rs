//! `spindle [OPTIONS] [ROOT]`: serve ROOT over HTTP/1.1 until SIGINT, SIGTERM or SIGQUIT.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::{Interest, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook_mio::v1_0::Signals;
use spindle::{
    listen, AccessLog, Config, Control, ErrorPages, EventLoop, HeaderValue, LogFile, LogFormat, Request, Response,
    Router, Server, SetHeaders, StaticFiles, StatsHandle, StatsPage, Status,
};

/// Tokens of the binary's own sources (below the server's).
const SIGNALS: Token = Token(0);
const WAKE: Token = Token(1);

const HELP: &str = "\
spindle: an event-loop HTTP/1.1 static file server (one thread per worker)

Usage: spindle [OPTIONS] [ROOT]

Arguments:
  [ROOT]  Directory to serve [default: www]

Options:
      --listen ADDR:PORT      Address to listen on; repeatable [default: 127.0.0.1:8080,
                              unless listeners are inherited]
      --fd N                  Serve the listening socket inherited as descriptor N; repeatable
                              (systemd socket activation, LISTEN_FDS, is picked up by itself)
      --workers N|auto        Event loops, one thread each, with a SO_REUSEPORT listener each
                              (at most 256) [default: 1; auto: one per CPU]
      --max-connections N     Most open connections, shared out among workers [default: 10000]
      --max-header-bytes N    Largest request head accepted [default: 8192]
      --header-timeout SECS   Time to send a whole request head [default: 10]
      --idle-timeout SECS     Time a keep-alive connection may sit idle [default: 5]
      --send-timeout SECS     Time a response may stall on a client not reading [default: 30]
      --grace-period SECS     Time in-flight responses get on SIGINT/SIGTERM [default: 10]
      --max-body BYTES        Largest request body accepted (K, M, G suffixes; 0 refuses every
                              body) [default: 1M]
      --max-body-memory BYTES Most request-body bytes held at once per worker; beyond → 503
                              [default: 64M]
      --body-timeout SECS     Window in which a request body must bring at least 1 KiB/s
                              (else 408) [default: 10]
      --access-log PATH       Access-log file, '-' for stdout, or off; reopened on SIGHUP [default: -]
      --log-format FORMAT     Access-log format: common or combined [default: common]
      --header 'NAME: VALUE'  Add a header field to every response that lacks one of that name
                              (not Server, Date, Content-Length, Connection); repeatable
      --health PATH           Answer GET PATH with a small JSON status [default: off]
      --status PATH           Answer GET PATH with the server's counters: JSON, or Prometheus text
                              for ?format=prometheus or Accept: text/plain [default: off]
      --listing               List directories that have no index.html
      --cache-control VALUE   Cache-Control for file responses (e.g. 'max-age=3600')
      --no-precompressed      Do not serve NAME.br / NAME.gz for NAME
      --no-file-cache         Do not keep small files (<= 64 KiB) in memory, nor larger ones open
      --file-cache-valid SECS Trust a cached file this long before checking it again [default: 0 = always]
      --error-page STATUS=FILE  Answer STATUS with FILE, whatever the error; repeatable
                              [default: 404.html in ROOT]
      --spa FILE              Answer missing paths with ROOT/FILE and 200 (single-page apps)
      --load-test             Serve /plaintext, /json, /bytes/N, /status/CODE, /delay/MS (for wrk and co.)
  -h, --help                  Print help
  -V, --version               Print version

Durations are seconds (\"2.5\") or carry a unit (\"500ms\", \"10s\").
Signals: SIGINT, SIGTERM or SIGQUIT finish in-flight responses (for --grace-period), then exit;
a second one exits at once. SIGHUP or SIGUSR1 (as for nginx) reopens the access-log file (after
logrotate moved it); SIGUSR2 is ignored.
Diagnostics go to stderr; set RUST_LOG (default \"info\").
Exit status: 0 after a shutdown, 1 when serving fails (the reason is on stderr), 2 for bad usage.
";

struct Args {
    config: Config,
    root: PathBuf,
    listen: Vec<SocketAddr>,
    fds: Vec<RawFd>,
    workers: usize,
    /// The access-log file (`-` for stdout); `None` for off.
    access_log: Option<PathBuf>,
    log_format: LogFormat,
    headers: SetHeaders,
    health: Option<String>,
    status: Option<String>,
    files: FileOptions,
    load_test: bool,
}

#[derive(Default)]
struct FileOptions {
    listing: bool,
    cache_control: Option<String>,
    no_precompressed: bool,
    no_file_cache: bool,
    file_cache_valid: Duration,
    error_pages: Vec<(u16, PathBuf)>,
    spa: Option<String>,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    // A process of its own: the allocator's free memory goes back after traffic.
    let mut config = Config { trim_allocator: true, ..Config::default() };
    let mut listen = Vec::new();
    let mut root = None;
    let mut fds = Vec::new();
    let mut workers = 1;
    let mut access_log = Some(PathBuf::from("-"));
    let mut log_format = LogFormat::Common;
    let mut headers = SetHeaders::new();
    let mut health = None;
    let mut status = None;
    let mut files = FileOptions::default();
    let mut load_test = false;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        // The option as written, owned, so that its value can be taken and any
        // error about it can name it.
        let (option, mut operand) = match arg {
            Long(name) => (format!("--{name}"), None),
            Short(c) => (format!("-{c}"), None),
            Value(value) => (String::new(), Some(value)),
        };
        let mut apply = || -> Result<bool, lexopt::Error> {
            match option.as_str() {
                "--listen" => listen.push(parser.value()?.parse()?),
                "--max-connections" => config.max_connections = positive(parser.value()?.parse()?)?,
                "--max-header-bytes" => config.max_header_bytes = positive(parser.value()?.parse()?)?,
                "--header-timeout" => config.header_timeout = timeout(parser.value()?)?,
                "--idle-timeout" => config.idle_timeout = timeout(parser.value()?)?,
                "--send-timeout" => config.send_timeout = timeout(parser.value()?)?,
                "--grace-period" => config.grace_period = duration(parser.value()?)?,
                "--max-body" => config.max_body_bytes = size(parser.value()?)?,
                "--max-body-memory" => config.max_body_memory = size(parser.value()?)?,
                "--body-timeout" => config.body_timeout = timeout(parser.value()?)?,
                "--fd" => fds.push(parser.value()?.parse()?),
                "--workers" => {
                    let value = parser.value()?;
                    workers = if value == "auto" {
                        std::thread::available_parallelism().map_or(1, |n| n.get())
                    } else {
                        match positive(value.parse()?)? {
                            n if n > MAX_WORKERS => return Err(format!("at most {MAX_WORKERS}").into()),
                            n => n,
                        }
                    };
                }
                "--access-log" => {
                    let value = parser.value()?;
                    access_log = if value == "off" { None } else { Some(PathBuf::from(value)) };
                }
                "--log-format" => {
                    log_format = match parser.value()?.to_str() {
                        Some("common") => LogFormat::Common,
                        Some("combined") => LogFormat::Combined,
                        _ => return Err("takes common or combined".into()),
                    }
                }
                "--header" => {
                    let field = parser.value()?.into_string().map_err(|_| "not UTF-8")?;
                    let Some((name, value)) = SetHeaders::parse_field(&field) else {
                        return Err(format!(
                            "invalid header field {field:?}: expected 'Name: value', without control characters"
                        )
                        .into());
                    };
                    if SetHeaders::is_reserved(&name) {
                        return Err(format!("{name} is written by the server itself").into());
                    }
                    headers = std::mem::take(&mut headers).header(&name, &value);
                }
                "--health" => health = Some(route_path(parser.value()?)?),
                "--status" => status = Some(route_path(parser.value()?)?),
                "--listing" => files.listing = true,
                "--cache-control" => {
                    let value: String = parser.value()?.parse()?;
                    if !HeaderValue::from(value.clone()).is_valid() {
                        return Err(format!("invalid value {value:?}: control characters").into());
                    }
                    files.cache_control = Some(value);
                }
                "--no-precompressed" => files.no_precompressed = true,
                "--no-file-cache" => files.no_file_cache = true,
                "--file-cache-valid" => files.file_cache_valid = duration(parser.value()?)?,
                "--error-page" => {
                    let spec: String = parser.value()?.parse()?;
                    let page = spec.split_once('=').and_then(|(s, f)| Some((s.parse::<u16>().ok()?, f)));
                    match page {
                        Some((status, file)) if (400..600).contains(&status) && !file.is_empty() => {
                            files.error_pages.push((status, PathBuf::from(file)))
                        }
                        _ => return Err(format!("invalid value {spec:?}: expected STATUS=FILE").into()),
                    }
                }
                "--spa" => files.spa = Some(parser.value()?.parse()?),
                "--load-test" => load_test = true,
                "-h" | "--help" => {
                    print!("{HELP}");
                    return Ok(false);
                }
                "-V" | "--version" => {
                    println!("spindle {}", env!("CARGO_PKG_VERSION"));
                    return Ok(false);
                }
                "" if root.is_none() => root = operand.take().map(PathBuf::from),
                "" => return Err(lexopt::Error::UnexpectedArgument(operand.take().unwrap_or_default())),
                _ => return Err(lexopt::Error::UnexpectedOption(option.clone())),
            }
            Ok(true)
        };
        match apply() {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            // lexopt's own messages name the option already; the others get it in front.
            Err(e) if option.is_empty() || e.to_string().contains(&option) => return Err(e),
            Err(e) => return Err(format!("{option}: {e}").into()),
        }
    }
    let root = root.unwrap_or_else(|| PathBuf::from("www"));
    Ok(Some(Args {
        config,
        root,
        listen,
        fds,
        workers,
        access_log,
        log_format,
        headers,
        health,
        status,
        files,
        load_test,
    }))
}

fn route_path(value: std::ffi::OsString) -> Result<String, lexopt::Error> {
    let path = value.into_string().map_err(|_| "not UTF-8")?;
    if !path.starts_with('/') {
        return Err("takes a path starting with '/'".into());
    }
    Ok(path)
}

/// Most event loops: each takes a thread and a few descriptors, and far more
/// loops than CPUs only contend for them.
const MAX_WORKERS: usize = 256;

fn positive(n: usize) -> Result<usize, lexopt::Error> {
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// `4096`, `64K`, `1M` or `1G` bytes.
fn size(value: std::ffi::OsString) -> Result<usize, lexopt::Error> {
    let text = value.into_string().map_err(|_| "not UTF-8")?;
    let (number, scale) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (&text[..], 1),
    };
    let n: usize = number.trim().parse().map_err(|_| format!("invalid size {text:?}"))?;
    n.checked_mul(scale).ok_or_else(|| format!("size {text:?} is too large").into())
}

/// A [`duration`] for a timeout, which cannot be zero.
fn timeout(value: std::ffi::OsString) -> Result<Duration, lexopt::Error> {
    match duration(value)? {
        d if d.is_zero() => Err("a timeout must be more than 0".into()),
        d => Ok(d),
    }
}

/// `2.5`, `2.5s` or `500ms`.
fn duration(value: std::ffi::OsString) -> Result<Duration, lexopt::Error> {
    let text = value.into_string().map_err(|_| "not UTF-8")?;
    let (number, scale) = match text.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (text.strip_suffix('s').unwrap_or(&text), 1.0),
    };
    let secs: f64 =
        number.trim().parse().map_err(|_| format!("invalid duration {text:?}: seconds, as in 2.5, 10s or 500ms"))?;
    Duration::try_from_secs_f64(secs * scale).map_err(|_| format!("invalid duration {text:?}").into())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spindle: {e}\nTry 'spindle --help'.");
            return ExitCode::from(2);
        }
    };
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said even when RUST_LOG silences errors: it is why the process ends.
            if log::log_enabled!(log::Level::Error) {
                log::error!("{e}");
            } else {
                eprintln!("spindle: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft open-files limit to the hard one (as nginx's
/// `worker_rlimit_nofile` would), so `--max-connections` is not capped by the
/// usual soft default of 1024; warns when even the hard limit is too low.
fn raise_fd_limit(max_connections: usize) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let needed = libc::rlim_t::try_from(max_connections).unwrap_or(libc::rlim_t::MAX).saturating_add(64);
    if lim.rlim_cur < needed {
        log::warn!(
            "the open-files limit ({}) is below what --max-connections {max_connections} needs (~{needed}); \
             connections beyond it will be refused while descriptors are short",
            lim.rlim_cur
        );
    }
}

fn serve(args: Args) -> Result<(), String> {
    let workers = args.workers;
    let mut config = args.config.clone();
    config.max_connections = args.config.max_connections.div_ceil(workers);
    raise_fd_limit(args.config.max_connections);

    // Listeners: worker 0 gets the first socket of each address, the others their
    // own SO_REUSEPORT socket on it (or a duplicate of an inherited one).
    let mut inherited = listen::systemd_listeners().map_err(|e| format!("socket activation: {e}"))?;
    for &fd in &args.fds {
        inherited.push(listen::from_fd(fd).map_err(|e| format!("--fd {fd}: {e}"))?);
    }
    let mut addrs = args.listen.clone();
    if addrs.is_empty() && inherited.is_empty() {
        addrs.push(SocketAddr::from(([127, 0, 0, 1], 8080)));
    }
    let mut listeners: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    for addr in addrs {
        let cannot = |e| format!("cannot listen on {addr}: {e}");
        let group = if workers > 1 {
            listen::bind_shared(addr, workers).map_err(cannot)?
        } else {
            vec![listen::bind(addr, false).map_err(cannot)?]
        };
        for (socket, worker) in group.into_iter().zip(listeners.iter_mut()) {
            worker.push(socket);
        }
    }
    for listener in inherited {
        for socket in listeners.iter_mut().skip(1) {
            socket.push(listener.try_clone().map_err(|e| format!("duplicating a listener: {e}"))?);
        }
        listeners[0].push(listener);
    }

    let log_file = match &args.access_log {
        Some(path) => Some(LogFile::open(path).map_err(|e| format!("opening access log {}: {e}", path.display()))?),
        None => None,
    };
    let stats: Vec<StatsHandle> = (0..workers).map(|_| StatsHandle::new()).collect();
    warn_about_missing_pages(&args);
    let mut servers = Vec::with_capacity(workers);
    for (sockets, stats_handle) in listeners.into_iter().zip(&stats) {
        let router = build_router(&args, log_file.as_ref(), &stats)?;
        let mut server = Server::with_stats(config.clone(), router, stats_handle.clone());
        for socket in sockets {
            server.add_listener(socket).map_err(|e| format!("adding a listener: {e}"))?;
        }
        servers.push(server);
    }

    // Workers 1.. on threads of their own, told to shut down through a waker.
    let shutdowns = Arc::new(AtomicU32::new(0));
    let mut others = Vec::new();
    let mut servers = servers.into_iter();
    let Some(first) = servers.next() else { return Err("no workers".into()) };
    for (i, server) in servers.enumerate() {
        let mut event_loop = EventLoop::new(server).map_err(|e| format!("creating an event loop: {e}"))?;
        let waker = Arc::new(Waker::new(event_loop.registry(), WAKE).map_err(|e| format!("creating a waker: {e}"))?);
        let shutdowns = shutdowns.clone();
        let thread = std::thread::Builder::new()
            .name(format!("spindle-worker-{}", i + 1))
            .spawn(move || {
                let mut seen = 0;
                let result = event_loop.run(|event| {
                    let asked = shutdowns.load(Ordering::Acquire);
                    if event.token() != WAKE || asked == seen {
                        return Control::Continue;
                    }
                    seen = asked;
                    if asked > 1 {
                        Control::Stop
                    } else {
                        Control::Shutdown
                    }
                });
                if let Err(e) = result {
                    log::error!("worker {}: event loop: {e}", i + 1);
                }
            })
            .map_err(|e| format!("starting a worker: {e}"))?;
        others.push((thread, waker));
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    // Returns whether a shutdown was asked for.
    let on_signals = |signals: &mut Signals| {
        let mut shutdown = false;
        for signal in signals.pending() {
            if signal == SIGHUP || signal == SIGUSR1 {
                let name = if signal == SIGHUP { "SIGHUP" } else { "SIGUSR1" };
                match &log_file {
                    Some(log) => {
                        log::info!("{name} received: reopening the access log");
                        log.reopen();
                    }
                    None => log::info!("{name} received: no access-log file to reopen"),
                }
                continue;
            }
            if signal == SIGUSR2 {
                // nginx upgrades its binary on SIGUSR2; here it must not kill the server.
                log::info!("SIGUSR2 received: ignored");
                continue;
            }
            let name = match signal {
                SIGINT => "SIGINT",
                SIGQUIT => "SIGQUIT",
                _ => "SIGTERM",
            };
            if shutdowns.fetch_add(1, Ordering::AcqRel) == 0 {
                log::info!("{name} received: finishing in-flight responses, then exiting");
            } else {
                log::info!("{name} received again: closing every connection");
            }
            for (_, waker) in &others {
                let _ = waker.wake();
            }
            shutdown = true;
        }
        shutdown
    };
    let mut event_loop = EventLoop::new(first).map_err(|e| format!("creating the event loop: {e}"))?;
    event_loop
        .registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("registering signals: {e}"))?;
    let root = args.root.display();
    for addr in event_loop.server().local_addrs() {
        log::info!("listening on http://{addr}/, serving {root}");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        log::warn!(
            "running as root: any file under {root} that root can read is served, whatever its \
             permissions; run as an unprivileged user (the port can be inherited, see --fd)"
        );
    }
    if workers > 1 {
        log::info!("{workers} workers");
    }
    event_loop
        .run(
            |event| {
                if event.token() == SIGNALS && on_signals(&mut signals) {
                    Control::Shutdown
                } else {
                    Control::Continue
                }
            },
        )
        .map_err(|e| format!("event loop: {e}"))?;
    // Worker 0 has drained; the others drain on the same grace period. Keep
    // answering signals (a second SIGTERM) until they are done.
    while others.iter().any(|(thread, _)| !thread.is_finished()) {
        on_signals(&mut signals);
        std::thread::sleep(Duration::from_millis(20));
    }
    for (thread, _) in others {
        let _ = thread.join();
    }
    drop(log_file);
    log::info!("shut down");
    Ok(())
}

/// Warns when a page the server is told to send (`--error-page`, `--spa`) is not
/// a readable regular file: it is read when needed, so it may still appear, but
/// until then the built-in page (or a 404) goes out instead.
fn warn_about_missing_pages(args: &Args) {
    for (status, file) in &args.files.error_pages {
        warn_unless_file(&format!("--error-page {status}={}", file.display()), file);
    }
    if let Some(file) = &args.files.spa {
        let flag = format!("--spa {file}");
        let path = args.root.join(file.trim_start_matches('/'));
        // Served only from below ROOT (symlinks included), as the file handler opens it.
        let outside = match (std::fs::canonicalize(&path), std::fs::canonicalize(&args.root)) {
            (Ok(real), Ok(root)) => !real.starts_with(root),
            _ => false,
        };
        if outside {
            log::warn!("{flag}: {} leads out of ROOT; it is never sent", path.display());
        } else {
            warn_unless_file(&flag, &path);
        }
    }
}

fn warn_unless_file(flag: &str, path: &Path) {
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => {}
        Ok(_) => log::warn!("{flag}: {} is not a regular file; it is not sent until it is one", path.display()),
        Err(e) => log::warn!("{flag}: cannot read {} ({e}); it is not sent until it can be", path.display()),
    }
}

/// The router one worker serves with: its own file cache, shared counters for the
/// status page, its own access-log buffer.
fn build_router(args: &Args, log_file: Option<&LogFile>, stats: &[StatsHandle]) -> Result<Router, String> {
    let mut files = StaticFiles::new(&args.root)
        .map_err(|e| e.to_string())?
        .listing(args.files.listing)
        .precompressed(!args.files.no_precompressed)
        .file_cache(!args.files.no_file_cache)
        .revalidate_after(args.files.file_cache_valid);
    if let Some(value) = &args.files.cache_control {
        files = files.cache_control(value);
    }
    // The file handler's own errors take the pages too: its 404 would otherwise
    // be ROOT/404.html, which `ErrorPages` leaves alone.
    for (status, file) in &args.files.error_pages {
        files = files.error_page(Status(*status), file);
    }
    if let Some(file) = &args.files.spa {
        files = files.spa_fallback(file);
    }
    let mut router = Router::new();
    if let Some(path) = &args.health {
        let started = std::time::Instant::now();
        router = router.get(path, move |_: &Request<'_>| {
            Response::json(format!(r#"{{"status":"ok","uptime_seconds":{}}}"#, started.elapsed().as_secs()))
        });
    }
    if let Some(path) = &args.status {
        router = router.get(path, StatsPage::new(stats.to_vec()));
    }
    if args.load_test {
        router = router.load_test_endpoints();
    }
    router = router.fallback(files);
    if !args.headers.is_empty() {
        router = router.wrap(args.headers.clone());
    }
    if let Some(log_file) = log_file {
        router = router.wrap(AccessLog::to_file(args.log_format, log_file.writer()));
    }
    // Innermost (its on_response first): the access log and the added header
    // fields see the page that is sent.
    let pages = args
        .files
        .error_pages
        .iter()
        .fold(ErrorPages::new(), |pages, (status, file)| pages.page(Status(*status), file));
    if !pages.is_empty() {
        router = router.wrap(pages);
    }
    Ok(router)
}
