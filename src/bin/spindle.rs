//! `spindle [OPTIONS] [ROOT]`: serve ROOT over HTTP/1.1 until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mio::{Interest, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use spindle::{
    AccessLog, Config, Control, EventLoop, LogFormat, Request, Response, Router, Server, SetHeaders, StaticFiles,
    Status,
};

const SIGNALS: Token = Token(0);

const HELP: &str = "\
spindle: a single-threaded, event-loop HTTP/1.1 static file server

Usage: spindle [OPTIONS] [ROOT]

Arguments:
  [ROOT]  Directory to serve [default: www]

Options:
      --listen ADDR:PORT      Address to listen on; repeatable [default: 127.0.0.1:8080]
      --max-connections N     Most open connections [default: 10000]
      --max-header-bytes N    Largest request head accepted [default: 8192]
      --header-timeout SECS   Time to send a whole request head [default: 10]
      --idle-timeout SECS     Time a keep-alive connection may sit idle [default: 5]
      --send-timeout SECS     Time a response may stall on a client not reading [default: 30]
      --grace-period SECS     Time in-flight responses get on SIGINT/SIGTERM [default: 10]
      --max-body BYTES        Largest request body accepted (K, M suffixes) [default: 1M]
      --body-timeout SECS     Window in which a request body must make progress [default: 10]
      --access-log FORMAT     common, combined or off [default: common]
      --header 'NAME: VALUE'  Add a header field to every response; repeatable
      --health PATH           Answer GET PATH with a small JSON status [default: off]
      --listing               List directories that have no index.html
      --cache-control VALUE   Cache-Control for file responses (e.g. 'max-age=3600')
      --no-precompressed      Do not serve NAME.br / NAME.gz for NAME
      --no-file-cache         Do not keep small files (<= 64 KiB) in memory
      --file-cache-valid SECS Trust a cached file this long before checking it again [default: 0 = always]
      --error-page STATUS=FILE  Answer STATUS with FILE; repeatable [default: 404.html in ROOT]
      --spa FILE              Answer missing paths with ROOT/FILE and 200 (single-page apps)
      --load-test             Serve /plaintext, /json, /bytes/N, /status/CODE, /delay/MS (for wrk and co.)
  -h, --help                  Print help
  -V, --version               Print version

Durations are seconds (\"2.5\") or carry a unit (\"500ms\", \"10s\").
Logging goes to stderr; set RUST_LOG (default \"info\"; access log target spindle::access).
";

struct Args {
    config: Config,
    root: PathBuf,
    listen: Vec<SocketAddr>,
    access_log: Option<LogFormat>,
    headers: SetHeaders,
    health: Option<String>,
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
    let mut config = Config::default();
    let mut listen = Vec::new();
    let mut root = None;
    let mut access_log = Some(LogFormat::Common);
    let mut headers = SetHeaders::new();
    let mut health = None;
    let mut files = FileOptions::default();
    let mut load_test = false;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen.push(parser.value()?.parse()?),
            Long("max-connections") => config.max_connections = positive(parser.value()?.parse()?)?,
            Long("max-header-bytes") => config.max_header_bytes = positive(parser.value()?.parse()?)?,
            Long("header-timeout") => config.header_timeout = duration(parser.value()?)?,
            Long("idle-timeout") => config.idle_timeout = duration(parser.value()?)?,
            Long("send-timeout") => config.send_timeout = duration(parser.value()?)?,
            Long("grace-period") => config.grace_period = duration(parser.value()?)?,
            Long("max-body") => config.max_body_bytes = size(parser.value()?)?,
            Long("body-timeout") => config.body_timeout = duration(parser.value()?)?,
            Long("access-log") => {
                access_log = match parser.value()?.to_str() {
                    Some("common") => Some(LogFormat::Common),
                    Some("combined") => Some(LogFormat::Combined),
                    Some("off") => None,
                    _ => return Err("--access-log takes common, combined or off".into()),
                }
            }
            Long("header") => {
                let field = parser.value()?.into_string().map_err(|_| "not UTF-8")?;
                let Some((name, value)) = SetHeaders::parse_field(&field) else {
                    return Err(format!("invalid header field {field:?}: expected 'Name: value'").into());
                };
                headers = headers.header(&name, &value);
            }
            Long("health") => {
                let path: String = parser.value()?.parse()?;
                if !path.starts_with('/') {
                    return Err("--health takes a path starting with '/'".into());
                }
                health = Some(path);
            }
            Long("listing") => files.listing = true,
            Long("cache-control") => files.cache_control = Some(parser.value()?.parse()?),
            Long("no-precompressed") => files.no_precompressed = true,
            Long("no-file-cache") => files.no_file_cache = true,
            Long("file-cache-valid") => files.file_cache_valid = duration(parser.value()?)?,
            Long("error-page") => {
                let spec: String = parser.value()?.parse()?;
                let page = spec.split_once('=').and_then(|(s, f)| Some((s.parse::<u16>().ok()?, f)));
                match page {
                    Some((status, file)) if (400..600).contains(&status) && !file.is_empty() => {
                        files.error_pages.push((status, PathBuf::from(file)))
                    }
                    _ => return Err(format!("invalid --error-page {spec:?}: expected STATUS=FILE").into()),
                }
            }
            Long("spa") => files.spa = Some(parser.value()?.parse()?),
            Long("load-test") => load_test = true,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("spindle {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Value(path) if root.is_none() => root = Some(PathBuf::from(path)),
            _ => return Err(arg.unexpected()),
        }
    }
    if listen.is_empty() {
        listen.push(SocketAddr::from(([127, 0, 0, 1], 8080)));
    }
    let root = root.unwrap_or_else(|| PathBuf::from("www"));
    Ok(Some(Args { config, root, listen, access_log, headers, health, files, load_test }))
}

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

/// `2.5`, `2.5s` or `500ms`.
fn duration(value: std::ffi::OsString) -> Result<Duration, lexopt::Error> {
    let text = value.into_string().map_err(|_| "not UTF-8")?;
    let (number, scale) = match text.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (text.strip_suffix('s').unwrap_or(&text), 1.0),
    };
    let secs: f64 = number.trim().parse().map_err(|_| format!("invalid duration {text:?}"))?;
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
            log::error!("{e}");
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
    let needed = max_connections as u64 + 64;
    if lim.rlim_cur < needed {
        log::warn!(
            "the open-files limit ({}) is below what --max-connections {max_connections} needs (~{needed}); \
             connections beyond it will be refused while descriptors are short",
            lim.rlim_cur
        );
    }
}

fn serve(args: Args) -> Result<(), String> {
    raise_fd_limit(args.config.max_connections);
    let mut files = StaticFiles::new(&args.root)
        .map_err(|e| e.to_string())?
        .listing(args.files.listing)
        .precompressed(!args.files.no_precompressed)
        .file_cache(!args.files.no_file_cache)
        .revalidate_after(args.files.file_cache_valid);
    if let Some(value) = &args.files.cache_control {
        files = files.cache_control(value);
    }
    for (status, file) in args.files.error_pages {
        files = files.error_page(Status(status), file);
    }
    if let Some(file) = &args.files.spa {
        files = files.spa_fallback(file);
    }
    let root = files.root().display().to_string();
    let mut router = Router::new();
    if let Some(path) = &args.health {
        let started = std::time::Instant::now();
        router = router.get(path, move |_: &Request<'_>| {
            Response::json(format!(r#"{{"status":"ok","uptime_seconds":{}}}"#, started.elapsed().as_secs()))
        });
    }
    if args.load_test {
        router = router.load_test_endpoints();
    }
    router = router.fallback(files);
    if !args.headers.is_empty() {
        router = router.wrap(args.headers);
    }
    if let Some(format) = args.access_log {
        router = router.wrap(AccessLog::new(format));
    }
    let mut server = Server::new(args.config, router);
    let mut failed = false;
    for addr in &args.listen {
        if let Err(e) = server.bind(*addr) {
            log::error!("cannot listen on {addr}: {e}");
            failed = true;
        }
    }
    if failed {
        return Err("not all addresses could be bound".into());
    }
    let addrs = server.local_addrs();
    let mut event_loop = EventLoop::new(server).map_err(|e| format!("creating the event loop: {e}"))?;
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("installing signal handlers: {e}"))?;
    event_loop
        .registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("registering signals: {e}"))?;
    for addr in addrs {
        log::info!("listening on http://{addr}/, serving {root}");
    }
    event_loop
        .run(|event| {
            if event.token() != SIGNALS {
                return Control::Continue;
            }
            let mut control = Control::Continue;
            for signal in signals.pending() {
                let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                log::info!("{name} received: finishing in-flight responses, then exiting");
                control = Control::Shutdown;
            }
            control
        })
        .map_err(|e| format!("event loop: {e}"))?;
    log::info!("shut down");
    Ok(())
}
