//! ImageNet class names (embedded: `assets/synset_words.txt`, line i = class i, the model's output order) and
//! labelled image lists (`FILE CLASS` lines).

use crate::error::{Error, Result};
use crate::model::Model;
use serde::Serialize;
use std::path::{Path, PathBuf};

const SYNSET_WORDS: &str = include_str!("../assets/synset_words.txt");

/// The name of class `index` ("tench"), or `class N` outside the 1,000 ImageNet classes.
pub fn class_name(index: usize) -> String {
    SYNSET_WORDS
        .lines()
        .nth(index)
        .and_then(|line| line.split_once(' '))
        .map(|(_, names)| names.split(',').next().unwrap_or(names).trim().to_string())
        .unwrap_or_else(|| format!("class {index}"))
}

/// The WordNet id of class `index` (`n01440764`).
pub fn class_id(index: usize) -> Option<&'static str> {
    SYNSET_WORDS.lines().nth(index).and_then(|line| line.split(' ').next())
}

#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImage {
    pub path: PathBuf,
    pub class: usize,
}

/// Read a `FILE CLASS` list. FILE is looked up in `images/` beside the list, then beside the list itself.
pub fn read_list(list: &Path, classes: usize) -> Result<Vec<LabelledImage>> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
    let dir = list.parent().unwrap_or(Path::new("."));
    let mut images = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |reason: &str| Error::Invalid(format!("{}:{}: {reason}: `{line}`", list.display(), number + 1));
        let (file, class) = line.trim().rsplit_once(char::is_whitespace).ok_or_else(|| bad("expected `FILE CLASS`"))?;
        let class: usize = class.parse().map_err(|_| bad("CLASS is not a number"))?;
        if class >= classes {
            return Err(bad(&format!("CLASS must be below {classes}")));
        }
        let in_images = dir.join("images").join(file.trim());
        let path = if in_images.exists() { in_images } else { dir.join(file.trim()) };
        images.push(LabelledImage { path, class });
    }
    if images.is_empty() {
        return Err(Error::Invalid(format!("{}: no images listed", list.display())));
    }
    Ok(images)
}

/// Softmax of logits, computed stably.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|&e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first; ties go to the lower index.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// One of a model's top classes, for reports and the browser page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The ImageNet class (0-based, synset order); null for the background output of TFLite models.
    pub class: Option<usize>,
    pub id: &'static str,
    pub name: String,
    pub probability: f32,
}

/// The `k` most probable classes of `model`'s `logits` (softmax), most probable first.
pub fn predictions(model: &Model, logits: &[f32], k: usize) -> Vec<Prediction> {
    let probabilities = softmax(logits);
    top_k(&probabilities, k)
        .into_iter()
        .map(|output| {
            let class = model.class_of_output(output);
            Prediction {
                class,
                id: class.and_then(class_id).unwrap_or(""),
                name: class.map_or_else(|| "background".to_string(), class_name),
                probability: probabilities[output],
            }
        })
        .collect()
}
