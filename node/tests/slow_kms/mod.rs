//! A slow network in front of the KMS test server: a TCP proxy on loopback
//! that reads each HTTP/1.1 request whole, holds it for a delay the test sets,
//! then passes it on; answers flow back untouched. It counts the KMS `Decrypt`
//! calls that pass (by their `X-Amz-Target` header) and how many it holds now,
//! so a test can see how often a node asked KMS and whether it measured
//! something while KMS was stalled. The proxy runs on a thread and runtime of
//! its own, so it keeps time even when the nodes' runtime is blocked.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head (request line and headers) the proxy reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body the proxy reads (KMS requests are a few hundred bytes).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The `X-Amz-Target` of a KMS `Decrypt` call.
const DECRYPT_TARGET: &str = "TrentService.Decrypt";

/// What the proxy has seen, shared with the test.
#[derive(Default)]
struct Counters {
    delay_ms: AtomicU64,
    decrypts: AtomicUsize,
    decrypts_held: AtomicUsize,
    last_decrypt_arrival: Mutex<Option<Instant>>,
}

/// A delaying proxy to one upstream address; stops when dropped.
pub struct DelayingProxy {
    endpoint: String,
    counters: Arc<Counters>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl DelayingProxy {
    /// Starts a proxy on 127.0.0.1 to `upstream` (an `http://host:port` endpoint), with no delay.
    pub fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream
            .strip_prefix("http://")
            .and_then(|address| address.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("the KMS endpoint {upstream:?} is not http://ip:port"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let endpoint = format!("http://{}", listener.local_addr().expect("the proxy's address"));
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = counters.clone();
        std::thread::Builder::new()
            .name("slow-kms-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the proxy's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("the proxy's listener");
                    tokio::select! {
                        _ = stopped => {}
                        () = accept(listener, upstream, shared) => {}
                    }
                });
            })
            .expect("start the proxy thread");
        Self {
            endpoint,
            counters,
            _stop: stop,
        }
    }

    /// The endpoint to give a node instead of the KMS server's own.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Holds every request from now on for `delay` before passing it on.
    pub fn set_delay(&self, delay: Duration) {
        let delay_ms = u64::try_from(delay.as_millis()).expect("a delay in range");
        self.counters.delay_ms.store(delay_ms, Ordering::SeqCst);
    }

    /// `Decrypt` calls that have reached the proxy so far.
    pub fn decrypts(&self) -> usize {
        self.counters.decrypts.load(Ordering::SeqCst)
    }

    /// `Decrypt` calls being held now.
    pub fn decrypts_held(&self) -> usize {
        self.counters.decrypts_held.load(Ordering::SeqCst)
    }

    /// When the latest `Decrypt` call reached the proxy.
    pub fn last_decrypt_arrival(&self) -> Option<Instant> {
        *self
            .counters
            .last_decrypt_arrival
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, counters: Arc<Counters>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (client_read, mut client_write) = client.into_split();
            let (mut server_read, server_write) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
            // A malformed request ends the connection, as a real network would on garbage.
            let _ = pass_requests(client_read, server_write, &counters).await;
        });
    }
}

/// Passes the client's requests on one by one, each held for the current delay.
async fn pass_requests(mut client: OwnedReadHalf, mut server: OwnedWriteHalf, counters: &Counters) -> io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let head_bytes = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buffer.len() > MAX_HEAD_BYTES {
                return Err(invalid("request head too long"));
            }
            if client.read_buf(&mut buffer).await? == 0 {
                return server.shutdown().await;
            }
        };
        let head = std::str::from_utf8(&buffer[..head_bytes]).map_err(|_| invalid("request head not UTF-8"))?;
        let (body_bytes, decrypt) = read_head(head)?;
        while buffer.len() < head_bytes + body_bytes {
            if client.read_buf(&mut buffer).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let request: Vec<u8> = buffer.drain(..head_bytes + body_bytes).collect();
        if decrypt {
            counters.decrypts.fetch_add(1, Ordering::SeqCst);
            counters.decrypts_held.fetch_add(1, Ordering::SeqCst);
            *counters.last_decrypt_arrival.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        let delay = Duration::from_millis(counters.delay_ms.load(Ordering::SeqCst));
        tokio::time::sleep(delay).await;
        if decrypt {
            counters.decrypts_held.fetch_sub(1, Ordering::SeqCst);
        }
        server.write_all(&request).await?;
    }
}

/// The body length a request head announces, and whether it is a KMS `Decrypt` call.
fn read_head(head: &str) -> io::Result<(usize, bool)> {
    let (mut body_bytes, mut decrypt) = (0, false);
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            body_bytes = value.parse().map_err(|_| invalid("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked requests are not expected from the KMS client"));
        } else if name.eq_ignore_ascii_case("x-amz-target") {
            decrypt = value == DECRYPT_TARGET;
        }
    }
    if body_bytes > MAX_BODY_BYTES {
        return Err(invalid("request body too long"));
    }
    Ok((body_bytes, decrypt))
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}
