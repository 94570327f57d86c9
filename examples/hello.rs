//! A small web application: a few routes, static files for everything else,
//! and an access log.
//!
//! ```sh
//! cargo run --example hello            # then: curl http://127.0.0.1:8080/health
//! curl -d 'ping' http://127.0.0.1:8080/echo
//! ```

use spindle::{AccessLog, Config, LogFormat, Request, Response, Router, Server, StaticFiles, Status};

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let router = Router::new()
        .get("/", |_: &Request<'_>| {
            Response::html("<h1>Hello from spindle</h1><p>Try /health, /hello/you or POST /echo.</p>")
        })
        .get("/health", |_: &Request<'_>| Response::json(r#"{"status":"ok"}"#))
        .get("/hello/:name", |req: &Request<'_>| {
            Response::text(format!("Hello, {}!\n", req.param("name").unwrap_or("stranger")))
        })
        .post("/echo", |req: &Request<'_>| Response::new(Status::OK).with_body(req.body().to_vec()))
        .mount("/static", StaticFiles::new("www")?)
        .wrap(AccessLog::new(LogFormat::Common));

    let mut server = Server::new(Config::default(), router);
    let addr = server.bind("127.0.0.1:8080".parse().expect("a valid address"))?;
    log::info!("listening on http://{addr}/");
    spindle::run(server)
}
