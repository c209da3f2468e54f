//! The web UI, embedded in the binary: files from `web/dist`, with the SPA
//! fallback (a path without a file extension that matches no file gets
//! `index.html`, so client-side routes load), strong ETags, and cache headers
//! (`/assets/` are content-addressed and immutable; everything else
//! revalidates).

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use daarion_kernel::ApiError;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
struct Assets;

/// Serves `path` from the embedded UI; `None` when it is not the UI's.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let wanted = path.trim_start_matches('/');
    let (name, file) = match Assets::get(wanted) {
        Some(file) if !wanted.is_empty() => (wanted.to_owned(), file),
        _ => {
            let last = wanted.rsplit('/').next().unwrap_or("");
            // `/rooms/general` is a client-side route; `/missing.js` is a 404.
            if last.contains('.') {
                return Some(ApiError::not_found("no such file").into_response());
            }
            ("index.html".to_owned(), Assets::get("index.html")?)
        }
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(file.data.into_owned()))
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    Some(response)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &HeaderMap) -> Response {
        serve(&Method::GET, path, headers).unwrap()
    }

    #[test]
    fn files_routes_and_revalidation() {
        let none = HeaderMap::new();
        let index = get("/", &none);
        assert_eq!(index.status(), 200);
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html");
        assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = index.headers()[header::ETAG].clone();

        // Vite names assets by content hash: find the stylesheet the page links.
        let page = String::from_utf8(Assets::get("index.html").unwrap().data.into_owned()).unwrap();
        let css_path = page
            .split('"')
            .find(|part| part.starts_with("/assets/") && part.ends_with(".css"))
            .unwrap();
        let css = get(css_path, &none);
        assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css");
        assert!(
            css.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );

        let spa = get("/rooms/general", &none);
        assert_eq!(
            (spa.status(), spa.headers()[header::ETAG].clone()),
            (StatusCode::OK, etag.clone())
        );

        assert_eq!(get("/missing.js", &none).status(), 404);

        let mut conditional = HeaderMap::new();
        conditional.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(get("/", &conditional).status(), 304);
        assert!(serve(&Method::POST, "/", &none).is_none());
    }
}
