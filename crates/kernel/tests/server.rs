//! The accept loop against real sockets: slow clients, greedy clients,
//! oversized heads, HTTP/2, TLS with ALPN and certificate reload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use daarion_kernel::server::{ServerOptions, Tls, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn start(options: ServerOptions) -> (SocketAddr, CancellationToken) {
    serve_router(
        Router::new().route("/hello", get(|| async { "hello" })),
        options,
    )
    .await
}

async fn serve_router(router: Router, options: ServerOptions) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let done = stop.clone();
    tokio::spawn(serve(listener, router, options, async move {
        done.cancelled().await
    }));
    (addr, stop)
}

/// Reads until the server closes; `None` if it has not within `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let options = ServerOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServerOptions::default()
    };
    let (addr, _stop) = start(options).await;
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(3))
            .await
            .is_some(),
        "slow client still connected"
    );
    // A prompt client is served.
    daarion_kernel::server::install_crypto_provider();
    let body = reqwest::get(format!("http://{addr}/hello"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn connections_per_client_are_capped() {
    let options = ServerOptions {
        max_connections_per_client: 3,
        ..ServerOptions::default()
    };
    let (addr, _stop) = start(options).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = closed_within(&mut fourth, Duration::from_secs(3))
        .await
        .expect("refused promptly");
    assert!(answer.is_empty(), "the fourth connection was served");
    // Closing one frees a slot.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut again, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn trusted_proxies_are_exempt_from_the_per_client_cap() {
    let options = ServerOptions {
        max_connections_per_client: 1,
        exempt: vec!["127.0.0.0/8".parse().unwrap()],
        ..ServerOptions::default()
    };
    let (addr, _stop) = start(options).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let (addr, _stop) = start(ServerOptions {
        max_header_bytes: 8192,
        ..ServerOptions::default()
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let huge = "a".repeat(64 * 1024);
    let request = format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = closed_within(&mut stream, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn http2_is_spoken_on_the_same_port() {
    let (addr, _stop) = start(ServerOptions::default()).await;
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "hello");
}

fn certificate(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), name.into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

type Handshake = (
    Vec<u8>,
    Option<Vec<u8>>,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
);

/// Connects with TLS offering `alpn`, trusting only `trusted`: the
/// certificate the server presented, the protocol it chose, the stream.
/// `None` when the handshake fails.
async fn try_handshake(addr: SocketAddr, trusted: &[u8], alpn: &[&[u8]]) -> Option<Handshake> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(trusted.to_vec()))
        .ok()?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
    let stream = connector.connect(name, tcp).await.ok()?;
    let (_, session) = stream.get_ref();
    let presented = session.peer_certificates()?[0].to_vec();
    let protocol = session.alpn_protocol().map(<[u8]>::to_vec);
    Some((presented, protocol, stream))
}

async fn handshake(addr: SocketAddr, trusted: &[u8], alpn: &[&[u8]]) -> Handshake {
    try_handshake(addr, trusted, alpn)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn tls_negotiates_h2_serves_http1_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = certificate(dir.path(), "first.example");
    let tls = Tls::load(dir.path().join("cert.pem"), dir.path().join("key.pem")).unwrap();
    let (addr, stop) = start(ServerOptions {
        tls: Some(tls.clone()),
        ..ServerOptions::default()
    })
    .await;
    tokio::spawn(tls.clone().watch(stop.clone()));

    let (presented, protocol, _) = handshake(addr, &first, &[b"h2", b"http/1.1"]).await;
    assert_eq!(presented, first);
    assert_eq!(protocol.as_deref(), Some(&b"h2"[..]));

    let (_, protocol, mut stream) = handshake(addr, &first, &[b"http/1.1"]).await;
    assert_eq!(protocol.as_deref(), Some(&b"http/1.1"[..]));
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
        "{answer}"
    );

    // A broken pair is rejected and the old certificate kept.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    assert!(tls.reload_if_changed().is_err());
    assert_eq!(handshake(addr, &first, &[b"h2"]).await.0, first);

    // A new pair is picked up without a restart.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = certificate(dir.path(), "second.example");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some((presented, _, _)) = try_handshake(addr, &second, &[b"h2"]).await {
            assert_eq!(presented, second);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificate not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn plain_http_can_redirect_to_https() {
    let router = daarion_kernel::server::redirect_to_https(&[
        "https://city.example:8443".into(),
        "https://www.city.example".into(),
    ]);
    let (addr, _stop) = serve_router(router, ServerOptions::default()).await;
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |host: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}/api/city/rooms?x=1"))
                .header("host", host)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 308);
            response.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        location("city.example:80").await,
        "https://city.example:8443/api/city/rooms?x=1"
    );
    assert_eq!(
        location("WWW.city.example").await,
        "https://www.city.example/api/city/rooms?x=1"
    );
    // A host the city does not have is not redirected to (#13): the
    // first origin is.
    assert_eq!(
        location("evil.example").await,
        "https://city.example:8443/api/city/rooms?x=1"
    );
}

/// A client that sends its headers and then stalls its body is answered
/// 408 once it has been silent for the body read timeout, instead of
/// holding a task and a connection for good (#13).
#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408() {
    let router = daarion_kernel::http::standard_layers(
        Router::new().route(
            "/echo",
            axum::routing::post(
                |daarion_kernel::http::Json(body): daarion_kernel::http::Json<
                    serde_json::Value,
                >| async move { daarion_kernel::http::Json(body) },
            ),
        ),
        "test",
        1 << 20,
        Duration::from_millis(300),
    );
    let (addr, _stop) = serve_router(router, ServerOptions::default()).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
        )
        .await
        .unwrap();
    let answer = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("the server answers and closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // A body that keeps coming, even slowly, is read to the end.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = br#"{"a":"slow but steady"}"#;
    stream
        .write_all(
            format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    for chunk in body.chunks(6) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(chunk).await.unwrap();
    }
    let answer = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("slow but steady"), "{answer}");
}
