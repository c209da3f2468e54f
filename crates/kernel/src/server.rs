//! Serving a router. Our own accept loop on hyper-util (instead of
//! `axum::serve`) gives every runtime shape the same protections: HTTP/1.1
//! and HTTP/2 on one port (h2c, or ALPN under TLS), a header-read timeout
//! against slow clients, a header size limit, a cap on connections per client
//! address, optional TLS with rustls whose certificate is reloaded when its
//! files change, and a graceful shutdown that drains connections.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use axum::{Router, extract::ConnectInfo, response::IntoResponse};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Makes ring the process's rustls provider (once; later calls do nothing).
/// HTTP clients (reqwest, built without a provider of its own) use it for
/// HTTPS, so every entry point calls this before making one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Limits of one listener.
#[derive(Clone)]
pub struct ServerOptions {
    /// A client must send its request headers within this time.
    pub header_read_timeout: Duration,
    /// Largest request head (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Open connections one client address may hold; more are refused.
    pub max_connections_per_client: usize,
    /// Addresses the cap does not apply to: proxies in front of us, whose one
    /// address carries many clients.
    pub exempt: Vec<ipnet::IpNet>,
    /// TLS, when configured.
    pub tls: Option<Arc<Tls>>,
    /// How long shutdown waits for open connections.
    pub drain_timeout: Duration,
    /// Threads that serve connections, each with a single-threaded runtime
    /// of its own (thread per core, as nginx runs a worker per core): a
    /// connection and the tasks it spawns (an upstream connection, a
    /// socket) stay on one thread, with no wake-ups across threads. 0: on
    /// the caller's runtime.
    pub connection_threads: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections_per_client: 256,
            exempt: Vec::new(),
            tls: None,
            drain_timeout: Duration::from_secs(10),
            connection_threads: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("certificate and key do not form a valid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS configuration loaded from PEM files, swapped in place when they change.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: ArcSwap<rustls::ServerConfig>,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn stamp(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Tls {
    /// Loads `cert` (PEM chain) and `key` (PEM private key).
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Arc<Self>, TlsError> {
        let config = Self::read(&cert, &key)?;
        let stamps = Mutex::new((stamp(&cert), stamp(&key)));
        Ok(Arc::new(Self {
            cert,
            key,
            config: ArcSwap::from_pointee(config),
            stamps,
        }))
    }

    fn read(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<rustls::ServerConfig, TlsError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let read_error = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| TlsError::Read { path, source }
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(read_error(cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error(cert))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.display().to_string()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(read_error(key))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// Reloads when either file changed; a broken pair keeps the current one.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (stamp(&self.cert), stamp(&self.key));
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if *stamps == now {
            return Ok(false);
        }
        let config = Self::read(&self.cert, &self.key)?;
        self.config.store(Arc::new(config));
        *stamps = now;
        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        Ok(true)
    }

    /// Watches the files until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(error) = self.reload_if_changed() {
                tracing::error!(%error, "new TLS certificate rejected; keeping the current one");
            }
        }
    }
}

/// Counts a client's open connections while alive.
struct Slot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Slot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting
/// and waits up to `drain_timeout` for open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServerOptions,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let workers = Workers::start(options.connection_threads);
    let graceful = GracefulShutdown::new();
    let counts = Arc::new(Mutex::new(HashMap::new()));
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let cap = if options.exempt.iter().any(|net| net.contains(&ip)) {
            usize::MAX
        } else {
            options.max_connections_per_client
        };
        let Some(slot) = Slot::take(&counts, ip, cap) else {
            metrics::counter!("http_connections_refused_total", "reason" => "per_client_limit")
                .increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stream = match workers.portable(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepted connection lost");
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = options.tls.clone();
        let handshake_timeout = options.header_read_timeout;
        workers.spawn(async move {
            let _slot = slot;
            let Ok(stream) = stream.into_tokio() else {
                return;
            };
            match tls {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
                Some(tls) => {
                    let accepted =
                        tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream))
                            .await;
                    let Ok(Ok(stream)) = accepted else {
                        metrics::counter!("http_connections_refused_total", "reason" => "tls_handshake").increment(1);
                        return;
                    };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
    drop(workers);
}

type Job = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The connection threads of [`ServerOptions::connection_threads`], given
/// connections round-robin; none: connections run on the caller's runtime.
struct Workers {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Job>>,
    next: std::sync::atomic::AtomicUsize,
}

/// An accepted connection on its way to the thread that serves it: a
/// tokio socket belongs to the runtime that registered it, so one moving
/// to a connection thread travels as a standard socket.
enum Portable {
    Here(tokio::net::TcpStream),
    Moving(std::net::TcpStream),
}

impl Portable {
    fn into_tokio(self) -> std::io::Result<tokio::net::TcpStream> {
        match self {
            Self::Here(stream) => Ok(stream),
            Self::Moving(stream) => tokio::net::TcpStream::from_std(stream),
        }
    }
}

impl Workers {
    fn start(threads: usize) -> Self {
        let senders = (0..threads)
            .filter_map(|i| {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| tracing::error!(%error, "no connection thread"))
                    .ok()?;
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            while let Some(job) = rx.recv().await {
                                tokio::spawn(job);
                            }
                        });
                    })
                    .map_err(|error| tracing::error!(%error, "no connection thread"))
                    .ok()?;
                Some(tx)
            })
            .collect();
        Self {
            senders,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn portable(&self, stream: tokio::net::TcpStream) -> std::io::Result<Portable> {
        if self.senders.is_empty() {
            return Ok(Portable::Here(stream));
        }
        let stream = stream.into_std()?;
        stream.set_nonblocking(true)?;
        Ok(Portable::Moving(stream))
    }

    fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        if self.senders.is_empty() {
            tokio::spawn(job);
            return;
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.senders.len();
        if let Err(refused) = self.senders[i].send(Box::pin(job)) {
            // That thread is gone: serve here rather than drop the client.
            tokio::spawn(refused.0);
        }
    }
}

/// A router that redirects every request to HTTPS, for a plain-HTTP
/// listener beside a TLS one: to the one of `origins` (`https://host[:port]`)
/// whose host the request names, else to the first. The `Host` header is
/// the client's to choose, so it never picks an address of its own.
pub fn redirect_to_https(origins: &[String]) -> Router {
    let origins: Arc<[(String, String)]> = origins
        .iter()
        .filter_map(|origin| {
            let authority = origin.strip_prefix("https://")?.trim_end_matches('/');
            let host = authority.parse::<axum::http::uri::Authority>().ok()?;
            Some((host.host().to_ascii_lowercase(), authority.to_owned()))
        })
        .collect();
    Router::new().fallback(move |request: axum::extract::Request| {
        let origins = origins.clone();
        async move {
            let asked = request
                .headers()
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
                .map(|a| a.host().to_ascii_lowercase());
            let target = origins
                .iter()
                .find(|(host, _)| Some(host) == asked.as_ref())
                .or_else(|| origins.first());
            let Some((_, authority)) = target else {
                return crate::ApiError::bad_request(
                    "no HTTPS origin is configured (auth.origins)",
                )
                .into_response();
            };
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            axum::response::Redirect::permanent(&format!("https://{authority}{path}"))
                .into_response()
        }
    })
}
