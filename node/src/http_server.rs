//! The HTTP/1 server under the RPC and metrics routers: an accept loop with
//! a connection cap, a deadline for request headers, and JSON errors for
//! requests too large to route.
//!
//! `axum::serve` keeps every connection a client opens for as long as the
//! client likes: 1,100 half-sent requests used up the process's file
//! descriptors and no new client was answered. Here:
//!
//! - at most [`ServerLimits::connections_max`] connections are open. When a
//!   new one arrives at the cap, the connection idle the longest (no request
//!   being answered: waiting for headers, or kept alive between requests) is
//!   closed to make room, so a flood of idle connections cannot lock out a
//!   real client; with none idle the newcomer gets a 503 and is closed;
//! - request headers must arrive within [`ServerLimits::header_read_timeout`];
//! - the first request of a connection is read here before hyper sees it,
//!   so that a request line over [`REQUEST_URI_BYTES_MAX`] or a head over
//!   [`REQUEST_HEAD_BYTES_MAX`] gets `{"error": {...}}` with 414 or 431
//!   (hyper would answer with an empty body). Later requests on a kept-alive
//!   connection are bounded by hyper with the same limit.
//!
//! WebSocket connections leave this server's accounting when they upgrade;
//! the RPC caps them apart (`rpc::RPC_WEBSOCKETS_MAX`).

use std::{
    collections::HashMap,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinSet,
};
use tower::ServiceExt;

use crate::shutdown::Shutdown;

/// Longest request line (method, target, version) accepted.
pub const REQUEST_URI_BYTES_MAX: usize = 8 * 1024;
/// Longest request head (request line and headers) accepted.
pub const REQUEST_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Longest time one request may take, body and answer included (a
/// WebSocket counts until its upgrade).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a refusal (414, 431, 503) may take to write before the
/// connection is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (e.g. no descriptors left), so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Least time between two log lines about failed `accept`s.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limits of one server.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Most connections open at once (at least 1).
    pub connections_max: usize,
    /// Deadline for the headers of a request.
    pub header_read_timeout: Duration,
}

/// One open connection, as the accept loop sees it.
struct ConnectionEntry {
    /// Requests being answered now.
    requests_in_flight: AtomicUsize,
    /// When the connection last became idle, in milliseconds since the
    /// server started.
    idle_since_ms: AtomicU64,
    /// Closes the connection (it was chosen to make room).
    evict: Notify,
}

/// Marks a request in flight until dropped.
struct RequestGuard {
    entry: Arc<ConnectionEntry>,
    started: Instant,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.entry.idle_since_ms.store(now, Ordering::Relaxed);
        self.entry.requests_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every open connection, by id.
struct Connections {
    started: Instant,
    entries: Mutex<HashMap<u64, Arc<ConnectionEntry>>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnectionEntry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Makes room for one more connection: true when there is room (maybe
    /// after closing the connection idle the longest).
    fn make_room(&self, connections_max: usize) -> bool {
        let entries = self.lock();
        if entries.len() < connections_max {
            return true;
        }
        let idlest = entries
            .iter()
            .filter(|(_, entry)| entry.requests_in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, entry)| entry.idle_since_ms.load(Ordering::Relaxed));
        match idlest {
            Some((id, entry)) => {
                entry.evict.notify_one();
                let id = *id;
                drop(entries);
                // Removed now, so the next arrival does not pick it again;
                // its task ends at its next poll.
                self.lock().remove(&id);
                true
            }
            None => false,
        }
    }

    fn add(&self, id: u64) -> Arc<ConnectionEntry> {
        let entry = Arc::new(ConnectionEntry {
            requests_in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        self.lock().insert(id, Arc::clone(&entry));
        entry
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests
/// finish (the caller bounds how long). Dropping the future closes every
/// connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    mut shutdown: Shutdown,
) -> io::Result<()> {
    let connections = Arc::new(Connections {
        started: Instant::now(),
        entries: Mutex::new(HashMap::new()),
    });
    let connections_max = limits.connections_max.max(1);
    let mut tasks = JoinSet::new();
    let mut next_id: u64 = 0;
    let mut last_accept_error_log: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.requested() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        if last_accept_error_log
                            .is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_INTERVAL)
                        {
                            tracing::warn!(
                                "cannot accept an HTTP connection: {error} (open connections: {}; raise `ulimit -n` or lower rpc.connections_max)",
                                connections.lock().len()
                            );
                            last_accept_error_log = Some(Instant::now());
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                if !connections.make_room(connections_max) {
                    refuse_busy(&stream, connections_max);
                    continue;
                }
                next_id += 1;
                let id = next_id;
                let entry = connections.add(id);
                let connections = Arc::clone(&connections);
                let router = router.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    serve_connection(stream, router, Arc::clone(&entry), &connections, limits, shutdown).await;
                    connections.remove(id);
                });
            }
        }
    }
    drop(listener);
    // Open connections finish their request; idle ones close.
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// At the cap with no idle connection: a best-effort 503, then close.
fn refuse_busy(stream: &TcpStream, connections_max: usize) {
    let response = error_response(
        503,
        "Service Unavailable",
        "too_many_connections",
        &format!(
            "the server has {connections_max} connections open and all are busy; retry shortly"
        ),
    );
    // Non-blocking: a client that does not read gets nothing.
    let _ = stream.try_write(&response);
}

/// A complete HTTP/1.1 response with `{"error": {"code", "message"}}` that
/// closes the connection.
fn error_response(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The 408 for a request over [`REQUEST_TIMEOUT`]; it closes the
/// connection.
fn request_timed_out() -> axum::response::Response {
    let body = serde_json::json!({
        "error": {
            "code": "request_timeout",
            "message": format!(
                "the request took more than {} s (its body came too slowly); send it again",
                REQUEST_TIMEOUT.as_secs()
            ),
        }
    })
    .to_string();
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Why the first request head was not passed on.
enum HeadRefusal {
    /// The client closed, sent nothing in time, or the read failed.
    Gone,
    /// Too large: the response to send.
    TooLarge(Vec<u8>),
}

/// Reads the first request head (up to its blank line), refusing one whose
/// request line or head is over the limits. Returns the bytes read, which
/// may include the start of the body.
async fn read_first_head(
    stream: &mut TcpStream,
    header_read_timeout: Duration,
) -> Result<Vec<u8>, HeadRefusal> {
    let mut buffer = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + header_read_timeout;
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| HeadRefusal::Gone)?
            .map_err(|_| HeadRefusal::Gone)?;
        if read == 0 {
            return Err(HeadRefusal::Gone);
        }
        let scan_from = buffer.len().saturating_sub(3);
        buffer.extend_from_slice(&chunk[..read]);
        let line_end = find(&buffer, b"\r\n");
        let request_line_length = line_end.unwrap_or(buffer.len());
        if request_line_length > REQUEST_URI_BYTES_MAX {
            return Err(HeadRefusal::TooLarge(error_response(
                414,
                "URI Too Long",
                "uri_too_long",
                &format!(
                    "the request line is longer than {REQUEST_URI_BYTES_MAX} bytes; no route of this API needs that"
                ),
            )));
        }
        if let Some(end) = find(&buffer[scan_from..], b"\r\n\r\n") {
            if scan_from + end + 4 > REQUEST_HEAD_BYTES_MAX {
                return Err(head_too_large());
            }
            return Ok(buffer);
        }
        if buffer.len() > REQUEST_HEAD_BYTES_MAX {
            return Err(head_too_large());
        }
    }
}

fn head_too_large() -> HeadRefusal {
    HeadRefusal::TooLarge(error_response(
        431,
        "Request Header Fields Too Large",
        "headers_too_large",
        &format!("the request head is longer than {REQUEST_HEAD_BYTES_MAX} bytes"),
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

async fn serve_connection(
    mut stream: TcpStream,
    router: Router,
    entry: Arc<ConnectionEntry>,
    connections: &Connections,
    limits: ServerLimits,
    mut shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let head = tokio::select! {
        head = read_first_head(&mut stream, limits.header_read_timeout) => head,
        _ = entry.evict.notified() => return,
        _ = shutdown.requested() => return,
    };
    let prefix = match head {
        Ok(prefix) => prefix,
        Err(HeadRefusal::Gone) => return,
        Err(HeadRefusal::TooLarge(response)) => {
            let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                stream.write_all(&response).await?;
                stream.shutdown().await
            })
            .await;
            return;
        }
    };
    let started = connections.started;
    let service_entry = Arc::clone(&entry);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            service_entry
                .requests_in_flight
                .fetch_add(1, Ordering::AcqRel);
            let guard = RequestGuard {
                entry: Arc::clone(&service_entry),
                started,
            };
            let router = router.clone();
            async move {
                // A client that trickles its body holds its connection busy
                // (not evictable): it gets this long for the whole request.
                let response =
                    match tokio::time::timeout(REQUEST_TIMEOUT, router.oneshot(request)).await {
                        Ok(response) => response,
                        Err(_) => Ok(request_timed_out()),
                    };
                drop(guard);
                response
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(REQUEST_HEAD_BYTES_MAX.max(8192));
    let connection = builder
        .serve_connection(TokioIo::new(PrefixedStream::new(prefix, stream)), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = entry.evict.notified() => {}
        _ = shutdown.requested() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Bytes already read from a stream, then the stream.
struct PrefixedStream {
    prefix: Vec<u8>,
    position: usize,
    stream: TcpStream,
}

impl PrefixedStream {
    fn new(prefix: Vec<u8>, stream: TcpStream) -> PrefixedStream {
        PrefixedStream {
            prefix,
            position: 0,
            stream,
        }
    }
}

impl AsyncRead for PrefixedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let count = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..count]);
            this.position += count;
            if this.position == this.prefix.len() {
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PrefixedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Raises this process's soft limit of open files to its hard limit and
/// returns the soft limit in force.
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return u64::MAX;
    };
    let target = limit.maximum.unwrap_or(u64::MAX);
    if target > current {
        let raised = rustix::process::Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return target;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_carry_the_json_shape_and_length() {
        let response =
            String::from_utf8(error_response(431, "X", "headers_too_large", "m")).expect("utf-8");
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 X\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let value: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(value["error"]["code"], "headers_too_large");
    }

    #[test]
    fn the_idlest_connection_makes_room() {
        let connections = Connections {
            started: Instant::now(),
            entries: Mutex::new(HashMap::new()),
        };
        let first = connections.add(1);
        let second = connections.add(2);
        first.idle_since_ms.store(10, Ordering::Relaxed);
        second.idle_since_ms.store(5, Ordering::Relaxed);
        assert!(connections.make_room(3));
        assert!(connections.make_room(2));
        assert!(!connections.lock().contains_key(&2), "the idlest goes");
        connections.add(3);
        first.requests_in_flight.store(1, Ordering::Relaxed);
        connections
            .lock()
            .get(&3)
            .expect("entry")
            .requests_in_flight
            .store(1, Ordering::Relaxed);
        assert!(!connections.make_room(2), "busy connections stay");
    }

    #[test]
    fn the_soft_open_files_limit_is_at_least_what_it_was() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        assert!(raise_open_files_limit() >= before);
    }
}
