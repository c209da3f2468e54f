//! `http.fetch`: an agent reads a web page — only from hosts the city
//! allow-lists, never from a private address. The host is resolved here and
//! every address it resolves to must be public (no loopback, private,
//! link-local, unique-local, shared, multicast or unspecified address, IPv4
//! inside IPv6 included); the request then goes to the address checked (so
//! a second resolution cannot point elsewhere), follows no redirect, and
//! reads at most `fetch_max_bytes`.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Settings, domain::ToolError};

/// Whether `host` is on the allow-list: a name as written, or under a
/// `*.example.org` entry.
pub fn allowed(host: &str, allow: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allow.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        match entry.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == entry,
        }
    })
}

/// Whether an address is on the public internet.
pub fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                // Shared address space (carrier NAT) and benchmarking.
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Fetches `raw` (GET) under the city's rules.
pub async fn fetch(settings: &Settings, raw: &str, timeout: Duration) -> Result<Value, ToolError> {
    let url =
        reqwest::Url::parse(raw).map_err(|e| ToolError::Invalid(format!("not an address: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolError::Invalid("only http and https addresses".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| ToolError::Invalid("an address with a host".into()))?
        .to_owned();
    if !allowed(&host, &settings.fetch_allow_hosts) {
        return Err(ToolError::Forbidden(format!(
            "{host} is not among the hosts this city lets agents fetch"
        )));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port)),
    )
    .await
    .map_err(|_| ToolError::Timeout("http.fetch".into()))?
    .map_err(|e| ToolError::Failed(format!("{host} does not resolve: {e}")))?
    .collect();
    let first = *addresses
        .first()
        .ok_or_else(|| ToolError::Failed(format!("{host} does not resolve")))?;
    if !settings.fetch_allow_private && addresses.iter().any(|a| !public(a.ip())) {
        return Err(ToolError::Forbidden(format!(
            "{host} resolves to a private address"
        )));
    }
    let client = daarion_kernel::outbound::client_builder()
        .map_err(ToolError::Failed)?
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, first)
        .timeout(timeout)
        .build()
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    let response = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            ToolError::Timeout("http.fetch".into())
        } else {
            ToolError::Failed(format!("fetching {host}: {e}"))
        }
    })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut body = Vec::new();
    let mut truncated = false;
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ToolError::Failed(format!("reading {host}: {e}")))?;
        let room = settings.fetch_max_bytes.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(json!({
        "status": status,
        "content_type": content_type,
        "body": String::from_utf8_lossy(&body),
        "truncated": truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_allowed_by_name_or_domain() {
        let allow = vec!["example.org".to_owned(), "*.kyiv.ua".to_owned()];
        assert!(allowed("Example.org", &allow));
        assert!(allowed("news.kyiv.ua", &allow));
        assert!(!allowed("kyiv.ua.evil.com", &allow));
        assert!(!allowed("evilexample.org", &allow));
        assert!(!allowed("anything", &[]));
    }

    #[test]
    fn private_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = private.parse().unwrap_or_else(|e| unreachable!("{e}"));
            assert!(!public(ip), "{private}");
        }
        for open in ["93.184.216.34", "2606:2800:220:1::1"] {
            let ip: IpAddr = open.parse().unwrap_or_else(|e| unreachable!("{e}"));
            assert!(public(ip), "{open}");
        }
    }
}
