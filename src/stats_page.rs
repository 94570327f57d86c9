//! A status page: the counters of one or more servers as JSON or in the
//! Prometheus text format.

use std::fmt::Write as _;
use std::time::Instant;

use crate::request::Request;
use crate::response::Response;
use crate::router::Handler;
use crate::stats::{Stats, StatsHandle};

/// A handler answering with the summed counters of the servers whose
/// [`StatsHandle`]s it was given (one per worker): JSON by default, the
/// Prometheus text format for `?format=prometheus` or a request whose `Accept`
/// names `text/plain` and not `application/json` (as Prometheus's scraper does).
/// Responses carry `Cache-Control: no-store`.
#[derive(Debug)]
pub struct StatsPage {
    servers: Vec<StatsHandle>,
    started: Instant,
}

impl StatsPage {
    /// A page summing the counters behind `servers`.
    pub fn new(servers: Vec<StatsHandle>) -> StatsPage {
        StatsPage { servers, started: Instant::now() }
    }

    fn total(&self) -> Stats {
        let mut total = Stats::default();
        for server in &self.servers {
            total.merge(&server.read());
        }
        total
    }
}

impl Handler for StatsPage {
    fn handle(&self, req: &Request<'_>) -> Response {
        let stats = self.total();
        let uptime = self.started.elapsed().as_secs();
        let response = if wants_prometheus(req) {
            Response::text(prometheus(&stats, self.servers.len(), uptime))
                .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        } else {
            Response::json(json(&stats, self.servers.len(), uptime))
        };
        response.with_header("Cache-Control", "no-store")
    }
}

fn wants_prometheus(req: &Request<'_>) -> bool {
    let query = req.query().unwrap_or("");
    if let Some(format) = query.split('&').find_map(|pair| pair.strip_prefix("format=")) {
        return format == "prometheus";
    }
    let accept = req.header("accept").unwrap_or("").to_ascii_lowercase();
    accept.contains("text/plain") && !accept.contains("application/json")
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn timeouts(s: &Stats) -> [(&'static str, u64); 5] {
    let t = s.timeouts;
    [("header", t.header), ("body", t.body), ("idle", t.idle), ("send", t.send), ("linger", t.linger)]
}

fn errors(s: &Stats) -> [(&'static str, u64); 6] {
    [
        ("handler_panics", s.handler_panics),
        ("client_resets", s.client_resets),
        ("io_errors", s.io_errors),
        ("accept_errors", s.accept_errors),
        ("evicted", s.evicted),
        ("refused", s.refused),
    ]
}

fn phases(s: &Stats) -> [(&'static str, usize); 5] {
    [
        ("idle", s.idle),
        ("reading_head", s.reading_head),
        ("reading_body", s.reading_body),
        ("sending", s.sending),
        ("closing", s.closing),
    ]
}

/// Writes `{"a":1,"b":2}` for `fields`.
fn json_object<T: std::fmt::Display>(out: &mut String, fields: impl IntoIterator<Item = (&'static str, T)>) {
    out.push('{');
    for (i, (name, value)) in fields.into_iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{name}\":{value}");
    }
    out.push('}');
}

fn json(s: &Stats, workers: usize, uptime: u64) -> String {
    let mut out = String::with_capacity(640);
    let _ = write!(out, "{{\"workers\":{workers},\"uptime_seconds\":{uptime},\"connections\":");
    json_object(&mut out, [("open", s.connections())].into_iter().chain(phases(s)));
    let _ = write!(out, ",\"accepted\":{},\"requests\":{},\"responses\":", s.accepted, s.requests);
    json_object(&mut out, CLASSES.into_iter().zip(s.responses));
    let _ = write!(out, ",\"bytes_sent\":{},\"timeouts\":", s.bytes_sent);
    json_object(&mut out, timeouts(s));
    out.push_str(",\"errors\":");
    json_object(&mut out, errors(s));
    out.push('}');
    out
}

fn prometheus(s: &Stats, workers: usize, uptime: u64) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP spindle_{name} {help}\n# TYPE spindle_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "spindle_{name}{labels} {value}");
        }
    };
    metric("workers", "gauge", "Event-loop workers.", &[("", workers as u64)]);
    metric("uptime_seconds", "gauge", "Seconds since the status page was created.", &[("", uptime)]);
    let phase_labels = phases(s).map(|(phase, n)| (format!("{{phase=\"{phase}\"}}"), n as u64));
    let samples: Vec<(&str, u64)> = phase_labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric("connections", "gauge", "Open connections by phase.", &samples);
    metric("accepted_total", "counter", "Connections accepted.", &[("", s.accepted)]);
    metric("requests_total", "counter", "Requests answered.", &[("", s.requests)]);
    let class_labels = CLASSES.map(|class| format!("{{class=\"{class}\"}}"));
    let samples: Vec<(&str, u64)> = class_labels.iter().map(String::as_str).zip(s.responses).collect();
    metric("responses_total", "counter", "Responses by status class.", &samples);
    metric("sent_bytes_total", "counter", "Bytes written to clients.", &[("", s.bytes_sent)]);
    let kind_labels = timeouts(s).map(|(kind, n)| (format!("{{kind=\"{kind}\"}}"), n));
    let samples: Vec<(&str, u64)> = kind_labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric("timeouts_total", "counter", "Expired deadlines by kind.", &samples);
    for (name, value) in errors(s) {
        let help = match name {
            "handler_panics" => "Handlers that panicked.",
            "client_resets" => "Connections reset or abandoned by the client mid-exchange.",
            "io_errors" => "Other I/O errors on connections.",
            "accept_errors" => "Failed accept calls, running out of file descriptors included.",
            "evicted" => "Idle connections closed to make room for new ones.",
            _ => "Connections refused (503): no room at the connection limit, or no file descriptor.",
        };
        metric(&format!("{name}_total"), "counter", help, &[("", value)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stats {
        let mut s = Stats { idle: 2, sending: 1, accepted: 9, requests: 7, bytes_sent: 1234, ..Stats::default() };
        s.responses = [0, 5, 1, 1, 0];
        s.timeouts.header = 3;
        s.client_resets = 4;
        s
    }

    #[test]
    fn json_shape() {
        let text = json(&sample(), 2, 5);
        assert!(text.starts_with(r#"{"workers":2,"uptime_seconds":5,"connections":{"open":3,"idle":2,"#), "{text}");
        assert!(text.contains(r#""responses":{"1xx":0,"2xx":5,"3xx":1,"4xx":1,"5xx":0}"#), "{text}");
        assert!(text.contains(r#""timeouts":{"header":3,"body":0,"#), "{text}");
        assert!(text.contains(r#""client_resets":4"#), "{text}");
        assert!(text.ends_with("}}"), "{text}");
    }

    #[test]
    fn prometheus_shape() {
        let text = prometheus(&sample(), 1, 0);
        for line in [
            "# TYPE spindle_connections gauge",
            "spindle_connections{phase=\"idle\"} 2",
            "spindle_requests_total 7",
            "spindle_responses_total{class=\"2xx\"} 5",
            "spindle_timeouts_total{kind=\"header\"} 3",
            "spindle_client_resets_total 4",
            "spindle_sent_bytes_total 1234",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
